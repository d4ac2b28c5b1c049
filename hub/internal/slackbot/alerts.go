package slackbot

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/pifleet/pifleet/hub/internal/chat"
	"github.com/pifleet/pifleet/internal/wire"
)

// alerter turns the fleet's events into messages for the alert channel.
// At 10,000 Pis a switch or a broker node going away is thousands of
// events within seconds: Slack gets one summary of them, never thousands
// of messages, and the counts in it are exact.
//
// Intake. The fleet's callback (enqueue) takes a mutex and updates the
// pending window; nothing is queued and nothing is dropped, however large
// the flood. The window keeps, per kind of event and Pi, one entry (its
// first and latest event), and the events themselves in order only while
// a kind stays calm (at most maxHeldEvents): its memory grows with the
// number of Pis, never with the number of events.
//
// Bursts. A window opens with the first event and is looked at after
// AlertBurstWindow (5 s). Going offline and coming back count as one kind;
// problem, recovered and address are the others.
//   - A kind with at most AlertBurst (5) Pis in the window is calm: its
//     events go through the per-device rules below, in order, and give
//     exactly the messages they gave before bursts existed (only up to
//     AlertBurstWindow later).
//   - A kind with more Pis is a burst: the window stays open until no event
//     came for AlertBurstWindow (a storm that never pauses is cut every
//     burstSpan windows, 60 s), then each burst is one message: "312 Pis
//     lost at 14:02" (Pis whose latest event is offline and that were not
//     known offline), "298 Pis back online at 14:05", and those that went
//     and came back within the window; a few ids inline, every id in a file
//     in the message's thread. The per-device state is updated as if each
//     event had been posted, so a repeat is still muted afterwards.
//
// Per-device rules (calm events):
//   - offline/online: a repeat of the device's last posted state is muted
//     (the fleet already keeps quiet about a device's first "online"). A
//     device that changes state more than FlapChanges times within
//     FlapWindow gets one "flapping" message and is muted until it has been
//     steady for FlapWindow, when one "settled" message gives its state.
//   - problem/recovered/address: the same device, kind and detail within
//     AlertRepeat is muted.
//
// Start. For AlertQuietStart after the bot starts nothing is posted: the
// hub is relearning the fleet from the broker's retained messages, and
// every offline device and every problem would otherwise be announced at
// each restart. Then:
//   - when the fleet holds no Pi that the retained messages claimed online
//     (a fresh hub, an empty broker), one "Hub started" message lists the
//     devices that are offline or have problems, as before;
//   - otherwise this was a restart with Pis out there: the quiet goes on
//     until every claimed Pi spoke live again or AlertRestartWait (90 s)
//     after the start, and one message says "9,874 Pis reconnected after
//     the hub restart; 126 still away" (counts from fleet.Rejoin), with a
//     few of the away ones (all in a file) and what else was learnt. The
//     Pis still away are reported lost there and only there: their loss,
//     when the fleet's silence sweep declares it later, is muted.
//
// add, decide and sweep are pure (time comes in; the fleet only through
// the Rejoiner), so the rules are table-tested.
type alerter struct {
	window  time.Duration
	changes int
	repeat  time.Duration
	stats   *counters
	now     func() time.Time

	tick        time.Duration // run's ticker; 0: from the windows
	burst       int           // more Pis than this of one kind in a window is a burst
	burstWindow time.Duration // calm hold, and the pause that ends a burst
	quiet       time.Duration
	restartWait time.Duration
	rejoin      Rejoiner // nil: no restart summary

	// mu guards everything below: enqueue runs on the fleet's goroutine,
	// sweep on run's. Lock order: mu, then the fleet's own lock (sweep asks
	// the Rejoiner); the fleet never calls enqueue with its lock held.
	mu      sync.Mutex
	pending *pending // nil: no window open

	flips    map[string][]time.Time // device → recent state changes
	flapping map[string]string      // device → latest state while muted
	state    map[string]string      // device → last posted state
	recent   map[string]time.Time   // device/kind/detail → last posted

	quietUntil  time.Time                // set by begin; zero: no quiet start
	restartBy   time.Time                // set by begin: the restart summary is posted by then
	rejoining   bool                     // the quiet start became the wait for claimed Pis
	startupDone bool                     // the start was summed up
	startup     map[string]*startupState // device → what was learnt while quiet
	awayUntil   map[string]time.Time     // away in the restart summary: a "silent" loss until then is muted
}

