package natsfeed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pifleet/pifleet/internal/wire"
)

// node is one embedded nats-server with JetStream and MQTT on loopback.
type node struct {
	t    testing.TB
	opts server.Options // as started (restart reuses it)
	s    *server.Server
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// newNode starts a server named name storing into dir. routes, when set,
// makes it a cluster member listening for routes on clusterPort.
func newNode(t testing.TB, name, dir string, clusterPort int, routes []string) *node {
	t.Helper()
	o := server.Options{
		ServerName: name, // MQTT needs one with JetStream
		Host:       "127.0.0.1", Port: freePort(t),
		JetStream: true, StoreDir: dir,
		MQTT:   server.MQTTOpts{Host: "127.0.0.1", Port: freePort(t)},
		NoSigs: true, NoLog: true,
	}
	if len(routes) > 0 {
		o.Cluster = server.ClusterOpts{Name: "pf", Host: "127.0.0.1", Port: clusterPort}
		for _, r := range routes {
			o.Routes = append(o.Routes, server.RoutesFromStr(r)...)
		}
	}
	n := &node{t: t, opts: o}
	n.start()
	t.Cleanup(n.stop)
	return n
}

func (n *node) start() {
	n.t.Helper()
	o := n.opts // the server keeps and changes its options
	s, err := server.NewServer(&o)
	if err != nil {
		n.t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(30 * time.Second) { // a loaded CI machine
		n.t.Fatalf("%s: not ready", n.opts.ServerName)
	}
	n.s = s
}

func (n *node) stop() {
	if n.s != nil {
		n.s.Shutdown()
		n.s.WaitForShutdown()
		n.s = nil
	}
}

// restart stops the server and starts it again on the same ports and
// store directory.
func (n *node) restart() {
	n.stop()
	n.start()
}

func (n *node) natsURL() string { return "nats://127.0.0.1:" + strconv.Itoa(n.opts.Port) }
func (n *node) mqttURL() string { return "tcp://127.0.0.1:" + strconv.Itoa(n.opts.MQTT.Port) }

// pi publishes as one MQTT client (a client id may not contain '.' on
// nats-server). It retries its connect: right after a node loss,
// nats-server refuses MQTT connects until its session stream has a leader.
func (n *node) pi(id string) mqtt.Client {
	n.t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(n.mqttURL()).SetClientID(id).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(30 * time.Second).SetOrderMatters(true).
		SetConnectRetry(true).SetConnectRetryInterval(200 * time.Millisecond))
	tok := c.Connect()
	if !tok.WaitTimeout(60*time.Second) || tok.Error() != nil {
		n.t.Fatalf("MQTT connect %s to %s: %v", id, n.opts.ServerName, tok.Error())
	}
	n.t.Cleanup(func() { c.Disconnect(0) })
	return c
}

// retain publishes retained messages at QoS 1 and waits for every PUBACK.
func retain(t testing.TB, c mqtt.Client, msgs ...msg) {
	t.Helper()
	toks := make([]mqtt.Token, len(msgs))
	for i, m := range msgs {
		toks[i] = c.Publish(m.topic, 1, true, m.payload)
	}
	for i, tok := range toks {
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", msgs[i].topic, tok.Error())
		}
	}
}

type msg struct {
	topic   string
	payload []byte
}

func stateMsg(id string, s wire.Lifecycle, epoch uint64) msg {
	b, _ := json.Marshal(wire.State{V: wire.ProtocolVersion, State: s, Epoch: epoch, Time: time.Unix(1_700_000_000, 0).UTC()})
	return msg{wire.StateTopic(id), b}
}

func statusMsg(id string, epoch, seq uint64) msg {
	// About the size of a real Pi's status (~1 KB).
	b, _ := json.Marshal(wire.Status{V: wire.ProtocolVersion, ID: id, Hostname: id, AgentVersion: "test", Seq: seq, Epoch: epoch,
		HeartbeatS: 30, Labels: []string{"site=lab", "rack=3"},
		Interfaces: []wire.Interface{{Name: "lo", Up: true, Loopback: true}, {Name: "eth0", MAC: "dc:a6:32:01:02:03", Up: true, DefaultRoute: true},
			{Name: "wlan0", MAC: "dc:a6:32:01:02:04", Up: true, SSID: "lab-wifi"}},
		Addresses: []wire.Address{{Address: "127.0.0.1", Prefix: 8, Family: wire.IPv4, Interface: "lo", Loopback: true},
			{Address: "192.168.1.23", Prefix: 24, Family: wire.IPv4, Interface: "eth0", Primary: true},
			{Address: "2001:db8::dea6:32ff:fe01:203", Prefix: 64, Family: wire.IPv6, Interface: "eth0", Primary: true},
			{Address: "fe80::dea6:32ff:fe01:203", Prefix: 64, Family: wire.IPv6, Interface: "eth0", LinkLocal: true},
			{Address: "192.168.7.40", Prefix: 24, Family: wire.IPv4, Interface: "wlan0"}}})
	return msg{wire.StatusTopic(id), b}
}

