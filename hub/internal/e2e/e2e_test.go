package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/api"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/wire"
)

// keepalive is what the kill and freeze tests give their agents; the
// issue's bound for a killed agent with the embedded broker is
// 1.5 × keepalive + 1 s.
const keepalive = 2 * time.Second

func forEachBroker(t *testing.T, fn func(t *testing.T, e *fleetEnv)) {
	for _, b := range brokers {
		t.Run(b.name, func(t *testing.T) { fn(t, newEnv(t, b)) })
	}
}

func TestAgentAppearsOnline(t *testing.T) {
	forEachBroker(t, func(t *testing.T, e *fleetEnv) {
		e.startAgent("pi-e2e")
		d := e.waitDevice("pi-e2e", 20*time.Second, "online with addresses", func(d api.Device) bool { return d.Online && hasAddress(d) })
		if d.State != "online" || d.Epoch == 0 || d.LastSeen == nil || d.Health == nil {
			t.Errorf("device = %+v; want state online, an epoch, last_seen and a health block", d)
		}
		out, code := e.run("devices")
		if code != 0 || !strings.Contains(out, "pi-e2e") || !strings.Contains(out, "yes") {
			t.Errorf("pifleet devices (exit %d):\n%s\nwant a row for pi-e2e, online", code, out)
		}
		// Addresses are shown per interface: "eth0=192.0.2.10,…".
		for _, a := range d.Addresses {
			if a.Usable() && !strings.Contains(out, a.Interface+"=") {
				t.Errorf("pifleet devices:\n%s\nwant %s's addresses under %s=", out, a.Address, a.Interface)
			}
		}
		out, code = e.run("devices", "--json")
		var devs []api.Device
		if code != 0 || json.Unmarshal([]byte(out), &devs) != nil || len(devs) != 1 || devs[0].ID != "pi-e2e" {
			t.Errorf("pifleet devices --json (exit %d): %s", code, out)
		}
		out, code = e.run("ask", "where", "pi-e2e")
		if code != 0 || !strings.Contains(out, "pi-e2e is online") {
			t.Errorf("pifleet ask where (exit %d): %s", code, out)
		}
		out, code = e.run("ask", "where", "pi-e2f")
		if code == 0 || !strings.Contains(out, `did you mean "pi-e2e"`) {
			t.Errorf("pifleet ask where <typo> (exit %d): %s; want a non-zero exit and a suggestion", code, out)
		}
	})
}

func TestKilledAgentGoesOffline(t *testing.T) {
	forEachBroker(t, func(t *testing.T, e *fleetEnv) {
		a := e.startAgent("pi-kill", "--keepalive", keepalive.String())
		e.waitDevice("pi-kill", 20*time.Second, "online", func(d api.Device) bool { return d.Online })
		killed := time.Now()
		a.kill(syscall.SIGKILL)
		// A kill closes the TCP connection, so both brokers publish the
		// will at once; the bound is 1.5 × keepalive + 1 s.
		d := e.waitDevice("pi-kill", keepalive*3/2+time.Second, "lost", func(d api.Device) bool { return !d.Online })
		t.Logf("%s: offline %v after kill -9", t.Name(), time.Since(killed).Round(time.Millisecond))
		if d.State != "lost" {
			t.Errorf("state = %q, want lost (the will)", d.State)
		}
	})
}

// TestFrozenAgentGoesOffline stops the agent (SIGSTOP) so its TCP
// connection stays open but silent: only the broker's keepalive check
// notices. The time it takes is logged (see the README's measurements).
func TestFrozenAgentGoesOffline(t *testing.T) {
	forEachBroker(t, func(t *testing.T, e *fleetEnv) {
		a := e.startAgent("pi-frozen", "--keepalive", keepalive.String())
		e.waitDevice("pi-frozen", 20*time.Second, "online", func(d api.Device) bool { return d.Online })
		frozen := time.Now()
		a.kill(syscall.SIGSTOP)
		t.Cleanup(func() { a.kill(syscall.SIGCONT) })
		e.waitDevice("pi-frozen", keepalive*3/2+15*time.Second, "lost", func(d api.Device) bool { return !d.Online })
		t.Logf("%s broker: frozen agent offline after %v (keepalive %v)", strings.TrimPrefix(t.Name(), "TestFrozenAgentGoesOffline/"), time.Since(frozen).Round(100*time.Millisecond), keepalive)
	})
}

