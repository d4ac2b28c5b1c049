package fleetserver

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/wire"
)

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSweepTakesSilentPiAsLost: a Pi whose will never arrives (a dropped
// connection the broker did not notice) is taken as lost by the sweep
// every SweepEvery, within one sweep after wire.SilenceAfter — and not
// before it.
func TestSweepTakesSilentPiAsLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs := &testenv.SyncBuffer{}
		h, err := New(Config{Logger: slog.New(slog.NewTextHandler(logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		h.apply(wire.StateTopic("pi1"), mustJSON(t, wire.State{V: 1, State: wire.StateOnline, Epoch: 100}), false)
		h.apply(wire.StatusTopic("pi1"), mustJSON(t, wire.Status{V: 1, ID: "pi1", Epoch: 100, Seq: 1, HeartbeatS: 10}), false)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); h.sweep(ctx) }()

		online := func() bool { d, ok := h.Fleet.Get("pi1"); return ok && d.Online() }
		limit := wire.SilenceAfter(10)
		time.Sleep(limit - time.Second)
		synctest.Wait()
		if !online() {
			t.Fatalf("pi1 taken as lost after %v of silence, before its limit %v", limit-time.Second, limit)
		}
		time.Sleep(time.Second + SweepEvery)
		synctest.Wait()
		if online() {
			t.Fatalf("pi1 still online one sweep (%v) past its silence limit %v", SweepEvery, limit)
		}
		if !strings.Contains(logs.String(), "taken as lost") || !strings.Contains(logs.String(), "count=1") {
			t.Errorf("the sweep did not log the lost Pi:\n%s", logs)
		}
		cancel()
		<-done
	})
}
