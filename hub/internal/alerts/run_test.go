package alerts

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pifleet/pifleet/hub/internal/alerts/alertstest"
	"github.com/pifleet/pifleet/hub/internal/fleet"
	"github.com/pifleet/pifleet/internal/wire"
)

// record is an emit that keeps what it is given.
type record struct {
	mu  sync.Mutex
	got []Alert
}

func (r *record) emit(_ context.Context, a Alert) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, a)
}

// take returns what was emitted since the last take, as heads.
func (r *record) take() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := heads(r.got)
	r.got = nil
	return s
}

// Run, live on the real fleet, in a bubble whose clock moves only when
// every goroutine waits: a hub restart with 30 Pis claimed online (20 come
// back) is one alert at the limit, then a switch dying under 8 of them is
// one more, then one Pi's return is its own. The times are exact: nothing
// is emitted a tick early.
func TestRunOnTheFleet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		f := fleet.New(time.Now)
		w := alertstest.Feed{T: t, F: f}
		p := New(Config{})
		var r record
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); p.Run(ctx, f, r.emit) }()
		synctest.Wait() // subscribed, quiet start begun at t0

		// The hub subscribes; the broker replays what it retained.
		f.Resync(t0)
		for i := range 30 {
			id := fmt.Sprintf("pi-%04d", i)
			w.State(id, wire.StateOnline, 1, true)
			w.Status(id, 1, 1, 30, true)
		}
		w.State("pi-gone", wire.StateLost, 1, true)
		time.Sleep(5 * time.Second)
		for i := range 20 { // a new session each
			id := fmt.Sprintf("pi-%04d", i)
			w.State(id, wire.StateOnline, 2, false)
			w.Status(id, 2, 1, 30, false)
		}
		time.Sleep(84 * time.Second) // t0+89s
		synctest.Wait()
		if got := r.take(); got != "" {
			t.Fatalf("emitted before the restart limit (90 s):\n%s", got)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if got, want := r.take(), "restart: 20 Pis reconnected after the hub restart; 10 still away"; got != want {
			t.Fatalf("at the limit: %q, want %q", got, want)
		}

		// Eight wills within a second: after a pause of one window, one alert.
		time.Sleep(time.Minute)
		for i := range 8 {
			w.State(fmt.Sprintf("pi-%04d", i), wire.StateLost, 2, false)
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(4 * time.Second)
		synctest.Wait()
		if got := r.take(); got != "" {
			t.Fatalf("emitted while the burst went on: %q", got)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if got, want := r.take(), "burst-lost: 8 Pis lost"; got != want {
			t.Fatalf("after the burst: %q, want %q", got, want)
		}
		time.Sleep(time.Minute)
		w.State("pi-0003", wire.StateOnline, 3, false)
		time.Sleep(6 * time.Second)
		synctest.Wait()
		if got, want := r.take(), "online pi-0003"; got != want {
			t.Fatalf("one Pi back: %q, want %q", got, want)
		}
		cancel()
		<-done
		if st := p.Stats(); st.Summarised != 8 {
			t.Errorf("stats %+v, want the 8 wills summarised", st)
		}
	})
}

// The policy is for every front end: it must not depend on Slack, or on
// the Slack adapter.
func TestNoSlackDependency(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.Contains(dep, "slack") {
			t.Errorf("hub/internal/alerts depends on %s", dep)
		}
	}
}