type startupState struct {
	offline  bool
	problems string
}

// Defaults of the burst and restart settings (Config.AlertBurst,
// AlertBurstWindow, AlertRestartWait).
const (
	defaultAlertBurst       = 5
	defaultAlertBurstWindow = 5 * time.Second
	defaultAlertRestartWait = 90 * time.Second
)

const (
	// maxHeldEvents bounds the events a window keeps in order for the
	// per-device rules; past it, each calm Pi's latest event still counts.
	maxHeldEvents = 256
	// burstSpan: a burst is summed up after at most this many windows.
	burstSpan = 12
	// awayGrace is added to an away Pi's silence limit (wire.SilenceAfter)
	// for the fleet's sweep, which runs every few seconds.
	awayGrace = 10 * time.Second
	// detailSilent is the detail of the fleet's offline alert when it
	// takes a silent session as lost (fleet.Sweep).
	detailSilent = "silent"
)

func newAlerter(cfg Config, stats *counters) *alerter {
	now := cfg.clock
	if now == nil {
		now = func() time.Time { return timeNow() }
	}
	a := &alerter{
		window:      cfg.FlapWindow,
		changes:     cfg.FlapChanges,
		repeat:      cfg.AlertRepeat,
		stats:       stats,
		now:         now,
		tick:        cfg.alertTick,
		burst:       cfg.AlertBurst,
		burstWindow: cfg.AlertBurstWindow,
		quiet:       cfg.AlertQuietStart,
		restartWait: cfg.AlertRestartWait,
		flips:       map[string][]time.Time{},
		flapping:    map[string]string{},
		state:       map[string]string{},
		recent:      map[string]time.Time{},
		startup:     map[string]*startupState{},
		awayUntil:   map[string]time.Time{},
	}
	if a.burst <= 0 {
		a.burst = defaultAlertBurst
	}
	if a.burstWindow <= 0 {
		a.burstWindow = defaultAlertBurstWindow
	}
	if a.restartWait <= 0 {
		a.restartWait = defaultAlertRestartWait
	}
	return a
}

// enqueue is the AlertSource callback: it never blocks the fleet for
// longer than a map update, and never drops an event.
func (a *alerter) enqueue(al Alert) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.add(al, a.now())
}

// begin starts the quiet start. It is called before the alerter subscribes,
// so every event that arrives is judged against a window already set.
func (a *alerter) begin(now time.Time) {
	a.quietUntil = now.Add(a.quiet)
	a.restartBy = now.Add(a.restartWait)
}

func (a *alerter) tickEvery() time.Duration {
	if a.tick > 0 {
		return a.tick
	}
	return max(min(a.window/10, a.quiet/3, a.burstWindow/5, 5*time.Second), 20*time.Millisecond)
}

func (a *alerter) run(ctx context.Context, post func(context.Context, notice) error) {
	tick := time.NewTicker(a.tickEvery())
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			a.mu.Lock()
			out := a.sweep(a.now())
			a.mu.Unlock()
			for _, n := range out {
				if err := post(ctx, n); err != nil {
					if ctx.Err() == nil {
						a.stats.alertsDropped.Add(1)
					}
					continue
				}
				a.stats.alertsPosted.Add(1)
			}
		}
	}
}

