// Package systemdtest is a fake of console.Systemd for tests: systemd is
// not PID 1 on test machines.
package systemdtest

import (
	"context"
	"fmt"
	"sync"
)

// Fake keeps an ActiveState per unit. Restart sets the unit to AfterRestart
// (default "active") unless RestartErr is set. Unknown units are
// "inactive", as systemd reports them.
type Fake struct {
	mu           sync.Mutex
	States       map[string]string
	StateErr     error  // returned by ActiveState when set
	RestartErr   error  // returned by Restart when set
	AfterRestart string // state after a successful Restart, default "active"
	Restarts     []string
}

// New returns a Fake with the given unit states.
func New(states map[string]string) *Fake {
	f := &Fake{States: map[string]string{}}
	for k, v := range states {
		f.States[k] = v
	}
	return f
}

// ActiveState implements console.Systemd.
func (f *Fake) ActiveState(ctx context.Context, unit string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.StateErr != nil {
		return "", f.StateErr
	}
	if s, ok := f.States[unit]; ok {
		return s, nil
	}
	return "inactive", nil
}

// Restart implements console.Systemd.
func (f *Fake) Restart(ctx context.Context, unit string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Restarts = append(f.Restarts, unit)
	if f.RestartErr != nil {
		return fmt.Errorf("restart %s: %w", unit, f.RestartErr)
	}
	if f.States == nil {
		f.States = map[string]string{}
	}
	f.States[unit] = f.AfterRestart
	if f.AfterRestart == "" {
		f.States[unit] = "active"
	}
	return nil
}

// RestartCount returns how often Restart was called.
func (f *Fake) RestartCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.Restarts)
}

// Set sets a unit's state.
func (f *Fake) Set(unit, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.States[unit] = state
}
