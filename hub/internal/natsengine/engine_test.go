package natsengine_test

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pifleet/pifleet/hub/internal/natsengine"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/transport"
	"github.com/pifleet/pifleet/internal/wire"
)

func natsConnect(url, user, pass string) (*nats.Conn, error) {
	return nats.Connect(url, nats.UserInfo(user, pass), nats.Timeout(10*time.Second), nats.MaxReconnects(0))
}

// TestRetainedSurvivesRestart: retained states stored before a restart
// with the same StateDir are all replayed to the first subscriber after
// it, which is the subscriber nats-server would short-change if Start
// returned before its retained view was complete; one cleared before the
// restart stays cleared, and none expires with age (a Pi switched off
// for a weekend must still be known).
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
	pub.pub(t, wire.StateTopic("gone"), 1, true, "online")
	pub.pub(t, wire.StateTopic("gone"), 1, true, "") // cleared
	live := mustConnect(t, e.MQTTURL(), transport.Options{}, "live")
	live.sub(t, wire.StateTopic("pi-live"))
	pub.pub(t, wire.StateTopic("pi-live"), 1, true, "online")
	if m := live.next(t); m.Topic() != wire.StateTopic("pi-live") || m.Retained() {
		t.Errorf("a subscriber got %s (retained %v), want pi-live's publish as live", m.Topic(), m.Retained())
	}
	live.Disconnect(0)
	nc, err := e.ConnectNATS()
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if si, err := js.Stream(t.Context(), "$MQTT_rmsgs"); err != nil {
		t.Errorf("the retained stream: %v", err)
	} else if age := si.CachedInfo().Config.MaxAge; age != 0 {
		t.Errorf("retained messages expire after %v, want never", age)
	}
	nc.Close()
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
	for len(seen) < n+1 {
		m := hub.next(t)
		if !m.Retained() {
			t.Fatalf("got live %s, want only retained replays", m.Topic())
		}
		if m.Topic() == wire.StateTopic("gone") {
			t.Errorf("gone was cleared before the restart but came back: %q", m.Payload())
		}
		seen[m.Topic()] = true
	}
	for _, id := range []string{"pi999", "pi-live"} {
		if !seen[wire.StateTopic(id)] {
			t.Errorf("%s not replayed", id)
		}
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

// A closing engine answers or closes every connection it accepts: none is
// left hanging until the client's connect timeout (paho's is 30 s, the
// agent's 10 s). Clients reconnect the moment their connection drops,
// while the engine is still closing; a broker that disconnects its
// clients before it stops listening may take, and never serve nor close,
// the connections that come in between. Here 50 clients reconnect as soon
// as the engine drops them, 20 times over.
func TestCloseLeavesNoConnectionHanging(t *testing.T) {
	for range 20 {
		closeWithClientsReconnecting(t)
	}
}

// plainConnect is an MQTT 3.1.1 CONNECT (clean session, keepalive 60 s)
// for id, without login or will.
func plainConnect(id string) []byte {
	body := append([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, byte(len(id))}, id...)
	return append([]byte{0x10, byte(len(body))}, body...)
}

func closeWithClientsReconnecting(t *testing.T) {
	e, err := natsengine.Start(t.Context(), natsengine.Options{StateDir: t.TempDir(), MQTTListen: "127.0.0.1:0", NATSListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(e.MQTTURL(), "mqtt://")
	var wg sync.WaitGroup
	var mu sync.Mutex
	var hung []string
	ready := make(chan struct{}, 50)
	for i := range 50 {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("c%d", i)
			conn.Write(plainConnect(id))
			buf := make([]byte, 4)
			if _, err := io.ReadFull(conn, buf); err != nil || buf[0] != 0x20 {
				t.Errorf("%s: no CONNACK: %v %x", id, err, buf)
			}
			ready <- struct{}{}
			io.Copy(io.Discard, conn) // until the engine drops it
			conn.Close()
			conn, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return // refused: the engine is gone, as it should be
			}
			defer conn.Close()
			conn.Write(plainConnect(id))
			conn.SetReadDeadline(time.Now().Add(3 * time.Second))
			if _, err := io.ReadFull(conn, buf); errors.Is(err, os.ErrDeadlineExceeded) {
				mu.Lock()
				hung = append(hung, id)
				mu.Unlock()
			}
		}()
	}
	for range 50 {
		<-ready
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if len(hung) > 0 {
		t.Fatalf("%d connections made while the engine closed got no answer and were not closed: %v", len(hung), hung)
	}
}

// An engine that a client connects to and publishes a retained state to,
// and that closes with the client still connected, warns about nothing
// (the hub shows the embedded engine's warnings only).
func TestStartStopQuiet(t *testing.T) {
	var out testenv.SyncBuffer
	log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn}))
	e, err := natsengine.Start(t.Context(), natsengine.Options{StateDir: t.TempDir(), MQTTListen: "127.0.0.1:0", NATSListen: "127.0.0.1:0", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	probe, err := net.Dial("tcp", strings.TrimPrefix(e.MQTTURL(), "mqtt://")) // a port probe
	if err != nil {
		t.Fatal(err)
	}
	probe.Close()
	c, err := connect(e.MQTTURL(), transport.Options{}, "pi1", "")
	if err != nil {
		t.Fatal(err)
	}
	c.pub(t, wire.StateTopic("pi1"), 1, true, "x")
	time.Sleep(100 * time.Millisecond)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	c.Disconnect(0)
	time.Sleep(100 * time.Millisecond)
	if s := out.String(); s != "" {
		t.Errorf("engine logged on a normal start and stop:\n%s", s)
	}
}
