package console_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pifleet/pifleet/agent/internal/console"
	"github.com/pifleet/pifleet/agent/internal/console/systemdtest"
	"github.com/pifleet/pifleet/internal/wire"
)

const unitS0 = "serial-getty@ttyS0.service"

func TestWatcherGetty(t *testing.T) {
	tests := []struct {
		name       string
		root       string
		state      string
		repair     bool
		restartErr error
		after      string
		want       wire.Console
		problems   []wire.Problem
		restarts   int
	}{
		{name: "active", root: "bookworm-good", state: "active",
			want: wire.Console{TTY: "ttyS0", GettyActive: true, GettyState: "active"}},
		{name: "failed, repair off", root: "bookworm-good", state: "failed",
			want: wire.Console{TTY: "ttyS0", GettyState: "failed"}, problems: []wire.Problem{wire.ProblemGettyDown}},
		{name: "failed, repaired", root: "bookworm-good", state: "failed", repair: true,
			want: wire.Console{TTY: "ttyS0", GettyActive: true, GettyState: "active", Repaired: true}, restarts: 1},
		{name: "inactive, restart fails", root: "bookworm-good", state: "inactive", repair: true, restartErr: errors.New("access denied"),
			want: wire.Console{TTY: "ttyS0", GettyState: "inactive"}, problems: []wire.Problem{wire.ProblemGettyDown}, restarts: 1},
		{name: "restarted but fails again", root: "bookworm-good", state: "failed", repair: true, after: "failed",
			want: wire.Console{TTY: "ttyS0", GettyState: "failed"}, problems: []wire.Problem{wire.ProblemGettyDown}, restarts: 1},
		{name: "config broken and getty down", root: "bookworm-shipped", state: "inactive",
			want:     wire.Console{TTY: "ttyS0", GettyState: "inactive", ConfigIssues: 1},
			problems: []wire.Problem{wire.ProblemConsoleConfig, wire.ProblemGettyDown}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sd := systemdtest.New(map[string]string{unitS0: tt.state})
			sd.RestartErr, sd.AfterRestart = tt.restartErr, tt.after
			w := console.NewWatcher(console.Options{Root: "testdata/roots/" + tt.root, Systemd: sd, Repair: tt.repair})
			got, problems := w.Check(context.Background())
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if !slices.Equal(problems, tt.problems) {
				t.Errorf("got problems %v, want %v", problems, tt.problems)
			}
			if sd.RestartCount() != tt.restarts {
				t.Errorf("got %d restarts, want %d", sd.RestartCount(), tt.restarts)
			}
		})
	}
}

func TestWatcherRepairInterval(t *testing.T) {
	sd := systemdtest.New(map[string]string{unitS0: "failed"})
	sd.AfterRestart = "failed" // a getty that keeps dying
	now := time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC)
	w := console.NewWatcher(console.Options{Root: "testdata/roots/bookworm-good", Systemd: sd, Repair: true,
		RepairInterval: time.Minute, Now: func() time.Time { return now }})
	ctx := context.Background()
	for i, step := range []struct {
		advance  time.Duration
		restarts int
	}{{0, 1}, {30 * time.Second, 1}, {31 * time.Second, 2}} {
		now = now.Add(step.advance)
		w.Check(ctx)
		if sd.RestartCount() != step.restarts {
			t.Errorf("check %d: got %d restarts, want %d", i, sd.RestartCount(), step.restarts)
		}
	}
}

func TestWatcherSystemdUnreachable(t *testing.T) {
	sd := systemdtest.New(nil)
	sd.StateErr = errors.New("no D-Bus")
	w := console.NewWatcher(console.Options{Root: "testdata/roots/bookworm-good", Systemd: sd, Repair: true})
	got, problems := w.Check(context.Background())
	if got.GettyState != "unknown" || got.GettyActive || len(problems) != 0 || sd.RestartCount() != 0 {
		t.Errorf("got %+v %v restarts=%d, want state unknown, no problem, no restart", got, problems, sd.RestartCount())
	}
	got, _ = console.NewWatcher(console.Options{Root: "testdata/roots/bookworm-good"}).Check(context.Background())
	if got.GettyState != "unknown" {
		t.Errorf("no systemd: got %q, want unknown", got.GettyState)
	}
}

func TestWatcherConsoleInUse(t *testing.T) {
	root := copyRoot(t, "bookworm-good")
	b, err := os.ReadFile("testdata/utmp/x86_64-glibc.utmp")
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(root, "var/run"), 0o755)
	if err := os.WriteFile(filepath.Join(root, "var/run/utmp"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	w := console.NewWatcher(console.Options{Root: root, Systemd: systemdtest.New(map[string]string{unitS0: "active"})})
	r := w.Report(context.Background())
	if !r.Console.InUse || len(r.Logins) != 1 || r.Logins[0].User != "pi" {
		t.Errorf("got InUse=%v logins=%+v, want pi on ttyS0", r.Console.InUse, r.Logins)
	}
	if len(r.Problems) != 0 {
		t.Errorf("got problems %v, want none: a console login is not a problem", r.Problems)
	}
}

func TestWatcherCheckCaches(t *testing.T) {
	root := copyRoot(t, "bookworm-good")
	sd := systemdtest.New(map[string]string{unitS0: "active"})
	now := time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC)
	w := console.NewWatcher(console.Options{Root: root, Systemd: sd, Interval: time.Minute, Now: func() time.Time { return now }})
	ctx := context.Background()
	c, _ := w.Check(ctx)
	if c.InUse {
		t.Fatal("in use before any login")
	}
	// A login shows at once; a getty change only after Interval.
	b, _ := os.ReadFile("testdata/utmp/x86_64-glibc.utmp")
	os.MkdirAll(filepath.Join(root, "var/run"), 0o755)
	os.WriteFile(filepath.Join(root, "var/run/utmp"), b, 0o644)
	sd.Set(unitS0, "failed")
	now = now.Add(30 * time.Second)
	c, problems := w.Check(ctx)
	if !c.InUse {
		t.Errorf("got InUse=false after a console login, want true")
	}
	if len(problems) != 0 || c.GettyState != "active" {
		t.Errorf("getty re-checked within Interval: %+v %v", c, problems)
	}
	now = now.Add(31 * time.Second)
	if c, problems = w.Check(ctx); c.GettyState != "failed" || !slices.Contains(problems, wire.ProblemGettyDown) {
		t.Errorf("after Interval: got %+v %v, want the failed getty", c, problems)
	}
}

// copyRoot copies a fixture root (keeping the dev/serial0 symlink) so a
// test can add files to it.
func copyRoot(t *testing.T, name string) string {
	t.Helper()
	root := t.TempDir()
	src := filepath.Join("testdata/roots", name)
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		dst := filepath.Join(root, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(dst, 0o755)
		case d.Type()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, dst)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return root
}
