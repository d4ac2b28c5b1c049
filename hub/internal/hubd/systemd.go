package hubd

import (
	"context"
	"log/slog"

	"github.com/pifleet/pifleet/internal/sdnotify"
)

// notifySystemd tells systemd the hub is ready (Type=notify), pings the
// watchdog while ctx lives, then says STOPPING=1. Outside systemd (no
// NOTIFY_SOCKET) sdnotify.Systemd does nothing.
func notifySystemd(ctx context.Context, n sdnotify.Notifier, log *slog.Logger) (done <-chan struct{}) {
	if err := n.Ready("serving the fleet"); err != nil {
		log.Warn("sd_notify", "err", err)
	}
	d := make(chan struct{})
	go func() {
		defer close(d)
		sdnotify.RunWatchdog(ctx, n, func() bool { return true }, log)
		<-ctx.Done()
		_ = n.Stopping()
	}()
	return d
}
