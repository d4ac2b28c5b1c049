package lease

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/testenv/natstest"
)

// natsServer runs a real nats-server with JetStream on loopback.
func natsServer(t *testing.T) string { return natstest.Server(t).ClientURL() }

type hub struct {
	l      *Lease
	nc     *nats.Conn
	cancel context.CancelFunc
	done   chan struct{}
}

func startHub(t *testing.T, url, id string, ttl time.Duration) *hub {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	l, err := New(Options{Conn: nc, Name: "alerts", Holder: id, TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &hub{l: l, nc: nc, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(h.done); l.Run(ctx) }()
	t.Cleanup(func() { h.stop(); nc.Close() })
	return h
}

func (h *hub) stop() { h.cancel(); <-h.done }

// holders names the hubs that hold the lease now.
func holders(hubs map[string]*hub) []string {
	var ids []string
	for id, h := range hubs {
		if h.l.Held() {
			ids = append(ids, id)
		}
	}
	return ids
}

// Three hubs, one lease: exactly one holds it; a clean stop hands it over
// at once; a holder that dies without a word (its connection gone) loses
// it when the key expires, and another takes it. Never two at a time.
func TestOneHolder(t *testing.T) {
	const ttl = 2 * time.Second
	url := natsServer(t)
	hubs := map[string]*hub{}
	for _, id := range []string{"hub1", "hub2", "hub3"} {
		hubs[id] = startHub(t, url, id, ttl)
	}
	one := func(what string, within time.Duration, not string) string {
		t.Helper()
		var got string
		testenv.Eventually(t, within, func() string {
			hs := holders(hubs)
			if len(hs) != 1 || hs[0] == not {
				return fmt.Sprintf("%s: holders %v, want one (not %q)", what, hs, not)
			}
			got = hs[0]
			return ""
		})
		return got
	}
	// Sample all along, the stopped and the dead included: never two holders.
	all := map[string]*hub{}
	for id, h := range hubs {
		all[id] = h
	}
	stopWatch := make(chan struct{})
	watchDone := make(chan string, 1)
	go func() {
		for {
			select {
			case <-stopWatch:
				watchDone <- ""
				return
			case <-time.After(10 * time.Millisecond):
				if hs := holders(all); len(hs) > 1 {
					watchDone <- fmt.Sprint(hs)
					return
				}
			}
		}
	}()

	first := one("at start", 10*time.Second, "")
	hubs[first].stop() // clean: releases the key
	start := time.Now()
	delete(hubs, first)
	second := one("after a clean stop", 10*time.Second, first)
	t.Logf("%s took over from %s %v after its clean stop", second, first, time.Since(start))

	hubs[second].nc.Close() // dies: no release, no renewal
	start = time.Now()
	dead := hubs[second]
	delete(hubs, second)
	third := one("after the holder died", 10*time.Second, second)
	t.Logf("%s took over from %s %v after it died (TTL %v)", third, second, time.Since(start), ttl)
	if dead.l.Held() {
		t.Errorf("%s still thinks it holds the lease after losing its connection", second)
	}
	close(stopWatch)
	if two := <-watchDone; two != "" {
		t.Fatalf("two holders at once: %s", two)
	}
}
