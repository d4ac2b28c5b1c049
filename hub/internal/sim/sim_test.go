package sim

import (
	"context"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/wire"
)

func TestRange(t *testing.T) {
	seen := map[int]int{}
	for i := 0; i < 3; i++ {
		lo, hi := Range(10, i, 3)
		for n := lo; n < hi; n++ {
			seen[n]++
		}
	}
	for n := 0; n < 10; n++ {
		if seen[n] != 1 {
			t.Errorf("Pi %d is in %d shards, want exactly 1", n, seen[n])
		}
	}
	if ID("sim-", 42) != "sim-00042" {
		t.Errorf("ID = %q", ID("sim-", 42))
	}
}

func TestConfigRejected(t *testing.T) {
	for name, c := range map[string]Config{
		"no agents":  {Brokers: []string{"mqtt://127.0.0.1:1"}},
		"bad shard":  {Agents: 10, Shard: 2, Shards: 2, Brokers: []string{"mqtt://127.0.0.1:1"}},
		"bad prefix": {Agents: 10, Prefix: "a/b", Brokers: []string{"mqtt://127.0.0.1:1"}},
		"no broker":  {Agents: 10},
		"bad broker": {Agents: 10, Brokers: []string{"127.0.0.1:1883"}},
		"bad churn":  {Agents: 10, Brokers: []string{"mqtt://127.0.0.1:1"}, Churn: 2},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("%s: New accepted %+v", name, c)
		}
	}
}

// TestSimAgainstBroker: 30 simulated Pis against a real broker (Mosquitto,
// whose log says where each client connected from) publish a retained birth and valid statuses of their session,
// from the source addresses asked for; churn drops connections and the
// links reconnect with a higher epoch.
func TestSimAgainstBroker(t *testing.T) {
	m := testenv.StartMosquitto(t, "")
	url := m.URL
	var mu sync.Mutex
	births := map[string]uint64{}
	statuses := map[string]wire.Status{}
	remotes := map[string]bool{}
	watch := func(_ paho.Client, pk paho.Message) {
		tp, err := wire.ParseTopic(pk.Topic())
		if err != nil {
			t.Errorf("topic %q: %v", pk.Topic(), err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		switch tp.Leaf {
		case wire.LeafState:
			if st, err := wire.DecodeState(pk.Payload()); err == nil && st.State == wire.StateOnline {
				births[tp.Device] = max(births[tp.Device], st.Epoch)
			}
		case wire.LeafStatus:
			st, err := wire.DecodeStatus(pk.Payload())
			if err != nil {
				t.Errorf("status of %s does not decode: %v", tp.Device, err)
				return
			}
			statuses[tp.Device] = st
		}
	}
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("watcher"))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("watcher connect: %v", tok.Error())
	}
	defer c.Disconnect(0)
	tok := c.SubscribeMultiple(map[string]byte{wire.FilterAllStates: 1, wire.FilterAllStatuses: 1}, watch)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("watcher subscribe: %v", tok.Error())
	}
	src := []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")}
	s, err := New(Config{Agents: 60, Shard: 1, Shards: 2, Prefix: "t-", Brokers: []string{url}, Rate: 200,
		Heartbeat: 500 * time.Millisecond, KeepAlive: 10 * time.Second, SourceAddrs: src, Churn: 0.3, Labels: []string{"lab"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	testenv.Eventually(t, 20*time.Second, func() string {
		st := s.Stats()
		mu.Lock()
		defer mu.Unlock()
		if len(births) < 30 || len(statuses) < 30 {
			return "waiting for 30 births and statuses"
		}
		if st.Reconnects == 0 || st.Churned == 0 {
			return "waiting for churn to drop a connection and the link to come back: " + st.String()
		}
		return ""
	})
	// "New client connected from 127.0.0.2:40312 as pifleet-agent-t-00031 (…)"
	connected := regexp.MustCompile(`New client connected from ([0-9.]+):[0-9]+ as ` + regexp.QuoteMeta(wire.ClientID(wire.ClientAgent, "t-")))
	for _, line := range m.Log.Lines() {
		if sm := connected.FindStringSubmatch(line); sm != nil {
			remotes[sm[1]] = true
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for id, st := range statuses {
		if !strings.HasPrefix(id, "t-000") || id < "t-00030" || id > "t-00059" {
			t.Errorf("status from %s: not in shard 1/2 of 60", id)
		}
		if st.Epoch == 0 || st.Epoch > births[id] || st.HeartbeatS != 1 || len(st.Labels) != 1 || st.Health.Model == "" {
			t.Errorf("status of %s: epoch %d (birth %d), heartbeat_s %d, labels %v, model %q", id, st.Epoch, births[id], st.HeartbeatS, st.Labels, st.Health.Model)
		}
		for _, a := range st.Addresses {
			if a.Usable() && !strings.HasPrefix(a.Address, "192.0.2.") && !strings.HasPrefix(a.Address, "198.51.100.") && !strings.HasPrefix(a.Address, "2001:db8:") {
				t.Errorf("%s reports %s: outside the documentation ranges", id, a.Address)
			}
		}
	}
	if !remotes["127.0.0.2"] || !remotes["127.0.0.3"] || len(remotes) != 2 {
		t.Errorf("sessions came from %v, want 127.0.0.2 and 127.0.0.3", remotes)
	}
	if st := s.Stats(); st.Agents != 30 || st.Publishes == 0 || st.Connected != 0 {
		t.Errorf("stats after stop: %s", st)
	}
}
