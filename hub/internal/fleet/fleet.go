package fleet

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pifleet/pifleet/agent/wire"
)

// Device is one Pi as the hub sees it.
type Device struct {
	ID       string
	State    wire.Lifecycle // "" until a state message arrived
	Epoch    uint64
	Status   *wire.Status // nil until a status message arrived
	LastSeen time.Time    // hub clock: when the hub last heard of the device
	Since    time.Time    // hub clock: when State last changed
	History  []Change     // recent state and problem changes, oldest first
}

// Online reports whether the device's current session is up.
func (d *Device) Online() bool { return d.State == wire.StateOnline }

// Problems returns the device's health problems (nil when none or unknown).
func (d *Device) Problems() []wire.Problem {
	if d.Status == nil {
		return nil
	}
	return d.Status.Health.Problems
}

// Change is one entry in a device's history.
type Change struct {
	Time   time.Time `json:"time"`
	Kind   string    `json:"kind"` // online, offline, lost, problem, recovered, address
	Detail string    `json:"detail,omitempty"`
}

// HistoryLen bounds each device's history.
const HistoryLen = 50

// Alert is an event worth telling people about (Slack alerts).
type Alert struct {
	Kind   string // online, offline, problem, address
	Device string
	Detail string
	Time   time.Time
}

// Stats counts what the fleet ingested; Rejected is keyed by reason.
type Stats struct {
	Accepted uint64
	Stale    uint64
	Rejected map[string]uint64
}

// Fleet is the fleet view. It is safe for concurrent use.
type Fleet struct {
	now func() time.Time

	mu      sync.RWMutex
	devices map[string]*Device
	subs    map[int]func(Alert)
	nextSub int

	accepted atomic.Uint64
	stale    atomic.Uint64
	rejMu    sync.Mutex
	rejected map[string]uint64
}

// New returns an empty fleet. now defaults to time.Now.
func New(now func() time.Time) *Fleet {
	if now == nil {
		now = time.Now
	}
	return &Fleet{now: now, devices: map[string]*Device{}, subs: map[int]func(Alert){}, rejected: map[string]uint64{}}
}

// Errors from Apply. A stale message is not an error for the sender; it is
// counted and ignored.
var (
	ErrStale    = errors.New("stale message")
	ErrMismatch = errors.New("payload id does not match topic")
)

// Apply ingests one MQTT message. It never panics on bad input: it returns
// an error saying what was wrong (and counts it) and leaves every device
// as it was.
func (f *Fleet) Apply(topic string, payload []byte) error {
	err := f.apply(topic, payload)
	switch {
	case err == nil:
		f.accepted.Add(1)
	case errors.Is(err, ErrStale):
		f.stale.Add(1)
	default:
		f.reject(reason(err))
	}
	return err
}

func reason(err error) string {
	switch {
	case errors.Is(err, wire.ErrTooLarge):
		return "too_large"
	case errors.Is(err, wire.ErrBadVersion):
		return "bad_version"
	case errors.Is(err, wire.ErrBadID):
		return "bad_id"
	case errors.Is(err, ErrMismatch):
		return "id_mismatch"
	case errors.Is(err, errTopic):
		return "bad_topic"
	}
	return "malformed"
}

var errTopic = errors.New("bad topic")

func (f *Fleet) reject(why string) {
	f.rejMu.Lock()
	f.rejected[why]++
	f.rejMu.Unlock()
}

func (f *Fleet) apply(topic string, payload []byte) error {
	t, err := wire.ParseTopic(topic)
	if err != nil {
		return fmt.Errorf("%w: %v", errTopic, err)
	}
	switch t.Leaf {
	case wire.LeafState:
		if len(payload) == 0 {
			f.forget(t.Device)
			return nil
		}
		st, err := wire.DecodeState(payload)
		if err != nil {
			return fmt.Errorf("device %s state: %w", t.Device, err)
		}
		return f.applyState(t.Device, st)
	case wire.LeafStatus:
		if len(payload) == 0 {
			return nil // cleared status: keep what we know until the state goes too
		}
		st, err := wire.DecodeStatus(payload)
		if err != nil {
			return fmt.Errorf("device %s status: %w", t.Device, err)
		}
		if st.ID != t.Device {
			return fmt.Errorf("%w: topic %s, payload %q", ErrMismatch, t.Device, st.ID)
		}
		return f.applyStatus(st)
	}
	return fmt.Errorf("%w: %s is not a fleet topic", errTopic, topic)
}

func (f *Fleet) device(id string) *Device {
	d, ok := f.devices[id]
	if !ok {
		d = &Device{ID: id}
		f.devices[id] = d
	}
	return d
}