func TestAgentRestartHigherEpochAndStaleWillIgnored(t *testing.T) {
	forEachBroker(t, func(t *testing.T, e *fleetEnv) {
		a := e.startAgent("pi-restart")
		first := e.waitDevice("pi-restart", 20*time.Second, "online", func(d api.Device) bool { return d.Online })
		a.kill(syscall.SIGTERM)
		if code := a.exitCode(); code != 0 {
			t.Errorf("agent exit code after SIGTERM = %d, want 0", code)
		}
		e.waitDevice("pi-restart", 10*time.Second, "offline (clean)", func(d api.Device) bool { return d.State == "offline" })
		e.startAgent("pi-restart")
		second := e.waitDevice("pi-restart", 20*time.Second, "online again", func(d api.Device) bool { return d.Online && d.Epoch > first.Epoch })
		// A late death of the first session must not kill the second.
		c := e.client()
		// Retained, as a will is: on the nats engine the hub reads the
		// fleet from the retained store (natsfeed), so a non-retained
		// state never reaches it.
		stale, _ := json.Marshal(wire.State{V: 1, State: wire.StateLost, Epoch: first.Epoch, Time: time.Now()})
		publish(t, c, wire.StateTopic("pi-restart"), stale, true)
		// Then prove the hub processed it: a later marker message on another
		// device must be visible, and pi-restart must still be online.
		marker, _ := json.Marshal(wire.State{V: 1, State: wire.StateOnline, Epoch: 1})
		publish(t, c, wire.StateTopic("marker"), marker, true)
		e.waitDevice("marker", 10*time.Second, "marker seen", func(d api.Device) bool { return d.Online })
		d, _, err := e.device("pi-restart")
		if err != nil || !d.Online || d.Epoch != second.Epoch {
			t.Errorf("after a stale lost: %+v, %v; want still online with epoch %d", d, err, second.Epoch)
		}
	})
}

func TestHubRestartRebuildsView(t *testing.T) {
	forEachBroker(t, func(t *testing.T, e *fleetEnv) {
		e.startAgent("pi-rebuild")
		before := e.waitDevice("pi-rebuild", 20*time.Second, "online with addresses", func(d api.Device) bool { return d.Online && hasAddress(d) })
		e.hub.kill(syscall.SIGTERM)
		e.startHub()
		// With an external broker the view comes straight from retained
		// messages; with the embedded one the broker restarts with the hub
		// and the agent reconnects and re-announces itself.
		after := e.waitDevice("pi-rebuild", 30*time.Second, "online with addresses", func(d api.Device) bool { return d.Online && hasAddress(d) })
		if len(after.Addresses) != len(before.Addresses) {
			t.Errorf("addresses after hub restart = %v, before = %v", after.Addresses, before.Addresses)
		}
	})
}

// TestHubRestartRetainedOnly restarts the hub while the agent is gone: the
// device (offline, with its last addresses) can only come from retained
// messages — on Mosquitto, or on the embedded broker, which keeps them
// under --state-dir by default (--mqtt-data).
func TestHubRestartRetainedOnly(t *testing.T) {
	for _, b := range brokers {
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t, b)
			a := e.startAgent("pi-gone")
			e.waitDevice("pi-gone", 20*time.Second, "online with addresses", func(d api.Device) bool { return d.Online && hasAddress(d) })
			a.kill(syscall.SIGTERM)
			e.waitDevice("pi-gone", 10*time.Second, "offline", func(d api.Device) bool { return d.State == "offline" })
			e.hub.kill(syscall.SIGTERM)
			e.startHub()
			d := e.waitDevice("pi-gone", 15*time.Second, "rebuilt from retained", func(d api.Device) bool { return d.State == "offline" && hasAddress(d) })
			if d.Online {
				t.Errorf("rebuilt device online = true, want false")
			}
		})
	}
}

