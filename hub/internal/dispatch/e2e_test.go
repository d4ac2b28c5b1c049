package dispatch

// End to end over a real MQTT broker (the embedded nats engine, or
// Mosquitto with E2E_BROKER=mosquitto) with a real agent process
// (agent/internal/cmdexec/testagent: link + cmdexec + runner) and real
// containers. Named TestDocker* (the qemu run skips them).

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pifleet/pifleet/hub/internal/chat"
	"github.com/pifleet/pifleet/hub/internal/fleet"
	"github.com/pifleet/pifleet/hub/internal/natsengine"
	"github.com/pifleet/pifleet/internal/policy"
	"github.com/pifleet/pifleet/internal/runnertest"
	"github.com/pifleet/pifleet/internal/shellwords"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/wire"
)

type e2e struct {
	t         *testing.T
	brokerURL string
	dir       string
	policy    string
	key       ed25519.PrivateKey
	agentBin  string
	fleet     *fleet.Fleet
	instance  string
	hubOpts   func(*Options) // applied by startHub, when set
}

func newE2E(t *testing.T) *e2e {
	runnertest.RequireDocker(t)
	busybox := runnertest.Busybox(t)
	awscli := runnertest.AWSCLI(t)
	var url string
	if os.Getenv("E2E_BROKER") == "mosquitto" {
		url = testenv.StartMosquitto(t, "").URL
	} else {
		b, err := natsengine.Start(context.Background(), natsengine.Options{MQTTListen: "127.0.0.1:0", NATSListen: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		url = b.MQTTURL()
	}
	e := &e2e{t: t, brokerURL: url, dir: t.TempDir(), fleet: fleet.New(nil),
		instance: fmt.Sprintf("dispatch-e2e-%d", time.Now().UnixNano())}
	// One policy file for hub and agent. "job" is a test tool: a number
	// sleeps that long (read-only), "write" is mutating and needs role ops.
	// The Pi's credentials: only the agent reads this file.
	envFile := filepath.Join(e.dir, "aws.env")
	os.WriteFile(envFile, []byte("AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\nAWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\nAWS_DEFAULT_REGION=us-east-1\n"), 0o600)
	conf := map[string]any{
		"tools": map[string]any{
			"aws": map[string]any{"image": awscli, "env_file": envFile},
			"job": map[string]any{"image": busybox, "verb_words": 1, "read": []string{"[0-9]*", "echo"},
				"entrypoint": []string{"sh", "-c", `case "$0" in write) echo wrote;; echo) shift 0; printf '[%s]\n' "$@";; *) sleep "$0"; echo "slept $0";; esac`}},
		},
		"roles": map[string]any{"ops": []string{"job write"}},
		"users": map[string]any{"U1": []string{"ops"}},
	}
	pb, _ := json.Marshal(conf)
	e.policy = filepath.Join(e.dir, "policy.json")
	os.WriteFile(e.policy, pb, 0o600)
	k, _, err := LoadOrCreateKey(filepath.Join(e.dir, "hub.key"))
	if err != nil {
		t.Fatal(err)
	}
	e.key = k
	e.agentBin = testenv.Binary(t, "./agent/internal/cmdexec/testagent", "pifleet-testagent")
	return e
}

type tlog struct {
	t    *testing.T
	name string
}

func (l tlog) Write(p []byte) (int, error) { l.t.Logf("hub %s: %s", l.name, p); return len(p), nil }

// agent is a running testagent process.
type agent struct {
	cmd *exec.Cmd
	log *testenv.SyncBuffer
}

func (e *e2e) startAgent(id string) *agent {
	e.t.Helper()
	dataDir := filepath.Join(e.dir, id)
	os.MkdirAll(dataDir, 0o700)
	a := &agent{log: &testenv.SyncBuffer{}}
	a.cmd = exec.Command(e.agentBin, "--broker", e.brokerURL, "--id", id, "--data-dir", dataDir, "--policy", e.policy,
		"--hub-key", filepath.Join(e.dir, "hub.key.pub"), "--network", "host", "--instance", e.instance)
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	if err := a.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { a.stop() })
	return a
}

func (a *agent) stop() {
	if a.cmd.ProcessState == nil {
		a.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { a.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			a.cmd.Process.Kill()
			<-done
		}
	}
}

func (a *agent) count(s string) int { return strings.Count(a.log.String(), s) }

// hub is a dispatcher with its own MQTT client, like the real hub.
type hub struct {
	d      *Dispatcher
	client mqtt.Client
	late   chan Result
}

func (e *e2e) startHub(name string) *hub {
	e.t.Helper()
	pol, err := policy.Load(e.policy)
	if err != nil {
		e.t.Fatal(err)
	}
	h := &hub{late: make(chan Result, 10)}
	logs := &testenv.SyncBuffer{}
	o := Options{Hub: "hub1", Key: e.key, Fleet: FromFleet(e.fleet), Publisher: Paho(func() mqtt.Client { return h.client }),
		Logger: slog.New(slog.NewTextHandler(io.MultiWriter(tlog{e.t, name}, logs), &slog.HandlerOptions{Level: slog.LevelDebug})),
		Policy: pol, StateFile: filepath.Join(e.dir, "hub-state.json"), Wait: 90 * time.Second,
		OnLateResult: func(r Result) { h.late <- r }}
	if e.hubOpts != nil {
		e.hubOpts(&o)
	}
	h.d, err = New(o)
	if err != nil {
		e.t.Fatal(err)
	}
	opts := mqtt.NewClientOptions().AddBroker(e.brokerURL).SetClientID("hub-" + name).SetCleanSession(true).SetOrderMatters(true).
		SetOnConnectHandler(func(c mqtt.Client) {
			c.SubscribeMultiple(map[string]byte{wire.FilterAllStates: 1, wire.FilterAllStatuses: 1}, func(_ mqtt.Client, m mqtt.Message) {
				e.fleet.Apply(m.Topic(), m.Payload())
			})
			h.d.Subscribe(c)
		}).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { e.t.Logf("hub %s: unrouted message on %s", name, m.Topic()) }).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) { e.t.Logf("hub %s: connection lost: %v", name, err) })
	h.client = mqtt.NewClient(opts)
	if tok := h.client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		e.t.Fatalf("hub connect: %v", tok.Error())
	}
	e.t.Cleanup(func() { h.client.Disconnect(100) })
	// Subscribing to results happens after CONNACK, in the background:
	// wait for it, or a retained final could go to another hub first.
	testenv.Eventually(e.t, 30*time.Second, func() string {
		if !strings.Contains(logs.String(), "subscribed to results") {
			return "hub " + name + " has not subscribed to its results"
		}
		return ""
	})
	return h
}

