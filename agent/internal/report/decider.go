package report

import (
	"math"
	"reflect"
	"slices"
	"time"

	"github.com/pifleet/pifleet/internal/wire"
)

// Config holds the thresholds. The zero value gets the defaults.
type Config struct {
	// Heartbeat is the longest time between two publishes. Default 30 s.
	Heartbeat time.Duration
	// MinInterval is the shortest time between two publishes; changes in
	// between are held and coalesced. Default 500 ms.
	MinInterval time.Duration
	// TempDeltaC is the temperature move, in °C, that is worth a report.
	// Default 2.
	TempDeltaC float64
	// MemDeltaFraction is the move of available memory, as a fraction of
	// total memory, worth a report. Default 0.10.
	MemDeltaFraction float64
	// DiskDeltaPercent is the move of a disk's used percentage worth a
	// report. Default 5 (crossing the "disk full" line is a problem flip
	// and reported anyway).
	DiskDeltaPercent float64
	// RetainEvery is the longest time the broker's retained copy of the
	// status may go without a refresh. A heartbeat that carries no change
	// beyond the thresholds since the last retained status is published
	// not retained (it proves the session is alive; the retained copy is
	// still true), so the broker does not store 10,000 statuses every 30 s.
	// Default 10 min; at or below Heartbeat every status is retained.
	RetainEvery time.Duration
}

func (c *Config) ensureDefaults() {
	if c.Heartbeat <= 0 {
		c.Heartbeat = 30 * time.Second
	}
	if c.MinInterval <= 0 {
		c.MinInterval = 500 * time.Millisecond
	}
	if c.TempDeltaC <= 0 {
		c.TempDeltaC = 2
	}
	if c.MemDeltaFraction <= 0 {
		c.MemDeltaFraction = 0.10
	}
	if c.DiskDeltaPercent <= 0 {
		c.DiskDeltaPercent = 5
	}
	if c.RetainEvery <= 0 {
		c.RetainEvery = 10 * time.Minute
	}
}

// Reasons for a publish.
const (
	ReasonFirst     = "first"
	ReasonHeartbeat = "heartbeat"
)

// Decision is what Decide says.
type Decision struct {
	// Publish: send the status now, then call Published.
	Publish bool
	// Reasons say what changed ("addresses", "temp", …) or ReasonFirst /
	// ReasonHeartbeat. When Publish is false they name the changes held
	// for the end of the quiet period.
	Reasons []string
	// Wake is when to call Decide again even if nothing happens: the end
	// of the quiet period when a change is held, else the heartbeat.
	Wake time.Time
	// Retain: publish as the broker's retained status. False only for a
	// heartbeat with nothing beyond the thresholds since the last retained
	// status, within RetainEvery of it.
	Retain bool
}

// Decider remembers the last published status. It is not safe for
// concurrent use; the daemon's loop owns it.
type Decider struct {
	cfg    Config
	last   *wire.Status
	lastAt time.Time
	// kept is the last status published retained, keptAt when.
	kept   *wire.Status
	keptAt time.Time
}

// NewDecider returns a Decider with cfg (defaults filled in).
func NewDecider(cfg Config) *Decider {
	cfg.ensureDefaults()
	return &Decider{cfg: cfg}
}

// Reset forgets the last publish (a new MQTT session republishes at once,
// retained).
func (d *Decider) Reset() { d.last, d.kept = nil, nil }

// Published records that s went out at now, retained or not.
func (d *Decider) Published(now time.Time, s wire.Status, retained bool) {
	d.last = &s
	d.lastAt = now
	if retained {
		d.kept, d.keptAt = &s, now
	}
}