// applyState applies the birth/death rules: a message from an older
// session (smaller epoch) never overrides a newer one, so a late "lost"
// cannot kill a newer birth.
func (f *Fleet) applyState(id string, st wire.State) error {
	now := f.now()
	f.mu.Lock()
	d := f.device(id)
	if st.Epoch < d.Epoch {
		f.mu.Unlock()
		return fmt.Errorf("%w: device %s %s epoch %d < current %d", ErrStale, id, st.State, st.Epoch, d.Epoch)
	}
	prev := d.State
	d.Epoch = st.Epoch
	if st.State != wire.StateLost { // a will is the broker speaking, not the device
		d.LastSeen = now
	}
	var alert *Alert
	if prev != st.State {
		d.State = st.State
		d.Since = now
		d.addHistory(Change{Time: now, Kind: string(st.State), Detail: fmt.Sprintf("epoch %d", st.Epoch)})
		kind := "offline"
		if st.State == wire.StateOnline {
			kind = "online"
		}
		if prev != "" || kind == "offline" {
			alert = &Alert{Kind: kind, Device: id, Detail: string(st.State), Time: now}
		}
	}
	subs := f.subscribers()
	f.mu.Unlock()
	if alert != nil {
		notify(subs, *alert)
	}
	return nil
}

func (f *Fleet) applyStatus(st wire.Status) error {
	now := f.now()
	f.mu.Lock()
	d := f.device(st.ID)
	if old := d.Status; old != nil && (st.Epoch < old.Epoch || (st.Epoch == old.Epoch && st.Seq < old.Seq && st.Seq != 0)) {
		f.mu.Unlock()
		return fmt.Errorf("%w: device %s status epoch/seq %d/%d older than %d/%d", ErrStale, st.ID, st.Epoch, st.Seq, old.Epoch, old.Seq)
	}
	var alerts []Alert
	if old := d.Status; old != nil {
		alerts = diff(old, &st, now)
		for _, a := range alerts {
			d.addHistory(Change{Time: now, Kind: a.Kind, Detail: a.Detail})
		}
	} else if len(st.Health.Problems) > 0 {
		alerts = append(alerts, Alert{Kind: "problem", Device: st.ID, Detail: problemList(st.Health.Problems), Time: now})
	}
	d.Status = &st
	d.LastSeen = now
	subs := f.subscribers()
	f.mu.Unlock()
	for _, a := range alerts {
		notify(subs, a)
	}
	return nil
}

func (d *Device) addHistory(c Change) {
	d.History = append(d.History, c)
	if len(d.History) > HistoryLen {
		d.History = append(d.History[:0:0], d.History[len(d.History)-HistoryLen:]...)
	}
}

func (f *Fleet) forget(id string) {
	f.mu.Lock()
	delete(f.devices, id)
	f.mu.Unlock()
}

// Get returns a copy of the device with id.
func (f *Fleet) Get(id string) (Device, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	d, ok := f.devices[id]
	if !ok {
		return Device{}, false
	}
	return d.copy(), true
}

func (d *Device) copy() Device {
	c := *d
	c.History = append([]Change(nil), d.History...)
	return c
}

// List returns copies of all devices sorted by id.
func (f *Fleet) List() []Device {
	f.mu.RLock()
	out := make([]Device, 0, len(f.devices))
	for _, d := range f.devices {
		out = append(out, *d) // History shared read-only: callers must not modify
	}
	f.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// IDs returns all device ids, sorted.
func (f *Fleet) IDs() []string {
	f.mu.RLock()
	out := make([]string, 0, len(f.devices))
	for id := range f.devices {
		out = append(out, id)
	}
	f.mu.RUnlock()
	sort.Strings(out)
	return out
}

// Stats returns the ingest counters.
func (f *Fleet) Stats() Stats {
	f.rejMu.Lock()
	rej := make(map[string]uint64, len(f.rejected))
	for k, v := range f.rejected {
		rej[k] = v
	}
	f.rejMu.Unlock()
	return Stats{Accepted: f.accepted.Load(), Stale: f.stale.Load(), Rejected: rej}
}

// Subscribe calls fn for every alert until cancel is called. fn is called
// without the fleet's lock held and must not block for long.
func (f *Fleet) Subscribe(fn func(Alert)) (cancel func()) {
	f.mu.Lock()
	id := f.nextSub
	f.nextSub++
	f.subs[id] = fn
	f.mu.Unlock()
	return func() {
		f.mu.Lock()
		delete(f.subs, id)
		f.mu.Unlock()
	}
}

func (f *Fleet) subscribers() []func(Alert) {
	if len(f.subs) == 0 {
		return nil
	}
	out := make([]func(Alert), 0, len(f.subs))
	for _, s := range f.subs {
		out = append(out, s)
	}
	return out
}

func notify(subs []func(Alert), a Alert) {
	for _, s := range subs {
		s(a)
	}
}