// add takes one event at now: learnt while the start is quiet, muted when
// it is the loss of a Pi the restart summary already reported, else held
// in the window.
func (a *alerter) add(al Alert, now time.Time) {
	if al.Time.IsZero() {
		al.Time = now
	}
	if until, ok := a.awayUntil[al.Device]; ok {
		delete(a.awayUntil, al.Device)
		if al.Kind == AlertOffline && al.Detail == detailSilent && !al.Time.After(until) {
			a.state[al.Device] = AlertOffline
			a.stats.alertsSummarised.Add(1)
			return
		}
	}
	if a.learning(al.Time) {
		a.decide(al)
		a.stats.alertsSuppressed.Add(1)
		return
	}
	a.hold(al, now)
}

// inStartup: the start has not been summed up yet.
func (a *alerter) inStartup() bool { return !a.quietUntil.IsZero() && !a.startupDone }

// learning reports whether an event stamped t only feeds the start's
// summary.
func (a *alerter) learning(t time.Time) bool {
	return a.inStartup() && (a.rejoining || t.Before(a.quietUntil))
}

// decide returns the messages one event deserves under the per-device
// rules (none when muted, or while learning).
func (a *alerter) decide(al Alert) []notice {
	out := a.rules(al)
	if a.learning(al.Time) {
		a.learn(al)
		return nil
	}
	return out
}

func (a *alerter) rules(al Alert) []notice {
	switch al.Kind {
	case AlertOffline, AlertOnline:
		return a.stateChange(al)
	}
	key := al.Device + "\x00" + al.Kind + "\x00" + al.Detail
	if last, ok := a.recent[key]; ok && al.Time.Sub(last) < a.repeat {
		return nil
	}
	a.recent[key] = al.Time
	return []notice{{Alert: al}}
}

func (a *alerter) stateChange(al Alert) []notice {
	flips := append(a.flips[al.Device], al.Time)
	for len(flips) > 0 && al.Time.Sub(flips[0]) > a.window {
		flips = flips[1:]
	}
	a.flips[al.Device] = flips
	if _, muted := a.flapping[al.Device]; muted {
		a.flapping[al.Device] = al.Kind
		return nil
	}
	if len(flips) > a.changes {
		a.flapping[al.Device] = al.Kind
		return []notice{{Alert: Alert{Kind: alertFlapping, Device: al.Device, Time: al.Time,
			Detail: fmt.Sprintf("%d changes in %s, now %s; muted until it is steady for %s", len(flips), a.window, al.Kind, a.window)}}}
	}
	if a.state[al.Device] == al.Kind {
		return nil
	}
	a.state[al.Device] = al.Kind
	return []notice{{Alert: al}}
}

// learn records an event of the quiet start for the summary.
func (a *alerter) learn(al Alert) {
	st := a.startup[al.Device]
	if st == nil {
		st = &startupState{}
		a.startup[al.Device] = st
	}
	switch al.Kind {
	case AlertOffline:
		st.offline = true
	case AlertOnline:
		st.offline = false
	case AlertProblem:
		st.problems = al.Detail
	case AlertRecovered:
		st.problems = ""
	}
}

// sweep posts what is due at now: the start's summary, a closed window,
// settled devices; and forgets old history so memory stays bounded.
func (a *alerter) sweep(now time.Time) []notice {
	out := a.start(now)
	out = append(out, a.flush(now)...)
	for dev, kind := range a.flapping {
		flips := a.flips[dev]
		if len(flips) > 0 && now.Sub(flips[len(flips)-1]) < a.window {
			continue
		}
		delete(a.flapping, dev)
		a.state[dev] = kind
		out = append(out, notice{Alert: Alert{Kind: alertSettled, Device: dev, Time: now, Detail: "steady for " + a.window.String() + ", now " + kind}})
	}
	for dev, flips := range a.flips {
		if len(flips) == 0 || now.Sub(flips[len(flips)-1]) > a.window {
			if _, muted := a.flapping[dev]; !muted {
				delete(a.flips, dev)
			}
		}
	}
	for k, t := range a.recent {
		if now.Sub(t) > a.repeat {
			delete(a.recent, k)
		}
	}
	for dev, until := range a.awayUntil {
		if now.After(until) {
			delete(a.awayUntil, dev)
		}
	}
	return out
}

