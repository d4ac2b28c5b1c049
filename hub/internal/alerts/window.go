package alerts

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"time"
)

const (
	// maxHeldEvents bounds the events a window keeps in order for the
	// per-device rules; past it, each calm Pi's latest event still counts.
	maxHeldEvents = 256
	// burstSpan: a burst is summed up after at most this many windows.
	burstSpan = 12
)

// heldEvent is an event in the window, numbered in order of arrival.
type heldEvent struct {
	seq int
	Event
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
	if kind == Offline || kind == Online {
		return groupState
	}
	return kind
}

var groupOrder = []string{groupState, Problem, Recovered, Address}

// kinds returns the window's groups, known ones first.
func (w *pending) kinds() []string {
	var out []string
	for _, g := range groupOrder {
		if w.groups[g] != nil {
			out = append(out, g)
		}
	}
	for _, g := range slices.Sorted(maps.Keys(w.groups)) {
		if !slices.Contains(groupOrder, g) {
			out = append(out, g)
		}
	}
	return out
}

func (w *pending) bursting() bool {
	for _, g := range w.groups {
		if g.burst {
			return true
		}
	}
	return false
}

func (w *pending) count() int {
	n := 0
	for _, g := range w.groups {
		for _, h := range g.devs {
			n += h.n
		}
	}
	return n
}

