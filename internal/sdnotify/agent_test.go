package sdnotify_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pifleet/pifleet/internal/sdnotify"
	"github.com/pifleet/pifleet/internal/sdnotify/sdnotifytest"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/wire"
)

func status(ip string, problems ...wire.Problem) wire.Status {
	return wire.Status{
		Addresses: []wire.Address{{Address: "fe80::1", LinkLocal: true}, {Address: ip, Primary: true}},
		Health:    wire.Health{Console: &wire.Console{GettyActive: true, GettyState: "active"}, Problems: problems},
	}
}

func TestStatusLine(t *testing.T) {
	for _, tc := range []struct {
		st   wire.Status
		conn bool
		want string
	}{
		{status("192.0.2.10"), true, "ip=192.0.2.10 hub=connected getty=active"},
		{status("192.0.2.10", wire.ProblemUnderVoltage, wire.ProblemHot), false, "ip=192.0.2.10 hub=unreachable getty=active problems=under_voltage,hot"},
		{wire.Status{Addresses: []wire.Address{{Address: "127.0.0.1", Loopback: true}, {Address: "198.51.100.7"}}}, true, "ip=198.51.100.7 hub=connected"},
		{wire.Status{}, false, "ip=none hub=unreachable"},
	} {
		if got := sdnotify.StatusLine(tc.st, tc.conn); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestAgentReadyStatusWatchdog(t *testing.T) {
	rec := &sdnotifytest.Recorder{Interval: 20 * time.Millisecond}
	clk := &clock{t: time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)}
	a := &sdnotify.Agent{N: rec, MaxWait: time.Hour, Stale: time.Minute, Now: clk.now}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()

	a.OnStatus(status("192.0.2.10"), false) // not connected: no READY yet
	a.OnStatus(status("192.0.2.10"), false) // unchanged: no second STATUS
	a.OnStatus(status("192.0.2.10"), true)
	testenv.Eventually(t, 10*time.Second, func() string {
		if rec.Count("READY=1") != 1 {
			return "no READY after a connected status"
		}
		return ""
	})
	if n := rec.Count("STATUS=ip=192.0.2.10 hub=unreachable getty=active"); n != 1 {
		t.Errorf("unchanged status sent %d times, want once", n)
	}
	testenv.Eventually(t, 10*time.Second, func() string {
		if rec.Count("WATCHDOG=1") < 2 {
			return "no watchdog pings while statuses come"
		}
		return ""
	})
	cancel()
	<-done
	if m := rec.Messages(); m[len(m)-1] != "STOPPING=1" {
		t.Errorf("last message %q, want STOPPING=1", m[len(m)-1])
	}
}

func TestAgentReadyAfterBoundedWait(t *testing.T) {
	rec := &sdnotifytest.Recorder{}
	a := &sdnotify.Agent{N: rec, MaxWait: 10 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.Run(ctx)
	testenv.Eventually(t, 10*time.Second, func() string {
		if rec.Count("READY=1") != 1 || rec.Count("STATUS=starting; hub=unreachable") != 1 {
			return "no READY with a starting status after MaxWait without a hub"
		}
		return ""
	})
}

// TestAgentWatchdogStopsWhenStatusesStop: a wedged loop (no status for
// longer than Stale) gets no more pings, so systemd restarts it.
func TestAgentWatchdogStopsWhenStatusesStop(t *testing.T) {
	rec := &sdnotifytest.Recorder{Interval: 20 * time.Millisecond}
	clk := &clock{t: time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)}
	logs := &testenv.SyncBuffer{}
	a := &sdnotify.Agent{N: rec, MaxWait: time.Millisecond, Stale: time.Minute, Now: clk.now, Log: slog.New(slog.NewTextHandler(logs, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.Run(ctx)
	a.OnStatus(status("192.0.2.10"), true)
	testenv.Eventually(t, 10*time.Second, func() string {
		if rec.Count("WATCHDOG=1") < 1 {
			return "no ping"
		}
		return ""
	})
	clk.add(2 * time.Minute)
	// Once the loop has logged the failed check, the ping before it has
	// been sent (the loop is sequential) and no later one can pass the
	// check: the clock stays stale. The sleep only gives it the chance.
	testenv.Eventually(t, 10*time.Second, func() string {
		if !strings.Contains(logs.String(), "withholding pings") {
			return "liveness failure not logged"
		}
		return ""
	})
	before := rec.Count("WATCHDOG=1")
	time.Sleep(200 * time.Millisecond) // 10 intervals
	if got := rec.Count("WATCHDOG=1"); got != before {
		t.Errorf("pings after the loop went quiet: %d more, want 0", got-before)
	}
	a.OnStatus(status("192.0.2.10"), true)
	testenv.Eventually(t, 10*time.Second, func() string {
		if rec.Count("WATCHDOG=1") <= before {
			return "no ping after statuses resumed"
		}
		return ""
	})
}