// Decide says whether next should be published at now.
func (d *Decider) Decide(now time.Time, next wire.Status) Decision {
	if d.last == nil {
		return Decision{Publish: true, Retain: true, Reasons: []string{ReasonFirst}, Wake: now.Add(d.cfg.Heartbeat)}
	}
	since := now.Sub(d.lastAt)
	reasons := Changes(*d.last, next, d.cfg)
	if len(reasons) > 0 {
		if since >= d.cfg.MinInterval {
			return Decision{Publish: true, Retain: true, Reasons: reasons, Wake: now.Add(d.cfg.Heartbeat)}
		}
		return Decision{Reasons: reasons, Wake: d.lastAt.Add(d.cfg.MinInterval)}
	}
	if since >= d.cfg.Heartbeat {
		// Small moves add up over heartbeats: the retained copy is
		// compared with what is true now, not with the last heartbeat.
		retain := d.kept == nil || now.Sub(d.keptAt) >= d.cfg.RetainEvery || len(Changes(*d.kept, next, d.cfg)) > 0
		return Decision{Publish: true, Retain: retain, Reasons: []string{ReasonHeartbeat}, Wake: now.Add(d.cfg.Heartbeat)}
	}
	return Decision{Wake: d.lastAt.Add(d.cfg.Heartbeat)}
}

// Changes lists what differs between prev and next beyond the thresholds
// in cfg, in a fixed order. Counters that always move (load, CPU frequency,
// uptime, sequence, time) are left for the heartbeat.
func Changes(prev, next wire.Status, cfg Config) []string {
	cfg.ensureDefaults()
	var r []string
	add := func(changed bool, name string) {
		if changed {
			r = append(r, name)
		}
	}
	add(!reflect.DeepEqual(prev.Interfaces, next.Interfaces), "interfaces")
	add(!reflect.DeepEqual(prev.Addresses, next.Addresses), "addresses")
	add(prev.Hostname != next.Hostname, "hostname")
	add(!slices.Equal(prev.Labels, next.Labels), "labels")
	add(prev.AgentVersion != next.AgentVersion, "agent_version")
	add(!prev.BootTime.Equal(next.BootTime), "boot_time")
	add(prev.Epoch != next.Epoch, "epoch")
	p, n := prev.Health, next.Health
	add(!sameProblems(p.Problems, n.Problems), "problems")
	add(!reflect.DeepEqual(p.Throttle, n.Throttle), "throttle")
	add(moved(p.TempC, n.TempC, cfg.TempDeltaC), "temp")
	add(!reflect.DeepEqual(p.RootReadOnly, n.RootReadOnly), "root_read_only")
	add(!reflect.DeepEqual(p.ClockSynced, n.ClockSynced), "clock_synced")
	add(p.Docker != n.Docker, "docker")
	add(p.Model != n.Model || p.Revision != n.Revision, "model")
	add(!reflect.DeepEqual(p.Console, n.Console), "console")
	add(memMoved(p, n, cfg.MemDeltaFraction), "memory")
	add(disksMoved(p.Disks, n.Disks, cfg.DiskDeltaPercent), "disks")
	add(!reflect.DeepEqual(p.Probes, n.Probes) && !(len(p.Probes) == 0 && len(n.Probes) == 0), "probes")
	return r
}

func sameProblems(a, b []wire.Problem) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// moved reports a value appearing, disappearing or moving by ≥ delta.
func moved(a, b *float64, delta float64) bool {
	if (a == nil) != (b == nil) {
		return true
	}
	if a == nil {
		return false
	}
	return math.Abs(*a-*b) >= delta-1e-9
}

func memMoved(p, n wire.Health, frac float64) bool {
	if (p.MemAvailB == nil) != (n.MemAvailB == nil) || (p.MemTotalB == nil) != (n.MemTotalB == nil) {
		return true
	}
	if p.MemAvailB == nil || n.MemTotalB == nil || *n.MemTotalB == 0 {
		return false
	}
	d := math.Abs(float64(*p.MemAvailB) - float64(*n.MemAvailB))
	return d >= frac*float64(*n.MemTotalB)
}

func disksMoved(a, b []wire.Disk, delta float64) bool {
	if len(a) != len(b) {
		return true
	}
	for i := range a {
		if a[i].Path != b[i].Path || a[i].ReadOnly != b[i].ReadOnly || a[i].TotalB != b[i].TotalB {
			return true
		}
		if math.Abs(a[i].UsedPercent-b[i].UsedPercent) >= delta-1e-9 {
			return true
		}
	}
	return false
}
