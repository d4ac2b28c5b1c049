// Package gctune gives the hub process the garbage-collector settings it
// was measured with, before anything runs.
//
// The hub embeds nats-server, which runs two goroutines per connected Pi.
// At 10,000 Pis a CPU profile of the hub at the heartbeat showed two costs
// of the collector that the fleet does not need to pay:
//
//   - every cycle shrinks the idle stacks of 10,000 MQTT read loops, and
//     the next packet of each grows them back (runtime.copystack: 11 % of
//     the hub's CPU). GODEBUG=gcshrinkstackoff=1 keeps them: also less
//     memory in practice (961 → 834–921 MiB: no churn of stack spans).
//   - with a live heap of ~230 MB the default GOGC=100 collects every
//     ~40 s; GOGC=150 collects a third less often.
//
// Together, on the fleet bench (scripts/bench-fleet.sh, 10,000 Pis):
// 23.5–25.2 % → 20.5 % of a core, 953–961 → 921 MiB.
//
// Only the runtime reads GODEBUG's gcshrinkstackoff, and only at start
// (//go:debug refuses it), so Apply re-executes the program once with the
// settings added to its environment: same PID, same arguments, same open
// files. Whatever the operator set (GOGC, GODEBUG's gcshrinkstackoff) wins.
package gctune

import (
	"os"
	"strings"
	"syscall"
)

// Defaults are the settings the hub runs with unless the environment
// says otherwise.
const (
	ShrinkStacksOff = "gcshrinkstackoff=1"
	GOGC            = "150"
)

// Env returns environ with the defaults added where the operator did not
// set them, and whether anything was added.
func Env(environ []string) ([]string, bool) {
	out := make([]string, 0, len(environ)+2)
	haveGOGC, haveShrink, changed := false, false, false
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "GOGC":
			haveGOGC = true
		case "GODEBUG":
			if hasKey(v, "gcshrinkstackoff") {
				haveShrink = true
				break
			}
			haveShrink, changed = true, true
			if v = strings.Trim(v, ","); v != "" {
				kv = "GODEBUG=" + v + "," + ShrinkStacksOff
			} else {
				kv = "GODEBUG=" + ShrinkStacksOff
			}
		}
		out = append(out, kv)
	}
	if !haveShrink {
		out, changed = append(out, "GODEBUG="+ShrinkStacksOff), true
	}
	if !haveGOGC {
		out, changed = append(out, "GOGC="+GOGC), true
	}
	return out, changed
}

func hasKey(godebug, key string) bool {
	for _, kv := range strings.Split(godebug, ",") {
		if k, _, _ := strings.Cut(strings.TrimSpace(kv), "="); k == key {
			return true
		}
	}
	return false
}

// Apply re-executes the running program with Env's defaults when they are
// missing. It returns only when nothing was missing or the exec failed
// (the hub then runs with Go's defaults: slower, not wrong).
func Apply() {
	env, changed := Env(os.Environ())
	if !changed {
		return
	}
	_ = syscall.Exec("/proc/self/exe", os.Args, env)
}
