package hubd

import (
	"context"
	"log/slog"
	"strings"
	"sync"
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
				done := notifySystemd(ctx, rec, slog.New(slog.DiscardHandler), nil)
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

// TestStatusLineIsHealth: the STATUS line says what /healthz says, at
// READY and every StatusEvery after, so `systemctl status` shows a hub
// that lost its broker.
func TestStatusLineIsHealth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &sdnotifytest.Recorder{}
		var mu sync.Mutex
		ok, text := true, "broker: connected to mqtt://127.0.0.1:1883\ndevices: 2, 2 online\n"
		ctx, cancel := context.WithCancel(context.Background())
		done := notifySystemd(ctx, rec, slog.New(slog.DiscardHandler), func() (bool, string) {
			mu.Lock()
			defer mu.Unlock()
			return ok, text
		})
		synctest.Wait()
		mu.Lock()
		ok, text = false, "broker: connection to mqtt://127.0.0.1:1883 lost; reconnecting\ndevices: 2, 0 online\n"
		mu.Unlock()
		time.Sleep(StatusEvery + time.Second)
		synctest.Wait()
		cancel()
		<-done
		want := "READY=1 STATUS=serving the fleet: broker: connected to mqtt://127.0.0.1:1883; devices: 2, 2 online " +
			"STATUS=NOT serving the fleet: broker: connection to mqtt://127.0.0.1:1883 lost; reconnecting; devices: 2, 0 online STOPPING=1"
		if got := strings.Join(rec.Messages(), " "); got != want {
			t.Errorf("got  %q\nwant %q", got, want)
		}
	})
}
