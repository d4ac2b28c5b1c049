package link

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/wire"
)

// startBroker runs a real broker, a Mosquitto process (these tests also
// run as ARMv7 under qemu, where a host process is the one real broker at
// hand; the hub's embedded engine runs the link in hub/internal/broker's
// TestAgentLinkUnderACL and the e2e tests), and returns its URL.
func startBroker(t *testing.T) string {
	t.Helper()
	return testenv.StartMosquitto(t, "").URL
}

// cutter is a TCP proxy in front of a broker that can drop every
// connection through it at once, as a dead link or a broker that drops a
// session does: the broker sees the connection end without DISCONNECT
// and publishes the will. It goes on accepting new connections.
type cutter struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

// startCutter proxies to the broker at url and returns the URL to use.
func startCutter(t *testing.T, url string) (*cutter, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cutter{ln: ln}
	target := strings.TrimPrefix(url, "mqtt://")
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			c.mu.Lock()
			c.conns = append(c.conns, in, out)
			c.mu.Unlock()
			go func() { io.Copy(out, in); out.Close() }()
			go func() { io.Copy(in, out); in.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close(); c.cut() })
	return c, "mqtt://" + ln.Addr().String()
}

// cut closes every connection through the proxy.
func (c *cutter) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		conn.Close()
	}
	c.conns = nil
}

// watcher records every state message of a device.
type watcher struct {
	mu     sync.Mutex
	states []wire.State
}

func watch(t *testing.T, url, id string) *watcher {
	w := &watcher{}
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("watcher"))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("watcher connect: %v", tok.Error())
	}
	tok := c.Subscribe(wire.StateTopic(id), 1, func(_ paho.Client, m paho.Message) {
		if len(m.Payload()) == 0 { // a deletion is recorded as the zero State
			w.mu.Lock()
			w.states = append(w.states, wire.State{})
			w.mu.Unlock()
			return
		}
		if st, err := wire.DecodeState(m.Payload()); err == nil {
			w.mu.Lock()
			w.states = append(w.states, st)
			w.mu.Unlock()
		}
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("watcher subscribe: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(50) })
	return w
}

// waitFor waits for a state message matching cond and returns it.
func (w *watcher) waitFor(t *testing.T, what string, cond func(wire.State) bool) wire.State {
	t.Helper()
	var found wire.State
	testenv.Eventually(t, 30*time.Second, func() string {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, s := range w.states {
			if cond(s) {
				found = s
				return ""
			}
		}
		return fmt.Sprintf("no state message %s; saw %+v", what, w.states)
	})
	return found
}

// births counts the online messages of session epoch e seen so far.
func (w *watcher) births(e uint64) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, s := range w.states {
		if s.State == wire.StateOnline && s.Epoch == e {
			n++
		}
	}
	return n
}

// retainedState is what the broker retains on id's state topic, read with
// a fresh subscription; ok is false when nothing is retained.
func retainedState(t *testing.T, url, id string) (st wire.State, ok bool) {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("reader"))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("reader connect: %v", tok.Error())
	}
	defer c.Disconnect(0)
	got := make(chan []byte, 1)
	c.Subscribe(wire.StateTopic(id), 1, func(_ paho.Client, m paho.Message) {
		if m.Retained() {
			select {
			case got <- m.Payload():
			default:
			}
		}
	}).WaitTimeout(5 * time.Second)
	select {
	case p := <-got:
		st, err := wire.DecodeState(p)
		return st, err == nil
	case <-time.After(time.Second):
		return wire.State{}, false
	}
}

func run(t *testing.T, o Options) (*Link, context.CancelFunc, chan error) {
	t.Helper()
	o.MinBackoff, o.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	l, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return l, cancel, done
}

// waitConnected waits until l has an MQTT session.
func waitConnected(t *testing.T, l *Link) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, func() string {
		if !l.Connected() {
			return "the link is not connected"
		}
		return ""
	})
}

func TestBirthWillRebirthAndCleanShutdown(t *testing.T) {
	url := startBroker(t)
	w := watch(t, url, "pi1")
	proxy, via := startCutter(t, url)
	l, cancel, done := run(t, Options{Brokers: []string{via}, ID: "pi1", KeepAlive: 10 * time.Second})

	first := w.waitFor(t, "online", func(s wire.State) bool { return s.State == wire.StateOnline })
	if first.Epoch == 0 || l.Epoch() != first.Epoch {
		t.Fatalf("birth epoch %d, link epoch %d", first.Epoch, l.Epoch())
	}
	// The connection drops as if the link died: the will carries the
	// same epoch, and the link comes back with a higher one.
	waitConnected(t, l)
	proxy.cut()
	lost := w.waitFor(t, "lost (will)", func(s wire.State) bool { return s.State == wire.StateLost })
	if lost.Epoch != first.Epoch {
		t.Errorf("will epoch = %d, want the session's %d", lost.Epoch, first.Epoch)
	}
	second := w.waitFor(t, "rebirth", func(s wire.State) bool { return s.State == wire.StateOnline && s.Epoch > first.Epoch })

	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v, want nil on shutdown", err)
	}
	done <- nil // for the cleanup
	off := w.waitFor(t, "offline", func(s wire.State) bool { return s.State == wire.StateOffline })
	if off.Epoch != second.Epoch {
		t.Errorf("offline epoch = %d, want %d", off.Epoch, second.Epoch)
	}
}

