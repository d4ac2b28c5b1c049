package hubd

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pifleet/pifleet/internal/sdnotify/sdnotifytest"
)

// TestNotifySystemd: READY with the hub's status line at once, a watchdog
// ping every half WatchdogSec while the hub runs, STOPPING last.
func TestNotifySystemd(t *testing.T) {
	for _, tc := range []struct {
		name     string
		interval time.Duration
		want     string // after 1 minute and a stop
	}{
		{"watchdog 30s", 30 * time.Second, "READY=1 STATUS=serving the fleet WATCHDOG=1 WATCHDOG=1 WATCHDOG=1 WATCHDOG=1 WATCHDOG=1 STOPPING=1"},
		{"no watchdog", 0, "READY=1 STATUS=serving the fleet STOPPING=1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &sdnotifytest.Recorder{Interval: tc.interval}
				ctx, cancel := context.WithCancel(context.Background())
				done := notifySystemd(ctx, rec, slog.New(slog.DiscardHandler))
				time.Sleep(time.Minute + time.Second) // pings at 0, 15, 30, 45, 60 s
				synctest.Wait()
				cancel()
				<-done
				if got := strings.Join(rec.Messages(), " "); got != tc.want {
					t.Errorf("got %q, want %q", got, tc.want)
				}
			})
		})
	}
}
