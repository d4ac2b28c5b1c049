package fleetserver

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestBrokerWarningsRateLimited: an embedded broker that warns once per
// closed connection writes thousands of lines at 10,000 Pis. Ten per minute get through,
// the rest are counted and reported once in the next minute; errors
// always pass, info never does.
func TestBrokerWarningsRateLimited(t *testing.T) {
	var out bytes.Buffer
	h := newQuietHandler(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	emit := func(at time.Time, level slog.Level, msg string) {
		if !h.Enabled(context.Background(), level) {
			return
		}
		_ = h.Handle(context.Background(), slog.NewRecord(at, level, msg, 0))
	}
	for i := 0; i < 5000; i++ {
		emit(t0.Add(time.Duration(i)*time.Millisecond), slog.LevelWarn, "EOF")
	}
	emit(t0.Add(10*time.Second), slog.LevelInfo, "listener started")
	emit(t0.Add(20*time.Second), slog.LevelError, "real trouble")
	emit(t0.Add(2*time.Minute), slog.LevelWarn, "EOF")
	got := out.String()
	if n := strings.Count(got, "msg=EOF"); n != 11 {
		t.Errorf("%d warnings written, want 10 in the first minute and 1 after:\n%s", n, got)
	}
	if !strings.Contains(got, "real trouble") || strings.Contains(got, "listener started") {
		t.Errorf("errors must pass and info must not:\n%s", got)
	}
	if !strings.Contains(got, "embedded broker warnings were muted") || !strings.Contains(got, "muted=4990") {
		t.Errorf("no line saying 4990 warnings were muted:\n%s", got)
	}
}
