package daemon_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pifleet/pifleet/agent/internal/daemon"
	"github.com/pifleet/pifleet/internal/link"
	"github.com/pifleet/pifleet/internal/sdnotify/sdnotifytest"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/wire"
)

// addrs is a fixed address source that never changes.
type addrs struct{}

func (addrs) Snapshot() ([]wire.Interface, []wire.Address, error) {
	return []wire.Interface{{Name: "eth0", Up: true}},
		[]wire.Address{{Address: "192.0.2.10", Prefix: 24, Family: wire.IPv4, Interface: "eth0", Primary: true}}, nil
}

func (addrs) Watch(ctx context.Context, _ func()) error {
	<-ctx.Done()
	return ctx.Err()
}

// health reports no problems until wedged, then blocks like a probe that
// never returns (until the daemon stops).
type health struct{ wedged atomic.Bool }

func (h *health) Collect(ctx context.Context) wire.Health {
	if h.wedged.Load() {
		<-ctx.Done()
	}
	return wire.Health{}
}

// start runs an agent assembled with fakes, inside the synctest bubble:
// the console banner is off unless cfg names its file, and its broker
// refuses connections (nothing listens on port 1), so the
// hub stays unreachable and the agent reports to systemd and the console
// only. stop cancels it and returns Run's error.
func start(t *testing.T, cfg daemon.Config) (stop func() error) {
	t.Helper()
	cfg.Link = link.Options{Brokers: []string{"mqtt://127.0.0.1:1"}, ID: "pi-test", KeepAlive: 10 * time.Second}
	cfg.Hostname = "pi-test"
	cfg.Addrs = addrs{}
	if cfg.Health == nil {
		cfg.Health = &health{}
	}
	cfg.ProcRoot = t.TempDir()
	if cfg.ConsoleIssue == "" {
		cfg.ConsoleIssue = "off"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d, err := daemon.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	return func() error { cancel(); return <-done }
}

// TestWatchdogPingsWhileReporting: with WatchdogSec=20s the agent pings
// every 10 s, says READY after its bounded wait although the broker is
// down, shows its address in STATUS, and says STOPPING last.
func TestWatchdogPingsWhileReporting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &sdnotifytest.Recorder{Interval: 20 * time.Second}
		stop := start(t, daemon.Config{Notifier: rec})
		time.Sleep(2*time.Minute + time.Second)
		synctest.Wait()
		// t=0, 10 s, …, 120 s.
		if got := rec.Count("WATCHDOG=1"); got != 13 {
			t.Errorf("pings in 2 minutes: got %d, want 13", got)
		}
		if got := rec.Count("READY=1"); got != 1 {
			t.Errorf("READY: got %d, want 1 (after the bounded wait, hub unreachable)", got)
		}
		if got := rec.Count("STATUS=ip=192.0.2.10 hub=unreachable"); got < 1 {
			t.Errorf("messages %q: no STATUS with the address and hub=unreachable", rec.Messages())
		}
		if err := stop(); err != nil {
			t.Errorf("clean stop: got %v, want nil", err)
		}
		if m := rec.Messages(); m[len(m)-1] != "STOPPING=1" {
			t.Errorf("last message: got %q, want STOPPING=1", m[len(m)-1])
		}
	})
}

// TestWatchdogWithheldWhenLoopWedges: a health probe that hangs stops the
// reporting loop; two minutes after its last status the agent stops
// pinging, so systemd restarts it.
func TestWatchdogWithheldWhenLoopWedges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &sdnotifytest.Recorder{Interval: 20 * time.Second}
		h := &health{}
		logs := &testenv.SyncBuffer{}
		stop := start(t, daemon.Config{Notifier: rec, Health: h, Logger: slog.New(slog.NewTextHandler(logs, nil))})
		time.Sleep(30 * time.Second)
		h.wedged.Store(true)
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		before := rec.Count("WATCHDOG=1")
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		if got := rec.Count("WATCHDOG=1"); got != before {
			t.Errorf("pings while the loop is wedged: %d more, want 0", got-before)
		}
		if !strings.Contains(logs.String(), "withholding pings") {
			t.Errorf("no log line says the pings are withheld:\n%s", logs)
		}
		if err := stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
}

// TestCleanStopRemovesBanner: the banner with the Pi's address is on the
// console while the agent runs, and gone (agetty told to reprint) after a
// clean stop, so no stale address stays above login:.
func TestCleanStopRemovesBanner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "pifleet.issue")
		var reloads atomic.Int32
		cfg := daemon.Config{Notifier: &sdnotifytest.Recorder{},
			ReloadAgetty: func(context.Context) error { reloads.Add(1); return nil }}
		cfg.ConsoleIssue = p
		stop := start(t, cfg)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), "192.0.2.10/24") || !strings.Contains(string(b), "hub    NOT connected") {
			t.Fatalf("banner while running: got %q (%v), want the address and hub NOT connected", b, err)
		}
		shown := reloads.Load()
		if err := stop(); err != nil {
			t.Fatalf("clean stop: %v", err)
		}
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("banner after a clean stop: stat says %v, want it removed", err)
		}
		if got := reloads.Load(); got != shown+1 {
			t.Errorf("agetty reloads at stop: got %d, want 1", got-shown)
		}
	})
}

// TestDataDirCreated: run outside systemd (no StateDirectory=), the agent
// makes a missing --data-dir, 0700, and opens its command store there
// instead of failing (issue 15).
func TestDataDirCreated(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "var", "lib", "pifleet-agent")
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := daemon.Config{DataDir: dir, Cmds: daemon.CommandsConfig{HubKeys: []string{base64.StdEncoding.EncodeToString(pub)}}}
	stop := start(t, cfg)
	defer stop()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatalf("--data-dir was not created: %v", err)
	}
	if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf("--data-dir: got %v, want a directory with mode 0700", fi.Mode())
	}
	if _, err := os.Stat(filepath.Join(dir, "commands.db")); err != nil {
		t.Errorf("command store not opened in the new --data-dir: %v", err)
	}
}
