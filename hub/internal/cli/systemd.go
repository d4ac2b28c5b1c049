package cli

import (
	"context"
	"log/slog"

	"github.com/pifleet/pifleet/internal/sdnotify"
)

// notifySystemd tells systemd the hub is ready (Type=notify) and pings
// the watchdog while ctx lives. Outside systemd (no NOTIFY_SOCKET) it does
// nothing.
func notifySystemd(ctx context.Context, log *slog.Logger) {
	n := sdnotify.New()
	if err := n.Ready("serving the fleet"); err != nil {
		log.Warn("sd_notify", "err", err)
	}
	go func() {
		sdnotify.RunWatchdog(ctx, n, func() bool { return true }, log)
		<-ctx.Done()
		_ = n.Stopping()
	}()
}
