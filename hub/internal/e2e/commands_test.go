package e2e

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pifleet/pifleet/hub/internal/api"
	"github.com/pifleet/pifleet/hub/internal/dispatch"
	"github.com/pifleet/pifleet/internal/runnertest"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/wire"
)

// TestDockerCommandsThroughBinaries runs a cloud command the way an
// operator does, through the real binaries: `pifleet ask aws …` → the
// hub's dispatcher signs it → the real agent (trusting the hub's key)
// runs the AWS CLI in a container on the real Docker Engine → the answer.
// An agent without --hub-key is refused at once, and a denied verb never
// leaves the hub.
func TestDockerCommandsThroughBinaries(t *testing.T) {
	img := runnertest.AWSCLI(t) // built locally from Debian's awscli; fails clearly without Docker
	dir := t.TempDir()
	pol := filepath.Join(dir, "policy.json")
	// "job" is a test tool (config only, like gcloud or az would be): a
	// number sleeps that long in a busybox container.
	b, _ := json.Marshal(map[string]any{"tools": map[string]any{
		"aws": map[string]any{"image": img},
		"job": map[string]any{"image": runnertest.Busybox(t), "verb_words": 1, "read": []string{"[0-9]*"},
			"entrypoint": []string{"sh", "-c", `sleep "$0"; echo "slept $0"`}},
	}})
	if err := os.WriteFile(pol, b, 0o644); err != nil {
		t.Fatal(err)
	}
	e := &fleetEnv{t: t, pifleet: binPifleet(t), agentBin: binAgent(t), httpPort: testenv.FreePort(t), mqttPort: testenv.FreePort(t)}
	e.brokerURL = fmt.Sprintf("mqtt://127.0.0.1:%d", e.mqttPort)
	state := filepath.Join(dir, "hub")
	startHub := func() {
		e.hub = start(t, "hub", e.pifleet, "hub", "--mqtt-listen", fmt.Sprintf("127.0.0.1:%d", e.mqttPort),
			"--http-listen", fmt.Sprintf("127.0.0.1:%d", e.httpPort), "--state-dir", state, "--policy", pol)
		testenv.WaitTCP(t, fmt.Sprintf("127.0.0.1:%d", e.httpPort), 15*time.Second, e.hub.out)
	}
	startHub()
	pub := filepath.Join(state, "hub.key.pub")
	if _, err := os.Stat(pub); err != nil {
		t.Fatalf("the hub did not create its signing key: %v\n%s", err, e.hub.out.String())
	}
	os.MkdirAll(filepath.Join(dir, "agent"), 0o750)
	agent := e.startAgent("pi-cmd", "--hub-key", pub, "--policy", pol, "--data-dir", filepath.Join(dir, "agent"),
		"--docker-network", "none")
	e.startAgent("pi-nocmd")
	for _, id := range []string{"pi-cmd", "pi-nocmd"} {
		e.waitDevice(id, 30*time.Second, "online", func(d api.Device) bool { return d.Online })
	}

	var out string
	var code int
	testenv.Eventually(t, 60*time.Second, func() string {
		out, code = e.run("ask", "aws", "pi-cmd", "--version")
		if code == 0 && strings.Contains(out, "aws-cli/2") && strings.Contains(out, "exit 0") {
			return ""
		}
		return fmt.Sprintf("pifleet ask aws pi-cmd --version (exit %d):\n%s", code, out)
	})

	out, _ = e.run("ask", "aws", "pi-nocmd", "--version")
	if !strings.Contains(out, "does not run aws") {
		t.Errorf("an agent without --hub-key: got\n%s\nwant a refusal saying it does not run aws", out)
	}
	out, code = e.run("ask", "aws", "pi-cmd", "iam", "list-users")
	if code == 0 || !strings.Contains(out, "Refused") {
		t.Errorf("a denied verb (exit %d):\n%s\nwant a refusal", code, out)
	}

	t.Run("forged, expired and replayed commands at the real agent", func(t *testing.T) {
		hubKey, _, err := dispatch.LoadOrCreateKey(filepath.Join(state, "hub.key"))
		if err != nil {
			t.Fatal(err)
		}
		_, strangerKey, _ := ed25519.GenerateKey(nil)
		c := e.client()
		defer c.Disconnect(50)
		var mu sync.Mutex
		got := map[string][]wire.ResultRecord{}
		if tok := c.Subscribe("pifleet/v1/devices/pi-cmd/result/#", 1, func(_ mqtt.Client, m mqtt.Message) {
			if rec, err := wire.DecodeResult(m.Payload()); err == nil {
				pt, _ := wire.ParseTopic(m.Topic())
				mu.Lock()
				got[pt.CmdID] = append(got[pt.CmdID], rec)
				mu.Unlock()
			}
		}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe: %v", tok.Error())
		}
		send := func(id, hub string, key ed25519.PrivateKey, created time.Time) []byte {
			cmd := wire.Command{V: wire.ProtocolVersion, ID: id, Hub: hub, Device: "pi-cmd", ReplyTo: hub,
				Created: created.UTC(), Expires: created.Add(time.Minute).UTC(), Tool: "aws", Argv: []string{"--version"}}
			cmd.Sign(key)
			b, _ := json.Marshal(cmd)
			publish(t, c, wire.CmdTopic("pi-cmd"), b, false)
			return b
		}
		records := func(id string) []wire.ResultRecord {
			mu.Lock()
			defer mu.Unlock()
			return append([]wire.ResultRecord(nil), got[id]...)
		}
		final := func(id string) func() string {
			return func() string {
				for _, r := range records(id) {
					if r.Final != nil {
						return ""
					}
				}
				return "no final for " + id
			}
		}

		// The forger names a hub that does not exist: no hub would ever
		// clear a retained answer there.
		send("e2e-forged", "ghost", strangerKey, time.Now())
		send("e2e-expired", "hub", hubKey, time.Now().Add(-2*time.Minute))
		replayed := send("e2e-replay", "hub", hubKey, time.Now())
		for _, id := range []string{"e2e-forged", "e2e-expired", "e2e-replay"} {
			testenv.Eventually(t, 60*time.Second, final(id))
		}
		publish(t, c, wire.CmdTopic("pi-cmd"), replayed, false) // the same signed bytes again
		testenv.Eventually(t, 30*time.Second, func() string {
			for _, r := range records("e2e-replay") {
				if r.Notice != nil && r.Notice.Reason == wire.NoticeDuplicate {
					return ""
				}
			}
			return "no duplicate notice for the replayed command"
		})

		for id, want := range map[string]string{"e2e-forged": "bad signature", "e2e-expired": "expired at"} {
			f := records(id)[0].Final
			if f == nil || f.Outcome != wire.OutcomeRejected || !strings.Contains(f.Error, want) {
				t.Errorf("%s: got %+v, want rejected with %q", id, records(id), want)
			}
		}
		var finals, notices int
		for _, r := range records("e2e-replay") {
			switch {
			case r.Final != nil:
				finals++
				if r.Final.Outcome != wire.OutcomeExited || r.Final.ExitCode != 0 || !strings.Contains(r.Final.Output, "aws-cli/2") {
					t.Errorf("the real command's final = %+v, want aws --version's output", r.Final)
				}
			case r.Notice != nil && r.Notice.Reason == wire.NoticeDuplicate:
				notices++
			}
		}
		if finals != 1 || notices != 1 {
			t.Errorf("replayed command: %d finals, %d notices; want it run once and the replay reported once", finals, notices)
		}
		// The hub counted the Pi's notice as a stray duplicate (it never
		// sent that command).
		testenv.Eventually(t, 30*time.Second, func() string {
			var st struct {
				Commands struct {
					StrayDuplicates int64 `json:"stray_duplicates"`
				} `json:"commands"`
			}
			if _, err := httpGetJSON(e.hubURL()+"/api/stats", &st); err != nil {
				return err.Error()
			}
			if st.Commands.StrayDuplicates != 1 {
				return fmt.Sprintf("hub stats %+v, want one stray duplicate", st)
			}
			return ""
		})
		// A forged command leaves nothing retained on the broker: a new
		// subscriber gets no record for it.
		late := e.client()
		defer late.Disconnect(50)
		retained := make(chan string, 8)
		if tok := late.Subscribe(wire.ResultTopic("pi-cmd", "ghost", "e2e-forged"), 1, func(_ mqtt.Client, m mqtt.Message) {
			if len(m.Payload()) > 0 {
				retained <- string(m.Payload())
			}
		}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe: %v", tok.Error())
		}
		select { // a retained record comes with the subscription, at once
		case m := <-retained:
			t.Errorf("the forged command's rejection stayed retained on the broker: %s", m)
		case <-time.After(2 * time.Second):
		}
	})

	// The hub (and with it the embedded broker) goes away while a Pi runs
	// a command: the agent keeps its final until a broker takes it, the
	// restarted hub knows the command from its state dir and gets the
	// final from its retained copy, and says who asked.
	t.Run("hub restart mid-command loses nothing", func(t *testing.T) {
		before := strings.Count(agent.out.String(), "msg=running")
		asked := make(chan string, 1)
		// 12 s: the old hub is long gone (SIGTERM, its broker closed)
		// before the Pi's final is published.
		go func() { out, _ := e.run("ask", "job", "pi-cmd", "12"); asked <- out }()
		testenv.Eventually(t, 60*time.Second, func() string {
			if strings.Count(agent.out.String(), "msg=running") == before {
				return "the Pi has not started the command"
			}
			return ""
		})
		e.hub.kill(syscall.SIGTERM)
		<-asked // the CLI's connection to the old hub ends with it
		startHub()
		testenv.Eventually(t, 90*time.Second, func() string {
			log := e.hub.out.String()
			for _, l := range lines(log) {
				if strings.Contains(l, "late command result") && strings.Contains(l, "device=pi-cmd") &&
					strings.Contains(l, "tool=job") && strings.Contains(l, "outcome=exited") && strings.Contains(l, "asked_by=http") {
					return ""
				}
			}
			return "the restarted hub has not logged the command's late result"
		})
	})

}
