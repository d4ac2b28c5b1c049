package cli

import (
	"context"
	"log/slog"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// notifySystemd tells systemd the hub is ready (Type=notify) and pings
// the watchdog while ctx lives. Outside systemd (no NOTIFY_SOCKET) it does
// nothing.
func notifySystemd(ctx context.Context, log *slog.Logger) {
	if ok, err := daemon.SdNotify(false, "READY=1\nSTATUS=serving the fleet"); err != nil {
		log.Warn("sd_notify", "err", err)
	} else if !ok {
		return
	}
	iv, err := daemon.SdWatchdogEnabled(false)
	if err != nil || iv == 0 {
		return
	}
	go func() {
		t := time.NewTicker(iv / 2)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				daemon.SdNotify(false, daemon.SdNotifyStopping)
				return
			case <-t.C:
				daemon.SdNotify(false, daemon.SdNotifyWatchdog)
			}
		}
	}()
}
