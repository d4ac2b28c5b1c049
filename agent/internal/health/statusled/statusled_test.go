package statusled

import (
	"context"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/pifleet/pifleet/internal/testenv"
)

func level(p *gpiotest.Pin) gpio.Level {
	p.Lock()
	defer p.Unlock()
	return p.L
}

func TestPatterns(t *testing.T) {
	for _, tc := range []struct {
		state State
		want  []string // level and hold per step
	}{
		{Off, []string{"Low 1s", "Low 1s"}},
		{OK, []string{"High 50ms", "Low 2.95s", "High 50ms"}},
		{Unhealthy, []string{"High 100ms", "Low 150ms", "High 100ms", "Low 1.65s", "High 100ms"}},
		{NoBroker, []string{"High 250ms", "Low 250ms", "High 250ms"}},
	} {
		t.Run(string(tc.state), func(t *testing.T) {
			pin := &gpiotest.Pin{N: "GPIO17", L: gpio.High}
			l := New(pin)
			l.Set(tc.state)
			for i, want := range tc.want {
				d, err := l.step()
				if err != nil {
					t.Fatal(err)
				}
				if got := level(pin).String() + " " + d.String(); got != want {
					t.Errorf("step %d: got %s, want %s", i, got, want)
				}
			}
		})
	}
}

func TestSetRestartsPattern(t *testing.T) {
	pin := &gpiotest.Pin{N: "GPIO17"}
	l := New(pin)
	l.Set(Unhealthy)
	l.step()
	l.step()
	l.Set(NoBroker)
	if d, _ := l.step(); level(pin) != gpio.High || d != 250*time.Millisecond {
		t.Errorf("after Set: got %s for %v, want the new pattern from its start (High 250ms)", level(pin), d)
	}
}

// TestRun blinks for real with the fake pin and checks it toggles and ends
// dark.
func TestRun(t *testing.T) {
	pin := &gpiotest.Pin{N: "GPIO17"}
	l := New(pin)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	l.Set(NoBroker)
	sawHigh, sawLow := false, false
	testenv.Eventually(t, 10*time.Second, func() string {
		if level(pin) == gpio.High {
			sawHigh = true
		} else if sawHigh {
			sawLow = true
		}
		if !sawHigh || !sawLow {
			return "LED did not blink"
		}
		return ""
	})
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("Run returned %v, want context.Canceled", err)
	}
	if level(pin) != gpio.Low {
		t.Error("LED left on after Run ended")
	}
}

func TestFor(t *testing.T) {
	for _, tc := range []struct {
		connected bool
		problems  int
		want      State
	}{{false, 0, NoBroker}, {false, 3, NoBroker}, {true, 1, Unhealthy}, {true, 0, OK}} {
		if got := For(tc.connected, tc.problems); got != tc.want {
			t.Errorf("For(%v, %d) = %s, want %s", tc.connected, tc.problems, got, tc.want)
		}
	}
}

func TestFollow(t *testing.T) {
	l := New(&gpiotest.Pin{N: "GPIO17"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	want := NoBroker
	go l.Follow(ctx, time.Millisecond, func() State { mu.Lock(); defer mu.Unlock(); return want })
	testenv.Eventually(t, 5*time.Second, func() string {
		if l.State() != NoBroker {
			return "not following"
		}
		return ""
	})
	mu.Lock()
	want = OK
	mu.Unlock()
	testenv.Eventually(t, 5*time.Second, func() string {
		if l.State() != OK {
			return "did not follow the change"
		}
		return ""
	})
}

// TestOpenUnknownPin runs periph's real GPIO driver: an unknown pin is a
// clear error, not a crash (on a PC no GPIO driver loads at all).
func TestOpenUnknownPin(t *testing.T) {
	if _, err := Open("NO_SUCH_PIN"); err == nil {
		t.Error("Open(NO_SUCH_PIN): got no error")
	}
}
