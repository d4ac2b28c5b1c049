package console_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/pifleet/pifleet/agent/internal/console"
	"github.com/pifleet/pifleet/agent/internal/console/systemdtest"
)

// BenchmarkWatcherReport is one full check: UART, config.txt, cmdline.txt,
// /proc/cmdline, getty (fake systemd), utmp.
func BenchmarkWatcherReport(b *testing.B) {
	w := console.NewWatcher(console.Options{Root: "testdata/roots/bookworm-good", Systemd: systemdtest.New(map[string]string{unitS0: "active"})})
	ctx := context.Background()
	for b.Loop() {
		w.Report(ctx)
	}
}

// BenchmarkWatcherCheckCached is what the health loop pays every few
// seconds between full checks (a utmp read).
func BenchmarkWatcherCheckCached(b *testing.B) {
	w := console.NewWatcher(console.Options{Root: "testdata/roots/bookworm-good", Systemd: systemdtest.New(map[string]string{unitS0: "active"})})
	ctx := context.Background()
	w.Check(ctx)
	for b.Loop() {
		w.Check(ctx)
	}
}

// BenchmarkBannerUpdateUnchanged is the per-status cost of keeping the
// banner when nothing changed (render and compare, no write).
func BenchmarkBannerUpdateUnchanged(b *testing.B) {
	bn := &console.Banner{Path: filepath.Join(b.TempDir(), "pifleet.issue"), Reload: func(context.Context) error { return nil }}
	ctx := context.Background()
	bn.Update(ctx, piInfo)
	for b.Loop() {
		if changed, _ := bn.Update(ctx, piInfo); changed {
			b.Fatal("changed")
		}
	}
}
