package cli

// The agent's senses (issue 4): where addresses and health come from. Kept
// in its own file so the daemon's flag handling stays the lead's.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/pifleet/pifleet/agent/internal/daemon"
	"github.com/pifleet/pifleet/agent/internal/health"
	"github.com/pifleet/pifleet/agent/internal/health/statusled"
	"github.com/pifleet/pifleet/agent/internal/netwatch"
)

// senses returns the netlink address watcher (polling fallback built in)
// and the health probe registry, reading the real system.
func senses(log *slog.Logger, f daemonFlags) (daemon.AddrSource, *health.Collector) {
	addrs := netwatch.New(netwatch.Options{Logger: log})
	dataDir, _ := filepath.Abs(f.dataDir) // health reads paths under its root
	if _, err := os.Stat(dataDir); err != nil {
		dataDir = "" // not created yet (commands disabled): report / only
	}
	probes := health.New(health.Options{Logger: log, DataDir: dataDir, HotC: f.hotC, ExpectDocker: f.expectDocker})
	probes.Register("console", consoleProbe(log, f.consoleRepair)) // consolewire.go
	return addrs, probes
}

// startStatusLED drives the optional status LED on a GPIO pin: a blip when
// all is well, a double blink with health problems, fast blinking without
// a broker. Off unless --status-led names a pin.
func startStatusLED(ctx context.Context, pin string, d *daemon.Daemon, probes *health.Collector) error {
	if pin == "" {
		return nil
	}
	out, err := statusled.Open(pin)
	if err != nil {
		return fmt.Errorf("--status-led %s: %w", pin, err)
	}
	led := statusled.New(out)
	go led.Run(ctx)
	go led.Follow(ctx, time.Second, func() statusled.State {
		return statusled.For(d.Link().Connected(), len(probes.Problems()))
	})
	return nil
}
