package fleet

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pifleet/pifleet/internal/wire"
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

	// LastLive is when the device's current session last spoke itself
	// (birth or status as it happened: not a will, not a retained copy
	// replayed when the hub subscribed). Zero until then.
	LastLive time.Time
	// Silent is set when the hub took the session as lost because it
	// stayed silent past wire.SilenceAfter (no will arrived).
	Silent bool

	awaiting bool // claimed online by a retained state only, since the last Resync
	rejoined bool // was awaiting, then spoke live
}

// Unconfirmed reports whether the device is shown online only because a
// retained state replayed after the hub (re)subscribed says so; its next
// live message confirms it, or silence makes it lost (PROTOCOL.md rule 4).
func (d *Device) Unconfirmed() bool { return d.awaiting && d.State == wire.StateOnline }

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
	// Inferred counts sessions taken as online from a live status whose
	// birth the hub never saw (a dropped or deleted state); Silenced
	// counts sessions taken as lost after silence (a dropped will).
	Inferred uint64
	Silenced uint64
}

// Fleet is the fleet view. It is safe for concurrent use.
type Fleet struct {
	now func() time.Time

	mu      sync.RWMutex
	devices map[string]*Device
	subs    map[int]func(Alert)
	nextSub int

	resyncAt time.Time // guarded by mu: the hub's last (re)subscription

	accepted atomic.Uint64
	stale    atomic.Uint64
	inferred atomic.Uint64
	silenced atomic.Uint64
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

// Apply ingests one live MQTT message (see ApplyMessage).
func (f *Fleet) Apply(topic string, payload []byte) error {
	return f.ApplyMessage(topic, payload, false)
}

// ApplyMessage ingests one MQTT message; retained is MQTT's retain flag
// as delivered (true for the copies a broker replays on subscribe). It
// never panics on bad input: it returns an error saying what was wrong
// (and counts it) and leaves every device as it was.
func (f *Fleet) ApplyMessage(topic string, payload []byte, retained bool) error {
	err := f.apply(topic, payload, retained)
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

func (f *Fleet) apply(topic string, payload []byte, retained bool) error {
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
		return f.applyState(t.Device, st, retained)
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
		return f.applyStatus(st, retained)
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

// applyState applies the birth/death rules (wire/PROTOCOL.md, "How a hub
// keeps the view true"): a message from an older session (smaller epoch)
// never overrides a newer one, so a late "lost" cannot kill a newer birth.
func (f *Fleet) applyState(id string, st wire.State, retained bool) error {
	now := f.now()
	f.mu.Lock()
	d := f.device(id)
	if st.Epoch < d.Epoch {
		f.mu.Unlock()
		return fmt.Errorf("%w: device %s %s epoch %d < current %d", ErrStale, id, st.State, st.Epoch, d.Epoch)
	}
	if st.Epoch > d.Epoch {
		d.rejoined = false
	}
	d.Epoch = st.Epoch
	if st.State != wire.StateLost { // a will is the broker speaking, not the device
		d.LastSeen = now
	}
	switch {
	case st.State == wire.StateOnline && !retained:
		f.heardLive(d, now)
	case st.State == wire.StateOnline && d.LastLive.Before(f.resyncAt):
		d.awaiting = true // a claim from before the hub subscribed: to be confirmed live
	case st.State != wire.StateOnline:
		d.awaiting = false
	}
	d.Silent = false
	alert := f.setState(d, st.State, fmt.Sprintf("epoch %d", st.Epoch), now)
	subs := f.subscribers()
	f.mu.Unlock()
	if alert != nil {
		notify(subs, *alert)
	}
	return nil
}

// heardLive notes that d's current session spoke itself.
func (f *Fleet) heardLive(d *Device, now time.Time) {
	d.LastLive = now
	if d.awaiting {
		d.awaiting, d.rejoined = false, true
	}
}

// setState moves d to state s and returns the alert to send, if any.
// Called with f.mu held.
func (f *Fleet) setState(d *Device, s wire.Lifecycle, detail string, now time.Time) *Alert {
	prev := d.State
	if prev == s {
		return nil
	}
	d.State = s
	d.Since = now
	d.addHistory(Change{Time: now, Kind: string(s), Detail: detail})
	kind := "offline"
	if s == wire.StateOnline {
		kind = "online"
	}
	if prev != "" || kind == "offline" {
		return &Alert{Kind: kind, Device: d.ID, Detail: string(s), Time: now}
	}
	return nil
}

// applyStatus stores a device's status. A live status also speaks for its
// session: one with a newer epoch than the state the hub holds (or for a
// device whose state is unknown) proves that session is up even if its
// birth was dropped or deleted; one from a session the hub took as lost
// for silence brings it back. Within a session the broker delivers a
// topic's messages in order, so the newest arrival wins whatever its seq
// (a status with an inflated seq cannot lock the real ones out).
func (f *Fleet) applyStatus(st wire.Status, retained bool) error {
	now := f.now()
	f.mu.Lock()
	d := f.device(st.ID)
	if st.Epoch < d.Epoch && !(!retained && f.silentLocked(d, now)) {
		f.mu.Unlock()
		return fmt.Errorf("%w: device %s status epoch %d older than the session %d", ErrStale, st.ID, st.Epoch, d.Epoch)
	}
	var alerts []Alert
	if !retained {
		revive := st.Epoch != d.Epoch || d.State == "" || d.Silent
		if st.Epoch == d.Epoch && (d.State == wire.StateLost || d.State == wire.StateOffline) && !d.Silent {
			revive = false // the session ended (will or clean shutdown) after it sent this
		}
		if revive && (d.State != wire.StateOnline || st.Epoch != d.Epoch) {
			f.inferred.Add(1)
			d.Epoch = st.Epoch
			d.Silent = false
			if a := f.setState(d, wire.StateOnline, fmt.Sprintf("epoch %d (from its status: the birth was not seen)", st.Epoch), now); a != nil {
				alerts = append(alerts, *a)
			}
		}
		if st.Epoch == d.Epoch && d.State == wire.StateOnline {
			f.heardLive(d, now)
		}
	}
	if old := d.Status; old != nil {
		changes := diff(old, &st, now)
		for _, a := range changes {
			d.addHistory(Change{Time: now, Kind: a.Kind, Detail: a.Detail})
		}
		alerts = append(alerts, changes...)
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

// silentLocked reports whether d's current session has been silent past
// wire.SilenceAfter: lost for silence already, or online without a word.
func (f *Fleet) silentLocked(d *Device, now time.Time) bool {
	if d.Silent {
		return true
	}
	if d.State != wire.StateOnline {
		return false
	}
	last := f.lastHeardLocked(d)
	if last.IsZero() {
		return false
	}
	hb := 0
	if d.Status != nil {
		hb = d.Status.HeartbeatS
	}
	return now.Sub(last) > wire.SilenceAfter(hb)
}

// lastHeardLocked is when d's session last spoke live, counting from the
// last Resync at the earliest (a replayed claim gets a full silence limit).
func (f *Fleet) lastHeardLocked(d *Device) time.Time {
	if d.LastLive.Before(f.resyncAt) {
		return f.resyncAt
	}
	return d.LastLive
}

// Resync tells the fleet that the hub (re)subscribed at now: the broker
// replays every retained state and status next. Devices it claims online
// must speak live within wire.SilenceAfter, or Sweep takes them as lost;
// Rejoin counts how many did.
func (f *Fleet) Resync(now time.Time) {
	f.mu.Lock()
	f.resyncAt = now
	for _, d := range f.devices {
		d.rejoined = false
		d.awaiting = d.State == wire.StateOnline
	}
	f.mu.Unlock()
}

// Rejoin counts, since the last Resync, the devices claimed online that
// spoke live again (back) and those that have not (away).
func (f *Fleet) Rejoin() (back, away int) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, d := range f.devices {
		switch {
		case d.rejoined && d.State == wire.StateOnline:
			back++
		case d.awaiting:
			away++
		}
	}
	return back, away
}

// Sweep takes every online session that stayed silent past
// wire.SilenceAfter as lost (its will was dropped, or the broker that
// held it is gone) and returns how many. The hub calls it every few
// seconds.
func (f *Fleet) Sweep() int {
	now := f.now()
	var alerts []Alert
	f.mu.Lock()
	for _, d := range f.devices {
		if d.State != wire.StateOnline || !f.silentLocked(d, now) {
			continue
		}
		silentFor := now.Sub(f.lastHeardLocked(d)).Round(time.Second)
		if a := f.setState(d, wire.StateLost, fmt.Sprintf("silent for %v (no will arrived)", silentFor), now); a != nil {
			a.Detail = "silent"
			alerts = append(alerts, *a)
		}
		d.Silent = true
		f.silenced.Add(1)
	}
	subs := f.subscribers()
	f.mu.Unlock()
	for _, a := range alerts {
		notify(subs, a)
	}
	return len(alerts)
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
	return Stats{Accepted: f.accepted.Load(), Stale: f.stale.Load(), Rejected: rej,
		Inferred: f.inferred.Load(), Silenced: f.silenced.Load()}
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