// fleetMsgs returns a state and a status for each of n Pis.
func fleetMsgs(n int) []msg {
	var ms []msg
	for i := range n {
		id := fmt.Sprintf("pi%05d", i)
		ms = append(ms, stateMsg(id, wire.StateOnline, 1), statusMsg(id, 1, 1))
	}
	return ms
}

// waitStored waits until the retained stream holds want records.
func waitStored(t testing.TB, url string, want uint64) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	var got uint64
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		s, err := js.Stream(context.Background(), RetainedStream)
		if err == nil {
			got = s.CachedInfo().State.Msgs
			if got == want {
				return
			}
		}
	}
	t.Fatalf("%s holds %d records, want %d", RetainedStream, got, want)
}

// gone waits until the retained stream no longer holds topic's record
// (nats-server removes a deleted one's empty record after storing it).
func gone(t testing.TB, url, topic string) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	subj, _ := filterSubject(topic)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		s, err := js.Stream(context.Background(), RetainedStream)
		if err != nil {
			continue
		}
		if _, err := s.GetLastMsgForSubject(context.Background(), subj); errors.Is(err, jetstream.ErrMsgNotFound) {
			return
		}
	}
	t.Fatalf("%s still holds %s", RetainedStream, topic)
}

// rec is one record the feed passed on.
type rec struct {
	topic    string
	payload  string
	retained bool
}

// sink collects what a feed passes on, and the view it builds.
type sink struct {
	mu        sync.Mutex
	recs      []rec
	view      map[string]string // topic → payload; deleted topics removed
	snapshots int               // OnSnapshot calls
	changed   chan struct{}
}

func newSink() *sink { return &sink{view: map[string]string{}, changed: make(chan struct{}, 1)} }

func (s *sink) handle(topic string, payload []byte, retained bool) {
	s.mu.Lock()
	s.recs = append(s.recs, rec{topic, string(payload), retained})
	if len(payload) == 0 {
		delete(s.view, topic)
	} else {
		s.view[topic] = string(payload)
	}
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func (s *sink) onSnapshot() {
	s.mu.Lock()
	s.snapshots++
	s.recs = append(s.recs, rec{topic: "--snapshot--"})
	s.mu.Unlock()
}

// wait waits until cond holds (checked under the lock).
func (s *sink) wait(t testing.TB, what string, cond func(s *sink) bool) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		s.mu.Lock()
		ok := cond(s)
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-s.changed:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			s.mu.Lock()
			defer s.mu.Unlock()
			t.Fatalf("timed out waiting for %s; got %d records, last %+v", what, len(s.recs), s.recs[max(0, len(s.recs)-3):])
		}
	}
}

// runFeed runs a feed until the test ends.
func runFeed(t testing.TB, opts Options, s *sink, tune ...func(*Feed)) *Feed {
	t.Helper()
	opts.OnSnapshot = s.onSnapshot
	if opts.Logger == nil { // the feed's warnings explain a failure
		opts.Logger = slog.New(slog.NewTextHandler(testLog{t}, nil))
	}
	f, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range tune {
		fn(f)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx, s.handle) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return f
}

// testLog writes to the test's log while it runs.
type testLog struct{ t testing.TB }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// proxy forwards TCP connections to target until paused; pausing cuts
// every connection and refuses new ones until resume.
type proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	paused bool
	conns  []net.Conn
}

func newProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.pause() })
	return p
}

func (p *proxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		paused := p.paused
		p.mu.Unlock()
		if paused {
			c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(u, c); u.Close() }()
		go func() { _, _ = io.Copy(c, u); c.Close() }()
	}
}

func (p *proxy) pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) resume() {
	p.mu.Lock()
	p.paused = false
	p.mu.Unlock()
}

// records returns a copy of what the feed passed on so far.
func (s *sink) records() []rec {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]rec(nil), s.recs...)
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// retainStored publishes m retained via c until the stream at url holds
// it, and returns how many publishes that took: nats-server acks a
// retained publish whose store failed (no stream leader yet, after a node
// loss) and only logs the failure.
func retainStored(t testing.TB, c mqtt.Client, url string, m msg) int {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	subj, _ := filterSubject(m.topic)
	for attempt, deadline := 1, time.Now().Add(60*time.Second); time.Now().Before(deadline); attempt++ {
		retain(t, c, m)
		for wait := time.Now().Add(2 * time.Second); time.Now().Before(wait); time.Sleep(20 * time.Millisecond) {
			s, err := js.Stream(context.Background(), RetainedStream)
			if err != nil {
				continue
			}
			if r, err := s.GetLastMsgForSubject(context.Background(), subj); err == nil && string(r.Data) == string(m.payload) {
				return attempt
			}
		}
	}
	t.Fatalf("%s never stored %s", RetainedStream, m.topic)
	return 0
}
