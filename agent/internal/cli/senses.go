package cli

// The agent's senses (issue 4): where addresses and health come from. Kept
// in its own file so the daemon's flag handling stays the lead's.

import (
	"log/slog"

	"github.com/pifleet/pifleet/agent/internal/daemon"
	"github.com/pifleet/pifleet/agent/internal/health"
	"github.com/pifleet/pifleet/agent/internal/netwatch"
)

// senses returns the netlink address watcher (polling fallback built in)
// and the health probe registry, reading the real system.
func senses(log *slog.Logger, f daemonFlags) (daemon.AddrSource, daemon.HealthSource) {
	addrs := netwatch.New(netwatch.Options{Logger: log})
	probes := health.New(health.Options{Logger: log})
	probes.Register("console", consoleProbe(log, f.consoleRepair)) // consolewire.go
	return addrs, probes
}
