package natsfeed

import (
	"context"
	"fmt"
	"maps"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pifleet/pifleet/internal/wire"
)

// newCluster starts three nodes routed to all three, themselves included
// (so nats-server makes the MQTT streams R3), and waits for a JetStream
// meta leader (before it, a first MQTT CONNECT blocks for seconds).
func newCluster(t *testing.T) []*node {
	t.Helper()
	ports := []int{freePort(t), freePort(t), freePort(t)}
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	var nodes []*node
	for i, p := range ports {
		nodes = append(nodes, newNode(t, fmt.Sprintf("n%d", i+1), t.TempDir(), p, routes))
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		leader, current := false, true
		for _, n := range nodes {
			leader = leader || n.s.JetStreamIsLeader()
			current = current && n.s.JetStreamIsCurrent()
		}
		if leader && current {
			return nodes
		}
		if time.Now().After(deadline) {
			t.Fatal("no JetStream meta leader")
		}
	}
}

// Retained messages published via node 1 are all in the snapshot of a
// feed on node 3 right after it starts: the case where nats-server's own
// MQTT replay to the first subscriber on a node is partial.
func TestClusterSnapshotOnAnotherNode(t *testing.T) {
	nodes := newCluster(t)
	n1, n3 := nodes[0], nodes[2]
	fleet := fleetMsgs(1000)
	retain(t, n1.pi("pub"), fleet...)
	waitStored(t, n1.natsURL(), uint64(len(fleet)))
	if r := replicas(t, n3.natsURL()); r != 3 {
		t.Errorf("got %s with %d replicas, want 3", RetainedStream, r)
	}

	s := newSink()
	start := time.Now()
	f := runFeed(t, Options{URL: n3.natsURL()}, s)
	s.wait(t, "the snapshot", func(*sink) bool { return f.Stats().Snapshots == 1 })
	took := time.Since(start)
	want := map[string]string{}
	for _, m := range fleet {
		want[m.topic] = string(m.payload)
	}
	s.mu.Lock()
	if !maps.Equal(s.view, want) {
		t.Errorf("got %d topics in the snapshot on n3, want the %d published on n1", len(s.view), len(want))
	}
	for _, r := range s.recs[1:] {
		if !r.retained {
			t.Fatalf("got %s with retained=false in the snapshot", r.topic)
		}
	}
	s.mu.Unlock()
	t.Logf("feed on n3: snapshot of %d records published on n1 in %v; MQTT replay to the first subscriber on n3 within 2 s: %d of %d states",
		len(fleet), took, mqttReplay(t, n3, 2*time.Second), len(fleet)/2)

	// Live updates published on node 1 reach the feed on node 3.
	update := stateMsg("pi00001", wire.StateLost, 1)
	retain(t, n1.pi("pub2"), update)
	s.wait(t, "the live update", func(s *sink) bool { return s.view[update.topic] == string(update.payload) })
	if r := s.records(); r[len(r)-1].retained {
		t.Error("got the update retained=true, want false")
	}

	// The stream's leader changes: the feed still gets what follows.
	stepDown(t, n1.natsURL())
	for e := uint64(2); e <= 3; e++ {
		update = stateMsg("pi00002", wire.StateOnline, e)
		retain(t, n1.pi(fmt.Sprintf("pub%d", e+1)), update)
		s.wait(t, "an update after the leader change", func(s *sink) bool { return s.view[update.topic] == string(update.payload) })
	}
	t.Logf("after a leader change: %+v", f.Stats())
}

// stepDown makes the retained stream's leader step down and waits for a
// new one.
func stepDown(t *testing.T, url string) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	before := leader(t, js)
	if _, err := nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+RetainedStream, nil, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if l := leader(t, js); l != "" && l != before {
			t.Logf("%s leader: %s → %s", RetainedStream, before, l)
			return
		}
	}
	t.Fatalf("%s leader is still %s", RetainedStream, before)
}

func leader(t *testing.T, js jetstream.JetStream) string {
	s, err := js.Stream(context.Background(), RetainedStream)
	if err != nil || s.CachedInfo().Cluster == nil {
		return ""
	}
	return s.CachedInfo().Cluster.Leader
}

func replicas(t *testing.T, url string) int {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	s, err := js.Stream(context.Background(), RetainedStream)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().Config.Replicas
}

// mqttReplay counts the retained states an MQTT subscriber on n gets
// within d (for the log only: it varies from run to run).
func mqttReplay(t *testing.T, n *node, d time.Duration) int64 {
	var got atomic.Int64
	c := n.pi("hubmqtt")
	c.Subscribe(wire.FilterAllStates, 0, func(_ mqtt.Client, m mqtt.Message) {
		if m.Retained() {
			got.Add(1)
		}
	}).WaitTimeout(10 * time.Second)
	time.Sleep(d)
	return got.Load()
}

// The node that hosts the feed's consumer goes away: the feed starts over
// on what is left (reconnecting to another node if it was its own) and
// gets the updates published after.
func TestClusterConsumerNodeLost(t *testing.T) {
	nodes := newCluster(t)
	fleet := fleetMsgs(100)
	retain(t, nodes[0].pi("pub"), fleet...)
	waitStored(t, nodes[0].natsURL(), uint64(len(fleet)))

	s := newSink()
	f := runFeed(t, Options{URL: nodes[2].natsURL(), NATSOptions: []nats.Option{nats.ReconnectWait(50 * time.Millisecond)}}, s)
	s.wait(t, "the snapshot", func(*sink) bool { return f.Stats().Snapshots == 1 })

	host := consumerHost(t, nodes[0].natsURL())
	var survivor *node
	for _, n := range nodes {
		if n.opts.ServerName == host {
			n.stop()
		} else if survivor == nil {
			survivor = n
		}
	}
	start := time.Now()
	update := stateMsg("pi00003", wire.StateLost, 1)
	publishes := retainStored(t, survivor.pi("pub2"), survivor.natsURL(), update)
	s.wait(t, "the update after the node loss", func(s *sink) bool { return s.view[update.topic] == string(update.payload) })
	t.Logf("consumer host %s stopped; the feed had the next update %v later (stored at publish %d): %+v", host, time.Since(start), publishes, f.Stats())
	want := map[string]string{}
	for _, m := range fleet {
		want[m.topic] = string(m.payload)
	}
	want[update.topic] = string(update.payload)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !maps.Equal(s.view, want) {
		t.Errorf("got %d topics after the node loss, want %d", len(s.view), len(want))
	}
}

// consumerHost is the server that hosts the feed's ordered consumer (the
// only consumer of the retained stream with two filter subjects).
func consumerHost(t *testing.T, url string) string {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	s, err := js.Stream(context.Background(), RetainedStream)
	if err != nil {
		t.Fatal(err)
	}
	l := s.ListConsumers(context.Background())
	for ci := range l.Info() {
		if len(ci.Config.FilterSubjects) == 2 && ci.Cluster != nil {
			return ci.Cluster.Leader
		}
	}
	t.Fatalf("no consumer of the feed: %v", l.Err())
	return ""
}
