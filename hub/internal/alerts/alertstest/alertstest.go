// Package alertstest has a fake of the fleet as the alert policy sees it
// after a restart (alerts.Rejoiner); the real one is *fleet.Fleet.
package alertstest

import "github.com/pifleet/pifleet/hub/internal/fleet"

// Rejoiner answers with the counts and devices it holds; a test may change
// them between sweeps (from the sweeping goroutine).
type Rejoiner struct {
	Back, Away int
	Devices    []fleet.Device
}

// Rejoin implements alerts.Rejoiner.
func (r *Rejoiner) Rejoin() (back, away int) { return r.Back, r.Away }

// List implements alerts.Rejoiner.
func (r *Rejoiner) List() []fleet.Device { return r.Devices }
