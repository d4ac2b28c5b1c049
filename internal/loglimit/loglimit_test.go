package loglimit

import (
	"testing"
	"time"
)

func TestLimit(t *testing.T) {
	l := Limit{Per: time.Minute, Burst: 2}
	t0 := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	for i, want := range []bool{true, true, false, false} {
		if ok, _ := l.Allow(t0.Add(time.Duration(i) * time.Second)); ok != want {
			t.Errorf("record %d: allowed %v, want %v", i, ok, want)
		}
	}
	if !l.Exhausted() {
		t.Error("burst used up, Exhausted() = false")
	}
	ok, muted := l.Allow(t0.Add(time.Minute))
	if !ok || muted != 2 {
		t.Errorf("next period: allowed %v, muted before %d; want true, 2", ok, muted)
	}
	if l.Exhausted() {
		t.Error("new period, Exhausted() = true")
	}
}
