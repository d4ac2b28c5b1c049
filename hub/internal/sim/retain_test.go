package sim

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/wire"
)

// TestHeartbeatsNotRetained runs one simulated Pi against a real Mosquitto:
// its heartbeats reach a live subscriber, but the broker's retained status
// stays the session's first one until RetainEvery has passed (the agent's
// rule, PROTOCOL.md), so a quiet fleet does not make its broker store every
// heartbeat.
func TestHeartbeatsNotRetained(t *testing.T) {
	m := testenv.StartMosquitto(t, "")
	var mu sync.Mutex
	var live []uint64 // seq of every status heard live
	watcher := connect(t, m.URL, "watcher")
	watcher.Subscribe(wire.FilterAllStatuses, 0, func(_ mqtt.Client, msg mqtt.Message) {
		st, err := wire.DecodeStatus(msg.Payload())
		if err != nil || msg.Retained() {
			return
		}
		mu.Lock()
		live = append(live, st.Seq)
		mu.Unlock()
	}).WaitTimeout(5 * time.Second)

	s, err := New(Config{Agents: 1, Brokers: []string{m.URL}, Heartbeat: 200 * time.Millisecond, RetainEvery: 2 * time.Second, Prefix: "r-"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	testenv.Eventually(t, 10*time.Second, func() string {
		mu.Lock()
		defer mu.Unlock()
		if len(live) < 5 {
			return fmt.Sprintf("heard %d statuses live, want 5", len(live))
		}
		return ""
	})
	if seq := retainedSeq(t, m.URL); seq != 1 {
		t.Errorf("retained status has seq %d after several heartbeats, want 1 (the session's first; heartbeats not retained)", seq)
	}
	// RetainEvery later a heartbeat refreshes the retained copy.
	testenv.Eventually(t, 10*time.Second, func() string {
		if seq := retainedSeq(t, m.URL); seq <= 1 {
			return fmt.Sprintf("retained status still seq %d, want a refresh after RetainEvery", seq)
		}
		return ""
	})
}

func connect(t *testing.T, url, id string) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(id).SetCleanSession(true))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", url, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

// retainedSeq subscribes anew and returns the seq of the retained status the
// broker replays (0: none within a second).
func retainedSeq(t *testing.T, url string) uint64 {
	t.Helper()
	got := make(chan uint64, 1)
	c := connect(t, url, fmt.Sprintf("replay-%d", time.Now().UnixNano()))
	defer c.Disconnect(0)
	c.Subscribe(wire.FilterAllStatuses, 0, func(_ mqtt.Client, msg mqtt.Message) {
		if !msg.Retained() {
			return
		}
		if st, err := wire.DecodeStatus(msg.Payload()); err == nil {
			select {
			case got <- st.Seq:
			default:
			}
		}
	}).WaitTimeout(5 * time.Second)
	select {
	case seq := <-got:
		return seq
	case <-time.After(time.Second):
		return 0
	}
}
