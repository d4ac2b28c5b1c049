package sdnotify_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pifleet/pifleet/internal/sdnotify"
	"github.com/pifleet/pifleet/internal/sdnotify/sdnotifytest"
	"github.com/pifleet/pifleet/internal/testenv"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// listen creates a real unixgram NOTIFY_SOCKET, as systemd does, and points
// the environment at it for this test.
func listen(t *testing.T) *net.UnixConn {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdn") // short: socket paths are capped at 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen on a unixgram notify socket: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return c
}

func read(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("read notify socket: %v", err)
	}
	return string(buf[:n])
}

func TestSystemdSendsToNotifySocket(t *testing.T) {
	c := listen(t)
	n := sdnotify.New()
	steps := []struct {
		send func() error
		want string
	}{
		{func() error { return n.Ready("ip=192.0.2.10 hub=connected\ngetty=active") }, "READY=1\nSTATUS=ip=192.0.2.10 hub=connected getty=active"},
		{func() error { return n.Status("ip=192.0.2.10 hub=reconnecting") }, "STATUS=ip=192.0.2.10 hub=reconnecting"},
		{n.Watchdog, "WATCHDOG=1"},
		{n.Stopping, "STOPPING=1"},
	}
	for _, s := range steps {
		if err := s.send(); err != nil {
			t.Fatalf("send %q: %v", s.want, err)
		}
		if got := read(t, c); got != s.want {
			t.Errorf("datagram: got %q, want %q", got, s.want)
		}
	}
}

func TestSystemdWithoutSocketIsNoop(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n := sdnotify.New()
	for _, err := range []error{n.Ready("x"), n.Status("x"), n.Watchdog(), n.Stopping()} {
		if err != nil {
			t.Errorf("without NOTIFY_SOCKET: got %v, want nil", err)
		}
	}
}

func TestSystemdSocketGoneIsAnError(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "gone"))
	err := sdnotify.New().Status("x")
	if err == nil || !strings.Contains(err.Error(), "sd_notify STATUS") {
		t.Errorf("notify socket missing: got %v, want an error naming sd_notify STATUS", err)
	}
}

func TestWatchdogInterval(t *testing.T) {
	me := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		usec, pid string
		want      time.Duration
	}{
		{"30000000", me, 30 * time.Second},
		{"30000000", "", 30 * time.Second},
		{"30000000", "1", 0}, // meant for another process
		{"", "", 0},
		{"garbage", me, 0},
	} {
		t.Setenv("WATCHDOG_USEC", tc.usec)
		t.Setenv("WATCHDOG_PID", tc.pid)
		if got := sdnotify.New().WatchdogInterval(); got != tc.want {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: got %v, want %v", tc.usec, tc.pid, got, tc.want)
		}
	}
}

func TestRunWatchdogPingsRealSocket(t *testing.T) {
	c := listen(t)
	t.Setenv("WATCHDOG_USEC", "40000") // 40 ms: pings every 20 ms
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sdnotify.RunWatchdog(ctx, sdnotify.New(), func() bool { return true }, quiet); close(done) }()
	for i := 0; i < 3; i++ {
		if got := read(t, c); got != "WATCHDOG=1" {
			t.Errorf("ping %d: got %q, want WATCHDOG=1", i, got)
		}
	}
	cancel()
	<-done
}

// TestRunWatchdogOnlyWhileAlive: no ping is sent after the liveness check
// failed, and pings resume when it passes again. The check is by counting
// liveness calls, not by time, so it cannot flake on a slow machine.
func TestRunWatchdogOnlyWhileAlive(t *testing.T) {
	rec := &sdnotifytest.Recorder{Interval: 10 * time.Millisecond}
	var alive atomic.Bool
	var deadCalls atomic.Int64
	alive.Store(true)
	check := func() bool {
		if alive.Load() {
			return true
		}
		deadCalls.Add(1)
		return false
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { sdnotify.RunWatchdog(ctx, rec, check, quiet); close(done) }()

	testenv.Eventually(t, 10*time.Second, func() string {
		if n := rec.Count("WATCHDOG=1"); n < 2 {
			return "fewer than 2 pings while alive: " + strconv.Itoa(n)
		}
		return ""
	})
	alive.Store(false)
	testenv.Eventually(t, 10*time.Second, func() string {
		if deadCalls.Load() < 1 {
			return "liveness not checked since it failed"
		}
		return ""
	})
	// The loop is sequential: once a check has failed, the previous ping
	// has been sent, so the count is stable from here.
	before := rec.Count("WATCHDOG=1")
	testenv.Eventually(t, 10*time.Second, func() string {
		if deadCalls.Load() < 4 {
			return "fewer than 4 failed liveness checks"
		}
		return ""
	})
	if got := rec.Count("WATCHDOG=1"); got != before {
		t.Errorf("pings while not alive: got %d more, want 0", got-before)
	}
	alive.Store(true)
	testenv.Eventually(t, 10*time.Second, func() string {
		if rec.Count("WATCHDOG=1") <= before {
			return "no ping after liveness recovered"
		}
		return ""
	})
	cancel()
	<-done
}

func TestRunWatchdogWithoutWatchdogReturns(t *testing.T) {
	rec := &sdnotifytest.Recorder{}
	sdnotify.RunWatchdog(context.Background(), rec, func() bool { return true }, quiet) // must not block
	if m := rec.Messages(); len(m) != 0 {
		t.Errorf("without a watchdog: sent %q, want nothing", m)
	}
}

func TestReadyWhen(t *testing.T) {
	status := func() string { return "hub=connected" }
	t.Run("connected", func(t *testing.T) {
		rec := &sdnotifytest.Recorder{}
		connected := make(chan struct{})
		close(connected)
		if err := sdnotify.ReadyWhen(context.Background(), rec, connected, time.Hour, status); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(rec.Messages(), "|"); got != "READY=1|STATUS=hub=connected" {
			t.Errorf("got %q, want READY=1|STATUS=hub=connected", got)
		}
	})
	t.Run("bounded wait", func(t *testing.T) {
		rec := &sdnotifytest.Recorder{}
		if err := sdnotify.ReadyWhen(context.Background(), rec, make(chan struct{}), time.Millisecond, func() string { return "hub=unreachable" }); err != nil {
			t.Fatal(err)
		}
		if rec.Count("READY=1") != 1 {
			t.Errorf("never connected: got %q, want READY=1 after the bounded wait", rec.Messages())
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		rec := &sdnotifytest.Recorder{}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := sdnotify.ReadyWhen(ctx, rec, make(chan struct{}), time.Hour, status)
		if !errors.Is(err, context.Canceled) || len(rec.Messages()) != 0 {
			t.Errorf("cancelled: got %v and %q, want context.Canceled and nothing sent", err, rec.Messages())
		}
	})
}

func TestOneLine(t *testing.T) {
	long := strings.Repeat("é", 150) // 300 bytes
	for _, tc := range []struct{ in, want string }{
		{"ip=192.0.2.1 hub=connected", "ip=192.0.2.1 hub=connected"},
		{"a\nb\r\tc", "a b  c"},
		{long, strings.Repeat("é", 100)},
	} {
		if got := sdnotify.OneLine(tc.in); got != tc.want {
			t.Errorf("OneLine(%q): got %q, want %q", tc.in, got, tc.want)
		}
	}
}
