package sdnotify

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Notifier sends service state to the service manager.
type Notifier interface {
	// Ready says start-up is finished, with a first status line.
	Ready(status string) error
	// Status sets the one-line status shown by systemctl status.
	Status(line string) error
	// Watchdog pings the service manager's watchdog.
	Watchdog() error
	// Stopping says shutdown has begun.
	Stopping() error
	// WatchdogInterval is WatchdogSec= as told by the service manager, or
	// 0 when no watchdog is configured for this process.
	WatchdogInterval() time.Duration
}

// MaxStatusLen caps a STATUS= line; systemctl status shows one line.
const MaxStatusLen = 200

// OneLine makes s fit on one status line: control characters (newlines)
// become spaces and it is cut to MaxStatusLen bytes on a rune boundary.
func OneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) <= MaxStatusLen {
		return s
	}
	cut := MaxStatusLen
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut]
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// Systemd notifies the real service manager through $NOTIFY_SOCKET. When
// the variable is unset every method is a no-op that returns nil, so the
// agent runs unchanged outside systemd.
type Systemd struct{}

// New returns a Systemd notifier.
func New() *Systemd { return &Systemd{} }

func (Systemd) send(state string) error {
	if _, err := daemon.SdNotify(false, state); err != nil {
		return fmt.Errorf("sd_notify %s: %w", strings.SplitN(state, "=", 2)[0], err)
	}
	return nil
}

// Ready implements Notifier.
func (s Systemd) Ready(status string) error {
	return s.send(daemon.SdNotifyReady + "\nSTATUS=" + OneLine(status))
}

// Status implements Notifier.
func (s Systemd) Status(line string) error { return s.send("STATUS=" + OneLine(line)) }

// Watchdog implements Notifier.
func (s Systemd) Watchdog() error { return s.send(daemon.SdNotifyWatchdog) }

// Stopping implements Notifier.
func (s Systemd) Stopping() error { return s.send(daemon.SdNotifyStopping) }

// WatchdogInterval implements Notifier. A malformed WATCHDOG_USEC counts as
// no watchdog: systemd sets it, so garbage there is not ours to fix.
func (Systemd) WatchdogInterval() time.Duration {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		return 0
	}
	return d
}

// ReadyWhen sends READY=1 when connected is closed or maxWait has passed,
// whichever is first, so boot never hangs on a broker that is down. status
// is called at that moment for the first STATUS line. It returns when READY
// was sent (nil or the send error) or ctx is done (ctx.Err()).
func ReadyWhen(ctx context.Context, n Notifier, connected <-chan struct{}, maxWait time.Duration, status func() string) error {
	t := time.NewTimer(maxWait)
	defer t.Stop()
	select {
	case <-connected:
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	return n.Ready(status())
}

// RunWatchdog pings n's watchdog at half its interval while alive returns
// true, until ctx is done. When alive returns false it skips the ping (and
// logs once per outage), so systemd restarts a process whose loops are
// wedged. Without a configured watchdog it returns at once.
func RunWatchdog(ctx context.Context, n Notifier, alive func() bool, log *slog.Logger) {
	iv := n.WatchdogInterval()
	if iv <= 0 {
		return
	}
	tick := time.NewTicker(iv / 2)
	defer tick.Stop()
	healthy := true
	for {
		if alive() {
			if !healthy {
				log.Info("watchdog: loops alive again, pinging")
			}
			healthy = true
			if err := n.Watchdog(); err != nil {
				log.Warn("watchdog ping", "err", err)
			}
		} else if healthy {
			healthy = false
			log.Error("watchdog: loops not alive, withholding pings; systemd will restart the service", "watchdog", iv)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