// TestClockBehind: a Pi without RTC boots at 1970. The broker still holds
// the retained state of the previous boot with a (wall-clock) epoch far
// above ours; the link must move past it so a late will of the old
// session cannot be taken as newer than our birth.
func TestClockBehind(t *testing.T) {
	url := startBroker(t)
	const id = "pi.kitchen" // a '.' in the id changes the client id, not the topics
	old, _ := json.Marshal(wire.State{V: 1, State: wire.StateLost, Epoch: 1_795_000_000_000})
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("seed"))
	if tok := c.Connect(); !tok.WaitTimeout(5 * time.Second) {
		t.Fatal("seed connect")
	}
	c.Publish(wire.StateTopic(id), 1, true, old).WaitTimeout(5 * time.Second)
	c.Disconnect(50)

	w := watch(t, url, id)
	epoch1970 := time.Unix(5, 0)
	run(t, Options{Brokers: []string{url}, ID: id, Now: func() time.Time { return epoch1970 }})
	w.waitFor(t, "online with an epoch above the old session's", func(s wire.State) bool {
		return s.State == wire.StateOnline && s.Epoch > 1_795_000_000_000
	})
}

func TestCommandsDelivered(t *testing.T) {
	url := startBroker(t)
	got := make(chan []byte, 1)
	l, _, _ := run(t, Options{Brokers: []string{url}, ID: "pi1", OnCommand: func(p []byte) { got <- p }})
	waitConnected(t, l)
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("hub"))
	c.Connect().WaitTimeout(5 * time.Second)
	defer c.Disconnect(50)
	c.Publish(wire.CmdTopic("pi1"), 1, false, []byte(`{"v":1}`)).WaitTimeout(5 * time.Second)
	select {
	case p := <-got:
		if string(p) != `{"v":1}` {
			t.Errorf("payload = %q", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("command not delivered")
	}
}

func TestOptionsRejected(t *testing.T) {
	for name, o := range map[string]Options{
		"short keepalive": {Brokers: []string{"mqtt://x:1"}, ID: "pi", KeepAlive: time.Second},
		"bad id":          {Brokers: []string{"mqtt://x:1"}, ID: "pi/1"},
		"no broker":       {ID: "pi"},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: New accepted %+v", name, o)
		}
	}
}