// calm returns the events of calm kinds for the per-device rules, in
// order of arrival: those kept, and each Pi's latest that was not.
func (w *pending) calm() []heldEvent {
	out := slices.Clone(w.events)
	for _, g := range w.groups {
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
func (p *Policy) hold(e Event, now time.Time) {
	w := p.pending
	if w == nil {
		w = &pending{opened: now, groups: map[string]*pendingGroup{}}
		p.pending = w
	}
	w.last = now
	w.seq++
	ev := heldEvent{seq: w.seq, Event: e}
	g := groupOf(e.Kind)
	pg := w.groups[g]
	if pg == nil {
		pg = &pendingGroup{devs: map[string]*held{}}
		w.groups[g] = pg
	}
	h := pg.devs[e.Device]
	if h == nil {
		h = &held{first: ev}
		pg.devs[e.Device] = h
	}
	h.last = ev
	h.n++
	if !pg.burst && len(pg.devs) > p.cfg.Burst {
		pg.burst = true // its events are summed up: no need to keep them
		w.events = slices.DeleteFunc(w.events, func(e heldEvent) bool { return groupOf(e.Kind) == g })
	}
	h.lastKept = !pg.burst && len(w.events) < maxHeldEvents
	if h.lastKept {
		w.events = append(w.events, ev)
	}
}

// flush closes the window when it is due: calm kinds give their
// per-device alerts, bursts one summary each. While the start is not
// summed up the window waits (its events may belong to a restart).
func (p *Policy) flush(now time.Time) []Alert {
	w := p.pending
	bw := p.cfg.BurstWindow
	if w == nil || p.inStartup() || now.Sub(w.opened) < bw {
		return nil
	}
	if w.bursting() && now.Sub(w.last) < bw && now.Sub(w.opened) < burstSpan*bw {
		return nil
	}
	p.pending = nil
	var out []Alert
	for _, ev := range w.calm() {
		n := p.decide(ev.Event)
		if len(n) == 0 {
			p.suppressed.Add(1)
		}
		out = append(out, n...)
	}
	for _, g := range w.kinds() {
		if pg := w.groups[g]; pg.burst {
			out = append(out, p.summarise(g, pg)...)
		}
	}
	return out
}

// learnPending feeds the open window to the start's summary: a restart
// was detected after some events were held. Each Pi's latest event per
// kind decides what is learnt, so order by arrival is enough.
func (p *Policy) learnPending() {
	w := p.pending
	if w == nil {
		return
	}
	p.pending = nil
	evs := w.calm()
	for _, pg := range w.groups {
		if pg.burst {
			for _, h := range pg.devs {
				evs = append(evs, h.last)
			}
		}
	}
	slices.SortFunc(evs, func(x, y heldEvent) int { return cmp.Compare(x.seq, y.seq) })
	for _, ev := range evs {
		p.decide(ev.Event)
	}
	p.suppressed.Add(uint64(w.count()))
}

// summarise turns one burst into its alerts, and records each Pi's latest
// event as if it had been alerted.
func (p *Policy) summarise(g string, pg *pendingGroup) []Alert {
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
	p.summarised.Add(uint64(n))
	if g == groupState {
		return p.stateBurst(pg, devs, at)
	}
	return p.eventBurst(g, pg, devs, at)
}

// stateBurst: Pis lost (latest offline, not known offline before), back
// (latest online, not known online), and those whose state changed and
// changed back within the window.
func (p *Policy) stateBurst(pg *pendingGroup, devs []string, at time.Time) []Alert {
	var lost, back, blip, relapse []string
	causes := map[string]int{}
	for _, dev := range devs {
		h := pg.devs[dev]
		prev, muted := p.flapping[dev]
		if !muted {
			prev = p.state[dev]
		}
		last, first := h.last.Kind, h.first.Kind
		switch {
		case last == Offline && prev != Offline:
			lost = append(lost, dev)
			causes[h.last.Detail]++
		case last == Offline && first == Online:
			relapse = append(relapse, dev) // was offline, came back, went again
		case last == Online && prev != Offline && first == Offline:
			blip = append(blip, dev) // went offline and came back
		case last == Online && prev != Online:
			back = append(back, dev)
		}
		if muted {
			p.flapping[dev] = last
		} else {
			p.state[dev] = last
		}
	}
	var out []Alert
	if len(lost) > 0 {
		a := burstAlert(BurstLost, pis(len(lost))+" lost", at, lost, nil)
		if len(causes) > 1 {
			a.Summary.Lines = append(a.Summary.Lines, causeLine(causes))
		}
		if len(blip) > 0 {
			a.Summary.also(BurstBlip, pis(len(blip))+" went offline and came back", blip)
			blip = nil
		}
		out = append(out, a)
	}
	if len(back) > 0 {
		a := burstAlert(BurstBack, pis(len(back))+" back online", at, back, nil)
		if len(relapse) > 0 {
			a.Summary.also(BurstRelapse, pis(len(relapse))+" came back and went offline again", relapse)
			relapse = nil
		}
		out = append(out, a)
	}
	if len(blip) > 0 {
		out = append(out, burstAlert(BurstBlip, pis(len(blip))+" went offline and came back", at, blip, nil))
	}
	if len(relapse) > 0 {
		out = append(out, burstAlert(BurstRelapse, pis(len(relapse))+" came back and went offline again", at, relapse, nil))
	}
	return out
}

// eventBurst: Pis with a problem, recovered, or a new address, each Pi's
// latest event in the window, leaving out those the repeat rule mutes.
func (p *Policy) eventBurst(g string, pg *pendingGroup, devs []string, at time.Time) []Alert {
	var ids, entries []string
	counts := map[string]int{}
	for _, dev := range devs {
		e := pg.devs[dev].last.Event
		key := dev + "\x00" + e.Kind + "\x00" + e.Detail
		if last, ok := p.recent[key]; ok && e.Time.Sub(last) < p.cfg.Repeat {
			continue
		}
		p.recent[key] = e.Time
		ids = append(ids, dev)
		entries = append(entries, dev+": "+e.Detail)
		for _, part := range strings.Split(e.Detail, ", ") {
			if part != "" {
				counts[part]++
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	var a Alert
	switch g {
	case Problem:
		a = burstAlert(BurstProblem, pis(len(ids))+" with a health problem", at, ids, entries)
		a.Summary.Lines = append(a.Summary.Lines, causeLine(counts))
	case Recovered:
		a = burstAlert(BurstRecovered, pis(len(ids))+" recovered", at, ids, entries)
		a.Summary.Lines = append(a.Summary.Lines, causeLine(counts))
	case Address:
		a = burstAlert(BurstAddress, pis(len(ids))+" changed address", at, ids, entries)
	default:
		a = burstAlert(BurstOther, pis(len(ids))+": "+g, at, ids, entries)
	}
	return []Alert{a}
}
