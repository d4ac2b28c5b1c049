package hubd

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/pifleet/pifleet/internal/sdnotify"
)

// StatusEvery is how often the hub's STATUS line (systemctl status) is
// brought up to date.
const StatusEvery = 30 * time.Second

// notifySystemd tells systemd the hub is ready (Type=notify), keeps its
// STATUS line true (health: the broker connection, the last message's
// age, the fleet's size; every StatusEvery), pings the watchdog while ctx
// lives, then says STOPPING=1. Outside systemd (no NOTIFY_SOCKET)
// sdnotify.Systemd does nothing. health may be nil.
func notifySystemd(ctx context.Context, n sdnotify.Notifier, log *slog.Logger, health func() (bool, string)) (done <-chan struct{}) {
	status := func() string {
		if health == nil {
			return "serving the fleet"
		}
		ok, text := health()
		verdict := "serving the fleet"
		if !ok {
			verdict = "NOT serving the fleet"
		}
		return verdict + ": " + strings.Join(strings.Split(strings.TrimSpace(text), "\n"), "; ")
	}
	if err := n.Ready(status()); err != nil {
		log.Warn("sd_notify", "err", err)
	}
	d := make(chan struct{})
	go func() {
		defer close(d)
		if health != nil {
			go func() {
				t := time.NewTicker(StatusEvery)
				defer t.Stop()
				for {
					select {
					case <-ctx.Done():
						return
					case <-t.C:
						_ = n.Status(status())
					}
				}
			}()
		}
		sdnotify.RunWatchdog(ctx, n, func() bool { return true }, log)
		<-ctx.Done()
		_ = n.Stopping()
	}()
	return d
}