// TestNoBrokerKeepsTrying: with no broker the link neither returns nor
// crashes; it stops cleanly when asked.
func TestNoBrokerKeepsTrying(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	l, cancel, done := run(t, Options{Brokers: []string{"mqtt://" + addr}, ID: "pi1", ConnectTimeout: 200 * time.Millisecond})
	time.Sleep(300 * time.Millisecond)
	if l.Connected() {
		t.Fatal("connected to nothing")
	}
	if err := l.PublishStatus(wire.Status{}, true); err != ErrNotConnected {
		t.Errorf("PublishStatus while down = %v, want ErrNotConnected", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	done <- nil
}

// TestBackoffFullJitter: the wait after n failures is uniform in
// [0, min(cap, base·2ⁿ⁻¹)]; no wait before the first failure.
func TestBackoffFullJitter(t *testing.T) {
	top := func(n int64) int64 { return n - 1 } // the largest value randN may return
	zero := func(int64) int64 { return 0 }
	for _, c := range []struct {
		n    int
		want time.Duration
	}{{0, 0}, {1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {6, 32 * time.Second}, {7, 60 * time.Second}, {40, 60 * time.Second}, {1000, 60 * time.Second}} {
		if got := Backoff(c.n, time.Second, time.Minute, top); got != c.want {
			t.Errorf("Backoff(%d) upper end = %v, want %v", c.n, got, c.want)
		}
		if got := Backoff(c.n, time.Second, time.Minute, zero); got != 0 {
			t.Errorf("Backoff(%d) lower end = %v, want 0 (full jitter)", c.n, got)
		}
	}
	// The defaults are the documented ones.
	var o Options = Options{ID: "pi", Brokers: []string{"mqtt://x:1"}}
	if err := o.ensureDefaults(); err != nil {
		t.Fatal(err)
	}
	if o.MinBackoff != time.Second || o.MaxBackoff != time.Minute {
		t.Errorf("default backoff %v..%v, want 1s..1m", o.MinBackoff, o.MaxBackoff)
	}
}

// TestRebirthWhenStateDisturbed: someone deletes the live Pi's retained
// state (or marks its session lost); the link publishes its birth again,
// same epoch, so hubs never keep a live Pi unknown or lost.
func TestRebirthWhenStateDisturbed(t *testing.T) {
	url, id := startBroker(t), "pi.kitchen"
	w := watch(t, url, id)
	l, _, _ := run(t, Options{Brokers: []string{url}, ID: id, KeepAlive: 10 * time.Second})
	first := w.waitFor(t, "online", func(s wire.State) bool { return s.State == wire.StateOnline })
	waitConnected(t, l)
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("stranger"))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("stranger connect: %v", tok.Error())
	}
	defer c.Disconnect(50)

	// The broker fans the stranger's publish and the link's answer out
	// from different connections, so the re-birth may reach the watcher
	// before the disturbance does: count births of this session and read
	// what the broker keeps, instead of ordering the watcher's record.
	rebornAfter := func(what string, before int) {
		t.Helper()
		testenv.Eventually(t, 30*time.Second, func() string {
			if n := w.births(first.Epoch); n <= before {
				return fmt.Sprintf("%s: %d births of epoch %d seen, want a re-birth after the %d before", what, n, first.Epoch, before)
			}
			if st, ok := retainedState(t, url, id); !ok || st.State != wire.StateOnline || st.Epoch != first.Epoch {
				return fmt.Sprintf("%s: the broker retains %+v (present %v), want online with epoch %d", what, st, ok, first.Epoch)
			}
			return ""
		})
	}
	before := w.births(first.Epoch)
	c.Publish(wire.StateTopic(id), 1, true, []byte{}).WaitTimeout(5 * time.Second)
	rebornAfter("after the state was deleted", before)

	before = w.births(first.Epoch)
	forged, _ := json.Marshal(wire.State{V: 1, State: wire.StateLost, Epoch: first.Epoch})
	c.Publish(wire.StateTopic(id), 1, true, forged).WaitTimeout(5 * time.Second)
	rebornAfter("after a forged lost", before)
}

// TestSessionOnTheBroker: what the link asks of the broker. Its client id
// comes from wire.ClientID (no '.', which nats-server refuses), and it
// reads its own state at QoS 0 (retained replay and live copies are all
// checkOwnState needs) and its commands at QoS 0 (the hub re-sends until acknowledged).
func TestSessionOnTheBroker(t *testing.T) {
	const id = "pi.kitchen"
	cid := wire.ClientID(wire.ClientAgent, id)
	if cid != "pifleet-agent-pi~kitchen" {
		t.Fatalf("client id %q, want pifleet-agent-pi~kitchen", cid)
	}
	want := map[string]byte{wire.StateTopic(id): 0, wire.CmdTopic(id): 0}
	opts := func(url string) Options {
		return Options{Brokers: []string{url}, ID: id, OnCommand: func([]byte) {}}
	}

	m := testenv.StartMosquitto(t, "log_type subscribe\n")
	l, _, _ := run(t, opts(m.URL))
	waitConnected(t, l)
	// Mosquitto logs "New client connected from … as <client id> (…)"
	// and "<client id> <QoS> <filter>" for every subscription.
	lines := []string{" as " + cid + " "}
	for f, q := range want {
		lines = append(lines, fmt.Sprintf("%s %d %s", cid, q, f))
	}
	testenv.Eventually(t, 10*time.Second, func() string {
		log := m.Log.String()
		for _, line := range lines {
			if !strings.Contains(log, line) {
				return fmt.Sprintf("mosquitto log has no %q:\n%s", line, log)
			}
		}
		return ""
	})
}

// TestBrokerPasswordNeverLogged: a password in a broker URL
// (mqtt://user:secret@host) is not written to the log, in a failed
// connect's line nor in its error.
func TestBrokerPasswordNeverLogged(t *testing.T) {
	var logged testenv.SyncBuffer
	failed := make(chan error, 1)
	l, err := New(Options{
		ID: "pi-1", Brokers: []string{"mqtt://pi-1:s3cret-pw@127.0.0.1:1"}, ConnectTimeout: 2 * time.Second,
		Logger: slog.New(slog.NewTextHandler(&logged, nil)),
		OnConnectFailed: func(err error) {
			select {
			case failed <- err:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	var ferr error
	select {
	case ferr = <-failed:
	case <-time.After(30 * time.Second):
		t.Fatal("no failed connect within 30 s")
	}
	cancel()
	<-done
	if strings.Contains(logged.String(), "s3cret-pw") || strings.Contains(ferr.Error(), "s3cret-pw") {
		t.Errorf("the password is in the log or the error:\n%s\n%v", logged.String(), ferr)
	}
	if !strings.Contains(logged.String(), "pi-1:xxxxx@127.0.0.1:1") {
		t.Errorf("the log does not name the broker, redacted:\n%s", logged.String())
	}
}
