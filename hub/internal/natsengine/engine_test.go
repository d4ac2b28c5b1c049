package natsengine_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pifleet/pifleet/hub/internal/natsengine"
	"github.com/pifleet/pifleet/internal/transport"
	"github.com/pifleet/pifleet/internal/wire"
)

func natsConnect(url, user, pass string) (*nats.Conn, error) {
	return nats.Connect(url, nats.UserInfo(user, pass), nats.Timeout(10*time.Second), nats.MaxReconnects(0))
}

// TestRetainedSurvivesRestart: retained states stored before a restart
// with the same StateDir are all replayed to the first subscriber after
// it, which is the subscriber nats-server would short-change if Start
// returned before its retained view was complete.
func TestRetainedSurvivesRestart(t *testing.T) {
	const n = 1000
	dir := t.TempDir()
	o := natsengine.Options{StateDir: dir, MQTTListen: "127.0.0.1:0", NATSListen: "127.0.0.1:0"}
	begin := time.Now()
	e, err := natsengine.Start(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cold start (empty store): %v", time.Since(begin))
	pub := mustConnect(t, e.MQTTURL(), transport.Options{}, "publisher")
	for i := range n {
		pub.pub(t, wire.StateTopic(fmt.Sprintf("pi%d", i)), 1, true, fmt.Sprintf("state %d", i))
	}
	pub.Disconnect(250)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}

	begin = time.Now()
	e = start(t, natsengine.Options{StateDir: dir})
	t.Logf("warm start (%d retained): %v", n, time.Since(begin))
	hub := mustConnect(t, e.MQTTURL(), transport.Options{}, "hub")
	hub.sub(t, wire.FilterAllStates)
	seen := map[string]bool{}
	for len(seen) < n {
		m := hub.next(t)
		if !m.Retained() {
			t.Fatalf("got live %s, want only retained replays", m.Topic())
		}
		seen[m.Topic()] = true
	}
	if got, want := seen[wire.StateTopic("pi999")], true; got != want {
		t.Errorf("pi999 replayed: got %v, want %v", got, want)
	}
}

// TestWillWithinASecond: a connection closed without DISCONNECT has its
// will published within a second (nats-server sees the EOF at once; the
// second is slack for a loaded test machine).
func TestWillWithinASecond(t *testing.T) {
	f := newFleetPKI(t)
	e := start(t, natsengine.Options{Credentials: f.creds, AllowPlaintext: true})
	hub := mustConnect(t, e.MQTTURL(), f.plain("hub"), "hub")
	hub.sub(t, wire.FilterAllStates)
	conn, ok := rawConnect(t, e.MQTTURL(), "", "pifleet-agent-pi-a", "pi-a", password(t, f, "pi-a"), wire.StateTopic("pi-a"))
	if !ok {
		t.Fatal("pi-a refused")
	}
	closed := time.Now()
	conn.Close()
	m := hub.next(t)
	if took := time.Since(closed); m.Topic() != wire.StateTopic("pi-a") || took > time.Second {
		t.Errorf("got %s %q after %v, want pi-a's will within 1s", m.Topic(), m.Payload(), took)
	}
}

// TestDottedDeviceID: a device whose id has a '.' logs in (with a client
// id without dots, as nats-server requires), publishes its state, and the
// hub reads it on the MQTT topic with the '.'; commands reach it, and its
// permissions are its own, not a neighbour's whose id shares a prefix.
func TestDottedDeviceID(t *testing.T) {
	f := newFleetPKI(t)
	e := start(t, natsengine.Options{Credentials: f.creds, AllowPlaintext: true})
	const id = "pi.kitchen"
	hub := mustConnect(t, e.MQTTURL(), f.plain("hub"), "hub")
	hub.sub(t, wire.FilterAllStates)
	if c, err := connect(e.MQTTURL(), f.plain(id), "pifleet-agent-pi.kitchen", ""); err == nil {
		c.Disconnect(0)
		t.Errorf("client id with a '.' connected; nats-server should refuse it")
	}
	d := mustConnect(t, e.MQTTURL(), f.plain(id), "pifleet-agent-pi~kitchen")
	if codes := d.sub(t, wire.CmdTopic(id), wire.StateTopic(id), wire.CmdTopic("pi")); string(codes) != string([]byte{1, 1, 0x80}) {
		t.Errorf("SUBACK codes %x, want 01 01 80", codes)
	}
	d.pub(t, wire.StateTopic("pi"), 1, true, "forged")
	d.pub(t, wire.StateTopic(id), 1, true, "online")
	if m := hub.next(t); m.Topic() != wire.StateTopic(id) || string(m.Payload()) != "online" {
		t.Errorf("hub got %s %q, want %s online", m.Topic(), m.Payload(), wire.StateTopic(id))
	}
	late := mustConnect(t, e.MQTTURL(), f.plain("hub"), "hub-late")
	late.sub(t, wire.FilterAllStates)
	if m := late.next(t); m.Topic() != wire.StateTopic(id) || !m.Retained() {
		t.Errorf("late hub got %s (retained %v), want the retained %s", m.Topic(), m.Retained(), wire.StateTopic(id))
	}
	if m := d.next(t); m.Topic() != wire.StateTopic(id) {
		t.Errorf("device got %s %q, want its own state back", m.Topic(), m.Payload())
	}
	hub.pub(t, wire.CmdTopic(id), 1, false, "reboot")
	if m := d.next(t); m.Topic() != wire.CmdTopic(id) || string(m.Payload()) != "reboot" {
		t.Errorf("device got %s %q, want its command", m.Topic(), m.Payload())
	}
}

// TestCloseIsBounded: Close with connected clients (each with a will to
// publish on the way out) returns without error, so within CloseTimeout.
func TestCloseIsBounded(t *testing.T) {
	e, err := natsengine.Start(t.Context(), natsengine.Options{MQTTListen: "127.0.0.1:0", NATSListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := connect(e.MQTTURL(), transport.Options{}, fmt.Sprintf("c%d", i), wire.StateTopic(fmt.Sprintf("pi%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	begin := time.Now()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("close with 5 clients: %v", time.Since(begin))
}