// start sums up the start once it is over: "Hub started" when no Pi was
// claimed online, else the restart summary once every claimed Pi is back
// or restartBy has passed.
func (a *alerter) start(now time.Time) []notice {
	if !a.inStartup() || now.Before(a.quietUntil) {
		return nil
	}
	var back, away int
	if a.rejoin != nil {
		back, away = a.rejoin.Rejoin()
	}
	if !a.rejoining {
		if back+away == 0 {
			a.startupDone = true
			out := a.summary(now)
			a.startup = nil
			return out
		}
		a.rejoining = true
		a.learnPending() // events held since the quiet ended belong to the restart
	}
	if away > 0 && now.Before(a.restartBy) {
		return nil
	}
	out := a.restartSummary(now, back, away)
	a.startupDone = true
	a.startup = nil
	return out
}

// maxStartupNames bounds the device lists shown inline.
const maxStartupNames = 20

// learnt lists what the quiet start learnt: devices offline and devices
// with problems, sorted, leaving out those in skip.
func (a *alerter) learnt(skip map[string]bool) (offline, problems []string) {
	for _, dev := range slices.Sorted(maps.Keys(a.startup)) {
		if skip[dev] {
			continue
		}
		st := a.startup[dev]
		if st.offline {
			offline = append(offline, dev)
		}
		if st.problems != "" {
			problems = append(problems, dev+" ("+st.problems+")")
		}
	}
	return offline, problems
}

// summary is the "hub started" message (nil when there is nothing to say).
func (a *alerter) summary(now time.Time) []notice {
	offline, problems := a.learnt(nil)
	parts := learntParts(offline, problems)
	if len(parts) == 0 {
		return nil
	}
	return []notice{{Alert: Alert{Kind: alertStartup, Time: now, Detail: strings.Join(parts, "; ")}}}
}

func learntParts(offline, problems []string) []string {
	var parts []string
	if len(offline) > 0 {
		parts = append(parts, fmt.Sprintf("%s offline: %s", thousands(len(offline)), names(offline, len(offline))))
	}
	if len(problems) > 0 {
		parts = append(parts, fmt.Sprintf("%s with problems: %s", thousands(len(problems)), names(problems, len(problems))))
	}
	return parts
}

// restartSummary is the one message of a restart: how many of the Pis
// claimed online came back, how many are still away (which are then
// taken as reported), and what else the quiet start learnt.
func (a *alerter) restartSummary(now time.Time, back, away int) []notice {
	var awayIDs []string
	skip := map[string]bool{}
	if a.rejoin != nil && away > 0 {
		for _, d := range a.rejoin.List() {
			// Claimed online by a retained message and never heard live
			// since this hub started: online still, or taken as lost for
			// silence (fleet: awaiting).
			if !d.LastLive.IsZero() || !(d.Online() || d.Silent) {
				continue
			}
			awayIDs = append(awayIDs, d.ID)
			skip[d.ID] = true
			if !d.Online() {
				a.state[d.ID] = AlertOffline
				continue
			}
			hb := 0
			if d.Status != nil {
				hb = d.Status.HeartbeatS
			}
			a.awayUntil[d.ID] = now.Add(wire.SilenceAfter(hb) + awayGrace)
		}
	}
	head := pis(back) + " reconnected after the hub restart"
	if away > 0 {
		head += "; " + thousands(away) + " still away"
	}
	s := &summary{head: head}
	if away > 0 {
		s.lines = append(s.lines, "Still away: "+names(awayIDs, max(away, len(awayIDs))))
		if len(awayIDs) > maxStartupNames {
			s.addFile(alertRestart, "Still away ("+thousands(len(awayIDs))+")", awayIDs)
		}
	}
	s.lines = append(s.lines, learntParts(a.learnt(skip))...)
	if s.file != nil {
		s.file.Content = head + "\n\n" + s.file.Content
	}
	return []notice{{Alert: Alert{Kind: alertRestart, Time: now, Detail: head}, sum: s}}
}