func TestGarbageOnEveryTopic(t *testing.T) {
	forEachBroker(t, func(t *testing.T, e *fleetEnv) {
		e.startAgent("pi-good")
		good := e.waitDevice("pi-good", 20*time.Second, "online with addresses", func(d api.Device) bool { return d.Online && hasAddress(d) })
		c := e.client()
		garbage := [][]byte{
			[]byte("not json"), []byte(`{"v":99}`), []byte(`{"v":1,"state":"zombie","epoch":1}`), []byte("\x00\xff"),
			[]byte(strings.Repeat("{", 300<<10)), []byte(`{"v":1,"id":"pi-good","addresses":"x"}`), []byte(`null`), []byte(`[]`),
		}
		topics := []string{
			wire.StateTopic("pi-bad"), wire.StatusTopic("pi-bad"), wire.StatusTopic("pi-good"), wire.StateTopic("pi-good"),
			wire.CmdTopic("pi-bad"), wire.ResultTopic("pi-bad", "hub", "c1"), wire.HubPresenceTopic("hub"),
			"pifleet/v1/devices/pi-bad/unknown", "pifleet/v1/other",
		}
		// Live and retained: an MQTT hub hears both, a hub on the nats
		// engine reads the fleet from the retained store only.
		for _, tp := range topics {
			for _, g := range garbage {
				publish(t, c, tp, g, false)
				publish(t, c, tp, g, true)
			}
		}
		marker, _ := json.Marshal(wire.State{V: 1, State: wire.StateOnline, Epoch: 1})
		publish(t, c, wire.StateTopic("marker"), marker, true)
		e.waitDevice("marker", 10*time.Second, "marker seen after the garbage", func(d api.Device) bool { return d.Online })
		d, _, err := e.device("pi-good")
		if err != nil || !d.Online || d.Epoch != good.Epoch || len(d.Addresses) != len(good.Addresses) {
			t.Errorf("pi-good after garbage = %+v, %v; want unchanged", d, err)
		}
		out, code := e.run("ask", "fleet")
		if code != 0 || !strings.Contains(out, "pi-good") {
			t.Errorf("hub stopped answering after garbage (exit %d): %s", code, out)
		}
		var stats struct {
			Rejected map[string]uint64 `json:"rejected"`
			Commands *struct {
				BadRecords int64 `json:"bad_records"`
			} `json:"commands"`
		}
		out, _ = e.run("devices") // the table still renders
		if !strings.Contains(out, "pi-good") {
			t.Errorf("pifleet devices after garbage: %s", out)
		}
		resp, err := httpGetJSON(e.hubURL()+"/api/stats", &stats)
		if err != nil || resp == 0 {
			t.Fatalf("GET /api/stats: %v", err)
		}
		var n uint64
		for _, v := range stats.Rejected {
			n += v
		}
		if n == 0 {
			t.Errorf("no rejected messages counted: %+v", stats)
		}
		// The command dispatcher counts the garbage on its result topic,
		// shown next to the fleet's counters.
		testenv.Eventually(t, 15*time.Second, func() string {
			if _, err := httpGetJSON(e.hubURL()+"/api/stats", &stats); err != nil {
				return err.Error()
			}
			if stats.Commands == nil || stats.Commands.BadRecords == 0 {
				return fmt.Sprintf("GET /api/stats: Commands = %+v, want bad result records counted", stats.Commands)
			}
			return ""
		})
	})
}

func TestBadInputExits(t *testing.T) {
	e := &fleetEnv{t: t, pifleet: binPifleet(t), agentBin: binAgent(t), httpPort: 1}
	for _, tc := range []struct {
		bin  string
		args []string
		want string
	}{
		{e.agentBin, []string{"--keepalive", "1s"}, "too short"},
		{e.agentBin, []string{"--id", "a/b"}, "not allowed"},
		{e.agentBin, []string{"--broker", "localhost"}, "want a URL"},
		{e.agentBin, []string{"--broker", "ftp://127.0.0.1:1883"}, `scheme "ftp" not supported`},
		{e.agentBin, []string{"--broker", "mqtt://"}, "no host"},
		{e.agentBin, []string{"--broker", "mqtt://127.0.0.1:99999"}, "is not 1–65535"},
		{e.agentBin, []string{"--broker", "mqtt://127.0.0.1:1883,mqtt://192.0.2.1:1883"}, "plaintext MQTT off this machine"},
		{e.agentBin, []string{"--nope"}, "flag provided but not defined"},
		{e.pifleet, []string{"frobnicate"}, "unknown command"},
		{e.pifleet, []string{"hub", "--broker", "mqtt://127.0.0.1:0"}, "is not 1–65535"},
		{e.pifleet, []string{"devices", "--hub", "http://127.0.0.1:1"}, "cannot reach the hub"},
		{e.pifleet, []string{"hub", "--http-listen", "0.0.0.0:0"}, "without a bearer token"},
		{e.pifleet, []string{"hub", "--mqtt-listen", "0.0.0.0:0"}, "enrolled Pis need a fixed port"},
		{e.pifleet, []string{"hub", "--mqtt-listen", "0.0.0.0:0", "--mqtt-tls-cert", "x", "--mqtt-tls-key", "y"}, "set --mqtt-credentials"},
		{e.pifleet, []string{"hub", "--enrol-listen", "127.0.0.1:0", "--mqtt-credentials", "x"}, "needs the hub's own fleet CA"},
		{e.pifleet, []string{"ask"}, "usage"},
		{e.pifleet, []string{"devices", "--nope"}, "-h lists the flags"},
		{e.pifleet, []string{"hub", "--mqtt-listen"}, "flag needs an argument"},
	} {
		p := start(t, fmt.Sprint(tc.args), tc.bin, tc.args...)
		code := p.exitCode()
		out := p.out.String()
		// One clear line, not a page of usage or a log.
		if code == 0 || !strings.Contains(out, tc.want) || len(lines(out)) != 1 {
			t.Errorf("%v: exit %d, output %q; want non-zero and one line with %q", tc.args, code, out, tc.want)
		}
	}
}
