package daemon

import (
	"reflect"

	"github.com/pifleet/pifleet/agent/wire"
)

// Significant reports whether next differs from prev in a way worth a
// report before the next heartbeat: addresses or interfaces, problems,
// throttle flags, read-only root, clock, docker, console, or a temperature
// move of 2 °C or more. Counters that always move (load, memory, uptime)
// wait for the heartbeat.
func Significant(prev, next wire.Status) bool {
	if !reflect.DeepEqual(prev.Interfaces, next.Interfaces) || !reflect.DeepEqual(prev.Addresses, next.Addresses) {
		return true
	}
	p, n := prev.Health, next.Health
	if !reflect.DeepEqual(p.Problems, n.Problems) || !reflect.DeepEqual(p.Throttle, n.Throttle) ||
		!reflect.DeepEqual(p.RootReadOnly, n.RootReadOnly) || !reflect.DeepEqual(p.ClockSynced, n.ClockSynced) ||
		p.Docker != n.Docker || !reflect.DeepEqual(p.Console, n.Console) {
		return true
	}
	if (p.TempC == nil) != (n.TempC == nil) {
		return true
	}
	if p.TempC != nil && abs(*p.TempC-*n.TempC) >= 2 {
		return true
	}
	return false
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}
