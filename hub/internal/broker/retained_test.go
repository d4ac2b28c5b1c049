package broker

import (
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pifleet/pifleet/internal/testenv"
)

func startTestBroker(t *testing.T, dir string) *Broker {
	t.Helper()
	b, err := Start(Options{Listen: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type seen struct {
	mu   sync.Mutex
	msgs map[string]string
	ret  map[string]bool
}

func subscribeAll(t *testing.T, b *Broker) *seen {
	s := &seen{msgs: map[string]string{}, ret: map[string]bool{}}
	if err := b.Subscribe("pifleet/v1/devices/+/state", func(topic string, payload []byte, retained bool) {
		s.mu.Lock()
		s.msgs[topic], s.ret[topic] = string(payload), retained
		s.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *seen) get(topic string) (string, bool, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.msgs[topic]
	return m, s.ret[topic], ok
}

// TestRetainedSurvivesRestartAndAge: retained messages are written to the
// store (batched) and replayed after a restart, flagged retained; one
// cleared before the restart stays cleared; and a message far older than a
// day is still there (mochi's default deletes retained messages after 24 h,
// so a Pi switched off for a weekend would have vanished).
func TestRetainedSurvivesRestartAndAge(t *testing.T) {
	dir := t.TempDir()
	b := startTestBroker(t, dir)
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("pub"))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	pub := func(topic, payload string) {
		if tok := c.Publish(topic, 1, true, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	pub("pifleet/v1/devices/pi1/state", `{"v":1,"state":"lost"}`)
	pub("pifleet/v1/devices/pi2/state", `{"v":1,"state":"online"}`)
	pub("pifleet/v1/devices/pi2/state", "") // cleared
	live := subscribeAll(t, b)
	pub("pifleet/v1/devices/pi3/state", `{"v":1,"state":"online"}`)
	testenv.Eventually(t, 5*time.Second, func() string {
		if _, retained, ok := live.get("pifleet/v1/devices/pi3/state"); !ok || retained {
			return "pi3's live publish not delivered as live"
		}
		if _, retained, ok := live.get("pifleet/v1/devices/pi1/state"); !ok || !retained {
			return "pi1's retained state not replayed as retained"
		}
		return ""
	})
	c.Disconnect(50)
	// Age every stored message by two days before closing.
	b.store.mu.Lock()
	for _, m := range b.store.dirty {
		if m != nil {
			m.Created -= 2 * 24 * 3600
		}
	}
	b.store.mu.Unlock()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b2 := startTestBroker(t, dir)
	defer b2.Close()
	time.Sleep(1500 * time.Millisecond) // mochi's retained-expiry pass runs every second
	after := subscribeAll(t, b2)
	if m, retained, ok := after.get("pifleet/v1/devices/pi1/state"); !ok || !retained || m != `{"v":1,"state":"lost"}` {
		t.Errorf("pi1 after restart: %q retained=%v present=%v", m, retained, ok)
	}
	if _, _, ok := after.get("pifleet/v1/devices/pi3/state"); !ok {
		t.Error("pi3 (two days old) was not kept across the restart")
	}
	if m, _, ok := after.get("pifleet/v1/devices/pi2/state"); ok {
		t.Errorf("pi2 was cleared before the restart but came back: %q", m)
	}
}
