// Package statusled blinks an LED on a GPIO pin to show the agent's state
// to someone standing next to the Pi: a short blip every 3 s when all is
// well, a double blink when the Pi has health problems, a fast even blink
// when the agent cannot reach its broker. It is off by default (the agent
// flag names a pin to turn it on). The pin is a periph gpio.PinOut, so
// tests use periph's gpiotest fake. Only periph's GPIO character-device
// driver is linked (every Pi kernel has /dev/gpiochipN, and it is the only
// driver for the Pi 5): periph's host package would also link and
// initialise the drivers of a dozen other boards for a single output pin
// (0.5 MB of the ARMv7 binary, most of which ends up paged in).
package statusled

import (
	"context"
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/driver/driverreg"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	_ "periph.io/x/host/v3/gpioioctl" // registers the pins, named as the kernel names its lines (GPIO17)
)

// State is what the LED shows.
type State string

// States, in increasing urgency.
const (
	Off       State = "off"
	OK        State = "ok"
	Unhealthy State = "unhealthy"
	NoBroker  State = "no_broker"
)

// Patterns: alternating on and off durations, starting with on, repeated.
var patterns = map[State][]time.Duration{
	OK:        {50 * time.Millisecond, 2950 * time.Millisecond},
	Unhealthy: {100 * time.Millisecond, 150 * time.Millisecond, 100 * time.Millisecond, 1650 * time.Millisecond},
	NoBroker:  {250 * time.Millisecond, 250 * time.Millisecond},
}

// offHold is how long Run waits between checks while the LED is off.
const offHold = time.Second

// LED drives one pin.
type LED struct {
	pin gpio.PinOut

	mu    sync.Mutex
	state State
	pos   int // index into the current pattern
	wake  chan struct{}
}

// New returns an LED on pin, off.
func New(pin gpio.PinOut) *LED {
	return &LED{pin: pin, state: Off, wake: make(chan struct{}, 1)}
}

// Open initialises periph's GPIO driver and returns the named pin
// (e.g. "GPIO17").
func Open(name string) (gpio.PinOut, error) {
	if _, err := driverreg.Init(); err != nil {
		return nil, fmt.Errorf("status LED: init GPIO drivers: %w", err)
	}
	p := gpioreg.ByName(name)
	if p == nil {
		return nil, fmt.Errorf("status LED: no GPIO pin named %q", name)
	}
	return p, nil
}

// Set changes the pattern; it takes effect at once.
func (l *LED) Set(s State) {
	l.mu.Lock()
	changed := l.state != s
	if changed {
		l.state, l.pos = s, 0
	}
	l.mu.Unlock()
	if changed {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// State returns the current pattern.
func (l *LED) State() State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state
}

// step drives the pin to the next level of the pattern and returns how
// long to hold it.
func (l *LED) step() (time.Duration, error) {
	l.mu.Lock()
	p := patterns[l.state]
	if len(p) == 0 {
		l.mu.Unlock()
		return offHold, l.pin.Out(gpio.Low)
	}
	i := l.pos % len(p)
	l.pos = (i + 1) % len(p)
	l.mu.Unlock()
	return p[i], l.pin.Out(gpio.Level(i%2 == 0))
}

// Run blinks until ctx ends, then turns the LED off.
func (l *LED) Run(ctx context.Context) error {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			_ = l.pin.Out(gpio.Low)
			return ctx.Err()
		case <-l.wake:
		case <-t.C:
		}
		d, err := l.step()
		if err != nil {
			return fmt.Errorf("status LED %s: %w", l.pin, err)
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(d)
	}
}

// Follow sets the pattern from state every interval until ctx ends (the
// daemon passes a func reading its link and last health sample).
func (l *LED) Follow(ctx context.Context, every time.Duration, state func() State) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		l.Set(state())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// For picks the pattern for a link state and a health sample's problem count.
func For(connected bool, problems int) State {
	switch {
	case !connected:
		return NoBroker
	case problems > 0:
		return Unhealthy
	}
	return OK
}