// The window.

// heldEvent is an event in the window, numbered in order of arrival.
type heldEvent struct {
	seq int
	Alert
}

// held is what one Pi did in the window, for one kind.
type held struct {
	first, last heldEvent
	n           int  // events
	lastKept    bool // last is in pending.events
}

type pendingGroup struct {
	devs  map[string]*held
	burst bool
}

// pending is the open window.
type pending struct {
	opened, last time.Time // first and latest arrival
	seq          int
	events       []heldEvent // of calm kinds, in order; at most maxHeldEvents
	groups       map[string]*pendingGroup
}

const groupState = "state" // offline and online

func groupOf(kind string) string {
	if kind == AlertOffline || kind == AlertOnline {
		return groupState
	}
	return kind
}

var groupOrder = []string{groupState, AlertProblem, AlertRecovered, AlertAddress}

// kinds returns the window's groups, known ones first.
func (p *pending) kinds() []string {
	var out []string
	for _, g := range groupOrder {
		if p.groups[g] != nil {
			out = append(out, g)
		}
	}
	for _, g := range slices.Sorted(maps.Keys(p.groups)) {
		if !slices.Contains(groupOrder, g) {
			out = append(out, g)
		}
	}
	return out
}

func (p *pending) bursting() bool {
	for _, g := range p.groups {
		if g.burst {
			return true
		}
	}
	return false
}

func (p *pending) count() int {
	n := 0
	for _, g := range p.groups {
		for _, h := range g.devs {
			n += h.n
		}
	}
	return n
}

// calm returns the events of calm kinds for the per-device rules, in
// order of arrival: those kept, and each Pi's latest that was not.
func (p *pending) calm() []heldEvent {
	out := slices.Clone(p.events)
	for _, g := range p.groups {
		if g.burst {
			continue
		}
		for _, h := range g.devs {
			if !h.lastKept {
				out = append(out, h.last)
			}
		}
	}
	slices.SortFunc(out, func(x, y heldEvent) int { return cmp.Compare(x.seq, y.seq) })
	return out
}

// hold puts one event into the window (opened at now if none is open).
func (a *alerter) hold(al Alert, now time.Time) {
	p := a.pending
	if p == nil {
		p = &pending{opened: now, groups: map[string]*pendingGroup{}}
		a.pending = p
	}
	p.last = now
	p.seq++
	ev := heldEvent{seq: p.seq, Alert: al}
	g := groupOf(al.Kind)
	pg := p.groups[g]
	if pg == nil {
		pg = &pendingGroup{devs: map[string]*held{}}
		p.groups[g] = pg
	}
	h := pg.devs[al.Device]
	if h == nil {
		h = &held{first: ev}
		pg.devs[al.Device] = h
	}
	h.last = ev
	h.n++
	if !pg.burst && len(pg.devs) > a.burst {
		pg.burst = true // its events are summed up: no need to keep them
		p.events = slices.DeleteFunc(p.events, func(e heldEvent) bool { return groupOf(e.Kind) == g })
	}
	h.lastKept = !pg.burst && len(p.events) < maxHeldEvents
	if h.lastKept {
		p.events = append(p.events, ev)
	}
}

// flush closes the window when it is due: calm kinds give their
// per-device messages, bursts one summary each. While the start is not
// summed up the window waits (its events may belong to a restart).
func (a *alerter) flush(now time.Time) []notice {
	p := a.pending
	if p == nil || a.inStartup() || now.Sub(p.opened) < a.burstWindow {
		return nil
	}
	if p.bursting() && now.Sub(p.last) < a.burstWindow && now.Sub(p.opened) < burstSpan*a.burstWindow {
		return nil
	}
	a.pending = nil
	var out []notice
	for _, ev := range p.calm() {
		n := a.decide(ev.Alert)
		if len(n) == 0 {
			a.stats.alertsSuppressed.Add(1)
		}
		out = append(out, n...)
	}
	for _, g := range p.kinds() {
		if pg := p.groups[g]; pg.burst {
			out = append(out, a.summarise(g, pg)...)
		}
	}
	return out
}

