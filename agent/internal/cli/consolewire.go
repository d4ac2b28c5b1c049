package cli

// The serial console: the health probe and the agetty banner.

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pifleet/pifleet/agent/internal/console"
	"github.com/pifleet/pifleet/agent/internal/health"
	"github.com/pifleet/pifleet/internal/wire"
)

// consoleProbe reports the UART console (getty, config, logins) in
// Health.Console; the full check runs at most once a minute.
func consoleProbe(log *slog.Logger, repair bool) health.ProbeFunc {
	cw := console.NewWatcher(console.Options{Systemd: console.Systemctl{}, Repair: repair, Logger: log})
	return func(ctx context.Context, h *wire.Health) error {
		c, problems := cw.Check(ctx)
		if c.TTY == "" {
			return health.ErrAbsent // not a Pi, or no serial0
		}
		h.Console = &c
		h.Problems = append(h.Problems, problems...)
		return nil
	}
}

// consoleBanner keeps the agetty issue snippet at path up to date with
// every status the daemon builds; nil when path is "off" or empty (an
// EnvironmentFile cannot set an empty value, so "off" says it there).
func consoleBanner(log *slog.Logger, path string) func(context.Context, wire.Status, bool) {
	if path == "" || path == "off" {
		return nil
	}
	b := &console.Banner{Path: path, Logger: log}
	var lastErr string
	return func(ctx context.Context, st wire.Status, hubConnected bool) {
		_, err := b.Update(ctx, console.BannerInfo{Hostname: st.Hostname, Addresses: st.Addresses,
			HubConnected: hubConnected, Problems: st.Health.Problems})
		switch msg := fmt.Sprint(err); {
		case err == nil:
			lastErr = ""
		case msg != lastErr: // log each distinct error once, not every 5 s
			log.Warn("console banner", "path", path, "err", err)
			lastErr = msg
		}
	}
}