func (e *e2e) waitOnline(id string, online bool) {
	e.t.Helper()
	testenv.Eventually(e.t, 30*time.Second, func() string {
		d, ok := e.fleet.Get(id)
		// Online also means "has said which tools it runs": a real agent's
		// status follows its birth at once.
		if ok && d.Online() == online && (!online || d.Status != nil && d.Epoch == d.Status.Epoch) {
			return ""
		}
		return fmt.Sprintf("%s online=%v not seen by the hub", id, online)
	})
}

func ask(h *hub, tool, user string, args ...string) chat.Reply {
	return h.d.ForTool(tool).Handle(context.Background(), chat.Request{User: user, Channel: "C1", Source: "test"}, args)
}

func TestDockerEndToEnd(t *testing.T) {
	e := newE2E(t)
	a1 := e.startAgent("pi1")
	h := e.startHub("a")
	e.waitOnline("pi1", true)

	t.Run("aws --version through the whole path", func(t *testing.T) {
		var mu sync.Mutex
		var progress []string
		ctx := chat.WithProgress(context.Background(), func(s chat.Status) { mu.Lock(); progress = append(progress, s.Line()); mu.Unlock() })
		r := h.d.ForTool("aws").Handle(ctx, chat.Request{User: "U2", Channel: "C1", Source: "test"}, []string{"pi1", "--version"})
		if r.Problem || !strings.Contains(r.Text, "aws-cli/2") || !strings.Contains(r.Text, "pi1: ✅ exit 0") {
			t.Fatalf("got %+v", r)
		}
		// The asker saw pi1 running, then done with its time (Slack shows
		// it in the placeholder message), never the raw output; the last
		// report comes before the answer.
		testenv.Eventually(t, 15*time.Second, func() string {
			mu.Lock()
			defer mu.Unlock()
			if len(progress) != 2 || progress[0] != "pi1 ⏳ running" || !strings.HasPrefix(progress[1], "pi1 ✅ ") || !strings.HasSuffix(progress[1], " s") {
				return fmt.Sprintf("progress = %q, want pi1 ⏳ running, then pi1 ✅ <time> s", progress)
			}
			return ""
		})
	})

	t.Run("aws against a local fake endpoint with the Pi's credentials", func(t *testing.T) {
		var mu sync.Mutex
		var auth string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			req.ParseForm()
			mu.Lock()
			auth = req.Header.Get("Authorization")
			mu.Unlock()
			w.Header().Set("Content-Type", "text/xml")
			fmt.Fprint(w, `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>`+
				`<Arn>arn:aws:iam::123456789012:user/pi</Arn><UserId>AKIAIOSFODNN7EXAMPLE</UserId><Account>123456789012</Account>`+
				`</GetCallerIdentityResult><ResponseMetadata><RequestId>r1</RequestId></ResponseMetadata></GetCallerIdentityResponse>`)
		}))
		defer srv.Close()
		r := ask(h, "aws", "U2", "pi1", "whoami", "--output", "json", "--endpoint-url", srv.URL)
		if r.Problem || !strings.Contains(r.Text, `"Account": "123456789012"`) {
			t.Fatalf("got %s", r.Text)
		}
		if strings.Contains(r.Text, "AKIAIOSFODNN7EXAMPLE") || !strings.Contains(r.Text, `"UserId": "[REDACTED]"`) {
			t.Errorf("the key id is not redacted:\n%s", r.Text)
		}
		mu.Lock()
		defer mu.Unlock()
		if !strings.Contains(auth, "Credential=AKIAIOSFODNN7EXAMPLE/") {
			t.Errorf("request not signed with the Pi's key: %q", auth)
		}
	})

	t.Run("metacharacters arrive as literal argv", func(t *testing.T) {
		words, _ := shellwords.Split("job pi1 echo '; rm -rf /' '$(id)' '`id`' \"a b\"")
		r := ask(h, "job", "U2", words[1:]...)
		for _, want := range []string{"[; rm -rf /]", "[$(id)]", "[`id`]", "[a b]"} {
			if !strings.Contains(r.Text, want) {
				t.Errorf("reply lacks %q:\n%s", want, r.Text)
			}
		}
	})

	t.Run("denied on the hub: nothing is sent", func(t *testing.T) {
		before := a1.count("running")
		r := ask(h, "aws", "U1", "pi1", "iam", "list-users")
		if !r.Problem || !strings.Contains(r.Text, "never allowed") || a1.count("running") != before {
			t.Errorf("got %q", r.Text)
		}
	})

	t.Run("mutating needs confirmation by the asker", func(t *testing.T) {
		r := ask(h, "job", "U1", "pi1", "write")
		if r.Confirm == nil {
			t.Fatalf("no confirmation asked: %+v", r)
		}
		if r2 := h.d.Confirm(context.Background(), "U1", r.Confirm.Token); r2.Problem || !strings.Contains(r2.Text, "wrote") {
			t.Errorf("confirmed: %q", r2.Text)
		}
	})

	t.Run("forged, expired and replayed commands over the broker", func(t *testing.T) {
		_, other, _ := ed25519.GenerateKey(nil)
		now := time.Now().UTC()
		mk := func(id string, key ed25519.PrivateKey, created time.Time) []byte {
			c := wire.Command{V: 1, ID: id, Hub: "hub1", Device: "pi1", ReplyTo: "hub1", Created: created,
				Expires: created.Add(time.Minute), Tool: "job", Argv: []string{"0"}}
			c.Sign(key)
			b, _ := json.Marshal(c)
			return b
		}
		pub := func(b []byte) {
			if tok := h.client.Publish(wire.CmdTopic("pi1"), 1, false, b); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatal(tok.Error())
			}
		}
		before := a1.count("running")
		pub(mk("forged1", other, now))
		pub(mk("expired1", e.key, now.Add(-5*time.Minute)))
		got := map[string]string{}
		for len(got) < 2 {
			select {
			case r := <-h.late:
				got[r.ID] = string(r.Final.Outcome) + ": " + r.Final.Error
			case <-time.After(30 * time.Second):
				t.Fatalf("rejections not reported: %v", got)
			}
		}
		if !strings.Contains(got["forged1"], "rejected: bad signature") || !strings.Contains(got["expired1"], "rejected: expired") {
			t.Errorf("got %v", got)
		}
		// A valid command published twice (a replay) runs once.
		valid := mk("replay1", e.key, now)
		pub(valid)
		pub(valid)
		select {
		case r := <-h.late:
			if r.ID != "replay1" || r.Final.Outcome != wire.OutcomeExited {
				t.Errorf("got %+v", r.Final)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("no result for replay1")
		}
		testenv.Eventually(t, 10*time.Second, func() string {
			if a1.count("command already handled") < 1 {
				return "replay not dropped yet"
			}
			return ""
		})
		if n := a1.count("running") - before; n != 1 {
			t.Errorf("ran %d commands, want 1 (forged and expired never run; the replay runs once)", n)
		}
	})

	t.Run("offline Pi refused", func(t *testing.T) {
		a2 := e.startAgent("pi2")
		e.waitOnline("pi2", true)
		a2.stop()
		e.waitOnline("pi2", false)
		r := ask(h, "job", "U2", "pi1,pi2", "0")
		if !strings.Contains(r.Text, "pi2: ⚠ offline: not sent") || !strings.Contains(r.Text, "pi1: ✅ exit 0") {
			t.Errorf("got %q", r.Text)
		}
	})

	t.Run("hub restart mid-command loses nothing", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan chat.Reply)
		before := a1.count("running")
		go func() {
			done <- h.d.ForTool("job").Handle(ctx, chat.Request{User: "U2", Channel: "C7"}, []string{"pi1", "3"})
		}()
		testenv.Eventually(t, 30*time.Second, func() string {
			if a1.count("running") == before {
				return "not running yet"
			}
			return ""
		})
		// The hub goes away while the Pi works.
		h.client.Disconnect(0)
		cancel()
		<-done
		h2 := e.startHub("b")
		select {
		case r := <-h2.late:
			if r.Request.Channel != "C7" || r.Final.Outcome != wire.OutcomeExited || r.Output != "slept 3\n" {
				t.Errorf("late result %+v", r)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("the final of the command sent before the restart never arrived; agent log:\n%s", a1.log.String())
		}
		// The retained final is cleared once stored.
		testenv.Eventually(t, 30*time.Second, func() string {
			if n := retainedResults(t, e.brokerURL); n != 0 {
				return fmt.Sprintf("%d retained results on the broker", n)
			}
			return ""
		})
		h2.client.Disconnect(100) // one hub at a time from here
	})

	t.Run("agent restart keeps the exactly-once store", func(t *testing.T) {
		c := wire.Command{V: 1, ID: "restart1", Hub: "hub1", Device: "pi1", ReplyTo: "hub1", Created: time.Now().UTC(),
			Expires: time.Now().UTC().Add(time.Minute), Tool: "job", Argv: []string{"0"}}
		c.Sign(e.key)
		b, _ := json.Marshal(c)
		hs := e.startHub("c")
		if tok := hs.client.Publish(wire.CmdTopic("pi1"), 1, false, b); !tok.WaitTimeout(10 * time.Second) {
			t.Fatal("publish")
		}
		select {
		case <-hs.late:
		case <-time.After(30 * time.Second):
			t.Fatal("no result")
		}
		a1.stop()
		a1b := e.startAgent("pi1")
		testenv.Eventually(t, 30*time.Second, func() string {
			if !strings.Contains(a1b.log.String(), "connected") {
				return "restarted agent not connected"
			}
			return ""
		})
		hs.client.Publish(wire.CmdTopic("pi1"), 1, false, b).WaitTimeout(10 * time.Second)
		testenv.Eventually(t, 30*time.Second, func() string {
			if !strings.Contains(a1b.log.String(), "command already handled") {
				return "redelivery after restart not dropped:\n" + a1b.log.String()
			}
			return ""
		})
		if strings.Contains(a1b.log.String(), "running") {
			t.Errorf("the restarted agent ran the command again:\n%s", a1b.log.String())
		}
	})
}

// retainedResults counts retained result records on the broker.
func retainedResults(t *testing.T, url string) int {
	var mu sync.Mutex
	n := 0
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("probe-%d", time.Now().UnixNano())))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer c.Disconnect(0)
	c.Subscribe(wire.ResultFilter("hub1"), 1, func(_ mqtt.Client, m mqtt.Message) {
		if m.Retained() && !bytes.Equal(m.Payload(), nil) && len(m.Payload()) > 0 {
			mu.Lock()
			n++
			mu.Unlock()
		}
	}).WaitTimeout(10 * time.Second)
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	return n
}