// learnPending feeds the open window to the start's summary: a restart
// was detected after some events were held. Each Pi's latest event per
// kind decides what is learnt, so order by arrival is enough.
func (a *alerter) learnPending() {
	p := a.pending
	if p == nil {
		return
	}
	a.pending = nil
	evs := p.calm()
	for _, pg := range p.groups {
		if pg.burst {
			for _, h := range pg.devs {
				evs = append(evs, h.last)
			}
		}
	}
	slices.SortFunc(evs, func(x, y heldEvent) int { return cmp.Compare(x.seq, y.seq) })
	for _, ev := range evs {
		a.decide(ev.Alert)
	}
	a.stats.alertsSuppressed.Add(uint64(p.count()))
}

// summarise turns one burst into its messages, and records each Pi's
// latest event as if it had been posted.
func (a *alerter) summarise(g string, pg *pendingGroup) []notice {
	devs := slices.Sorted(maps.Keys(pg.devs))
	var at time.Time
	n := 0
	for _, d := range devs {
		h := pg.devs[d]
		n += h.n
		if at.IsZero() || h.first.Time.Before(at) {
			at = h.first.Time
		}
	}
	a.stats.alertsSummarised.Add(uint64(n))
	if g == groupState {
		return a.stateBurst(pg, devs, at)
	}
	return a.eventBurst(g, pg, devs, at)
}

// stateBurst: Pis lost (latest offline, not known offline before), back
// (latest online, not known online), and those whose state changed and
// changed back within the window.
func (a *alerter) stateBurst(pg *pendingGroup, devs []string, at time.Time) []notice {
	var lost, back, blip, relapse []string
	causes := map[string]int{}
	for _, dev := range devs {
		h := pg.devs[dev]
		prev, muted := a.flapping[dev]
		if !muted {
			prev = a.state[dev]
		}
		last, first := h.last.Kind, h.first.Kind
		switch {
		case last == AlertOffline && prev != AlertOffline:
			lost = append(lost, dev)
			causes[h.last.Detail]++
		case last == AlertOffline && first == AlertOnline:
			relapse = append(relapse, dev) // was offline, came back, went again
		case last == AlertOnline && prev != AlertOffline && first == AlertOffline:
			blip = append(blip, dev) // went offline and came back
		case last == AlertOnline && prev != AlertOnline:
			back = append(back, dev)
		}
		if muted {
			a.flapping[dev] = last
		} else {
			a.state[dev] = last
		}
	}
	var out []notice
	if len(lost) > 0 {
		n := burstNotice(alertBurstLost, pis(len(lost))+" lost", at, lost, nil)
		if len(causes) > 1 {
			n.sum.lines = append(n.sum.lines, causeLine(causes))
		}
		if len(blip) > 0 {
			n.sum.also(alertBurstBlip, pis(len(blip))+" went offline and came back", blip)
			blip = nil
		}
		out = append(out, n)
	}
	if len(back) > 0 {
		n := burstNotice(alertBurstBack, pis(len(back))+" back online", at, back, nil)
		if len(relapse) > 0 {
			n.sum.also(alertBurstRelapse, pis(len(relapse))+" came back and went offline again", relapse)
			relapse = nil
		}
		out = append(out, n)
	}
	if len(blip) > 0 {
		out = append(out, burstNotice(alertBurstBlip, pis(len(blip))+" went offline and came back", at, blip, nil))
	}
	if len(relapse) > 0 {
		out = append(out, burstNotice(alertBurstRelapse, pis(len(relapse))+" came back and went offline again", at, relapse, nil))
	}
	return out
}

// eventBurst: Pis with a problem, recovered, or a new address, each Pi's
// latest event in the window, leaving out those the repeat rule mutes.
func (a *alerter) eventBurst(g string, pg *pendingGroup, devs []string, at time.Time) []notice {
	var ids, entries []string
	counts := map[string]int{}
	for _, dev := range devs {
		al := pg.devs[dev].last.Alert
		key := dev + "\x00" + al.Kind + "\x00" + al.Detail
		if last, ok := a.recent[key]; ok && al.Time.Sub(last) < a.repeat {
			continue
		}
		a.recent[key] = al.Time
		ids = append(ids, dev)
		entries = append(entries, dev+": "+al.Detail)
		for _, p := range strings.Split(al.Detail, ", ") {
			if p != "" {
				counts[p]++
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	var n notice
	switch g {
	case AlertProblem:
		n = burstNotice(alertBurstProblem, pis(len(ids))+" with a health problem", at, ids, entries)
		n.sum.lines = append(n.sum.lines, causeLine(counts))
	case AlertRecovered:
		n = burstNotice(alertBurstRecovered, pis(len(ids))+" recovered", at, ids, entries)
		n.sum.lines = append(n.sum.lines, causeLine(counts))
	case AlertAddress:
		n = burstNotice(alertBurstAddress, pis(len(ids))+" changed address", at, ids, entries)
	default:
		n = burstNotice(alertBurstOther, pis(len(ids))+": "+g, at, ids, entries)
	}
	return []notice{n}
}

// The messages.

// Kinds of the summaries (alertStartup is in render.go).
const (
	alertBurstLost      = "burst-lost"
	alertBurstBack      = "burst-back"
	alertBurstBlip      = "burst-blip"
	alertBurstRelapse   = "burst-relapse"
	alertBurstProblem   = "burst-problem"
	alertBurstRecovered = "burst-recovered"
	alertBurstAddress   = "burst-address"
	alertBurstOther     = "burst-other"
	alertRestart        = "restart"
)

var summaryLook = map[string]struct{ emoji, file string }{
	alertBurstLost:      {":red_circle:", "pifleet-lost.txt"},
	alertBurstBack:      {":large_green_circle:", "pifleet-back-online.txt"},
	alertBurstBlip:      {":left_right_arrow:", "pifleet-went-and-came-back.txt"},
	alertBurstRelapse:   {":left_right_arrow:", "pifleet-came-back-briefly.txt"},
	alertBurstProblem:   {":warning:", "pifleet-health-problems.txt"},
	alertBurstRecovered: {":white_check_mark:", "pifleet-recovered.txt"},
	alertBurstAddress:   {":arrows_counterclockwise:", "pifleet-address-changes.txt"},
	alertBurstOther:     {":warning:", "pifleet-alerts.txt"},
	alertRestart:        {":information_source:", "pifleet-still-away.txt"},
}

// notice is one message for the alert channel: a device's alert (and the
// flapping, settled and "hub started" ones) as before, or, with sum, a
// summary of many Pis.
type notice struct {
	Alert
	sum *summary
}

// summary is a message about many Pis: a headline, a few lines (each with
// at most maxStartupNames ids), and every id in a file when they do not
// all fit.
type summary struct {
	head  string // "312 Pis lost"
	timed bool   // the headline ends with " at <time>"
	lines []string
	file  *chat.File
}

// burstNotice is the summary of a burst of kind at at; entries are the
// file's lines (default: the ids).
func burstNotice(kind, head string, at time.Time, ids, entries []string) notice {
	s := &summary{head: head, timed: true, lines: []string{names(ids, len(ids))}}
	if len(ids) > maxStartupNames {
		if entries == nil {
			entries = ids
		}
		s.addFile(kind, head+" at "+at.UTC().Format(time.RFC3339), entries)
	}
	return notice{Alert: Alert{Kind: kind, Time: at, Detail: head}, sum: s}
}

// also adds a second list (as a line, and to the file when there is one
// or when the list does not fit inline).
func (s *summary) also(kind, what string, ids []string) {
	s.lines = append(s.lines, what+": "+names(ids, len(ids)))
	if s.file != nil || len(ids) > maxStartupNames {
		s.addFile(kind, what, ids)
	}
}

// addFile adds a titled list to the summary's file (named after kind when
// it is the first).
func (s *summary) addFile(kind, title string, lines []string) {
	if s.file == nil {
		s.file = &chat.File{Name: summaryLook[kind].file}
	} else {
		s.file.Content += "\n"
	}
	s.file.Content += title + ":\n" + strings.Join(lines, "\n") + "\n"
}

// maxSummaryLine bounds one line of a summary (a list of 20 ids with
// their problems), so a summary stays a few blocks well under Slack's
// limits (50 blocks, 12,000 characters).
const maxSummaryLine = 2000

func (n notice) render() message {
	if n.sum == nil {
		return renderAlert(n.Alert)
	}
	s := n.sum
	look := summaryLook[n.Kind]
	line := look.emoji + " *" + esc(s.head) + "*"
	text := s.head
	if s.timed {
		hm := n.Time.UTC().Format("15:04") + " UTC"
		line += fmt.Sprintf(" at <!date^%d^{time}|%s>", n.Time.Unix(), hm)
		text += " at " + hm
	}
	for _, l := range s.lines {
		line += "\n" + esc(cut(l, maxSummaryLine))
		text += "\n" + l
	}
	var blocks []slack.Block
	for _, chunk := range splitLines(line, maxSectionText) {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(chunk), nil, nil))
	}
	ctx := fmt.Sprintf("<!date^%d^{date_short_pretty} {time_secs}|%s> · pifleet alert", n.Time.Unix(), n.Time.UTC().Format(time.RFC3339))
	m := message{Text: esc(cut(text, maxFallbackText))}
	if s.file != nil {
		ctx += " · every Pi in `" + s.file.Name + "` below"
		m.Files = []chat.File{*s.file}
	}
	m.Blocks = append(blocks, contextBlock(ctx))
	return m
}

// causeLine is "298 connection lost · 10 went silent", most first.
func causeLine(counts map[string]int) string {
	words := map[string]string{"lost": "connection lost", detailSilent: "went silent", "offline": "shut down"}
	keys := slices.SortedFunc(maps.Keys(counts), func(x, y string) int {
		return cmp.Or(cmp.Compare(counts[y], counts[x]), cmp.Compare(x, y))
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		w := words[k]
		if w == "" {
			w = k
		}
		parts[i] = thousands(counts[k]) + " " + w
	}
	return strings.Join(parts, " · ")
}

// names lists the first maxStartupNames of xs, and how many more of total.
func names(xs []string, total int) string {
	if len(xs) > maxStartupNames {
		xs = xs[:maxStartupNames]
	}
	s := strings.Join(xs, ", ")
	if more := total - len(xs); more > 0 {
		s += " and " + thousands(more) + " more"
	}
	return s
}

// thousands writes n with thousands separators: 9,874.
func thousands(n int) string {
	if n < 0 {
		return "-" + thousands(-n)
	}
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// pis is "1 Pi", "2,000 Pis".
func pis(n int) string {
	if n == 1 {
		return "1 Pi"
	}
	return thousands(n) + " Pis"
}

func (b *Bot) postNotice(ctx context.Context, n notice) error {
	m := n.render()
	ts, err := b.post(ctx, b.cfg.AlertChannel, "", m)
	if err != nil {
		b.log.Warn("slack: alert not posted", "device", n.Device, "kind", n.Kind, "err", err)
		return err
	}
	if err := b.uploads(ctx, b.cfg.AlertChannel, ts, m.Files); err != nil {
		b.log.Warn("slack: the alert's list of Pis was not attached", "kind", n.Kind, "err", err)
	}
	return nil
}
