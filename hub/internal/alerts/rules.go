package alerts

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/pifleet/pifleet/hub/internal/fleet"
	"github.com/pifleet/pifleet/internal/wire"
)

const (
	// awayGrace is added to an away Pi's silence limit (wire.SilenceAfter)
	// for the fleet's sweep, which runs every few seconds.
	awayGrace = 10 * time.Second
	// detailSilent is the detail of the fleet's offline event when it
	// takes a silent session as lost (fleet.Sweep).
	detailSilent = "silent"
)

// add takes one event at now: learnt while the start is quiet, muted when
// it is the loss of a Pi the restart summary already reported, else held
// in the window.
func (p *Policy) add(e Event, now time.Time) {
	if e.Time.IsZero() {
		e.Time = now
	}
	if until, ok := p.awayUntil[e.Device]; ok {
		delete(p.awayUntil, e.Device)
		if e.Kind == Offline && e.Detail == detailSilent && !e.Time.After(until) {
			p.state[e.Device] = Offline
			p.summarised.Add(1)
			return
		}
	}
	if p.learning(e.Time) {
		p.decide(e)
		p.suppressed.Add(1)
		return
	}
	p.hold(e, now)
}

// inStartup: the start has not been summed up yet.
func (p *Policy) inStartup() bool { return !p.quietUntil.IsZero() && !p.startupDone }

// learning reports whether an event stamped t only feeds the start's
// summary.
func (p *Policy) learning(t time.Time) bool {
	return p.inStartup() && (p.rejoining || t.Before(p.quietUntil))
}

// decide returns the alerts one event deserves under the per-device rules
// (none when muted, or while learning).
func (p *Policy) decide(e Event) []Alert {
	out := p.rules(e)
	if p.learning(e.Time) {
		p.learn(e)
		return nil
	}
	return out
}

func (p *Policy) rules(e Event) []Alert {
	switch e.Kind {
	case Offline, Online:
		return p.stateChange(e)
	}
	key := e.Device + "\x00" + e.Kind + "\x00" + e.Detail
	if last, ok := p.recent[key]; ok && e.Time.Sub(last) < p.cfg.Repeat {
		return nil
	}
	p.recent[key] = e.Time
	return []Alert{alertOf(e)}
}

func alertOf(e Event) Alert {
	return Alert{Kind: e.Kind, Device: e.Device, Detail: e.Detail, Time: e.Time}
}

func (p *Policy) stateChange(e Event) []Alert {
	window := p.cfg.FlapWindow
	flips := append(p.flips[e.Device], e.Time)
	for len(flips) > 0 && e.Time.Sub(flips[0]) > window {
		flips = flips[1:]
	}
	p.flips[e.Device] = flips
	if _, muted := p.flapping[e.Device]; muted {
		p.flapping[e.Device] = e.Kind
		return nil
	}
	if len(flips) > p.cfg.FlapChanges {
		p.flapping[e.Device] = e.Kind
		return []Alert{{Kind: Flapping, Device: e.Device, Time: e.Time,
			Detail: fmt.Sprintf("%d changes in %s, now %s; muted until it is steady for %s", len(flips), window, e.Kind, window)}}
	}
	if p.state[e.Device] == e.Kind {
		return nil
	}
	p.state[e.Device] = e.Kind
	return []Alert{alertOf(e)}
}

// learn records an event of the quiet start for the summary.
func (p *Policy) learn(e Event) {
	st := p.startup[e.Device]
	if st == nil {
		st = &startupState{}
		p.startup[e.Device] = st
	}
	switch e.Kind {
	case Offline:
		st.offline = true
	case Online:
		st.offline = false
	case Problem:
		st.problems = e.Detail
	case Recovered:
		st.problems = ""
	}
}

// sweep returns what is due at now: the start's summary, a closed window,
// settled devices; and forgets old history so memory stays bounded.
func (p *Policy) sweep(now time.Time) []Alert {
	window := p.cfg.FlapWindow
	out := p.start(now)
	out = append(out, p.flush(now)...)
	for dev, kind := range p.flapping {
		flips := p.flips[dev]
		if len(flips) > 0 && now.Sub(flips[len(flips)-1]) < window {
			continue
		}
		delete(p.flapping, dev)
		p.state[dev] = kind
		out = append(out, Alert{Kind: Settled, Device: dev, Time: now, Detail: "steady for " + window.String() + ", now " + kind})
	}
	for dev, flips := range p.flips {
		if len(flips) == 0 || now.Sub(flips[len(flips)-1]) > window {
			if _, muted := p.flapping[dev]; !muted {
				delete(p.flips, dev)
			}
		}
	}
	for k, t := range p.recent {
		if now.Sub(t) > p.cfg.Repeat {
			delete(p.recent, k)
		}
	}
	for dev, until := range p.awayUntil {
		if now.After(until) {
			delete(p.awayUntil, dev)
		}
	}
	return out
}

// start sums up the start once it is over: Startup when no Pi was claimed
// online, else the Restart alert once every claimed Pi is back or
// restartBy has passed.
func (p *Policy) start(now time.Time) []Alert {
	if !p.inStartup() || now.Before(p.quietUntil) {
		return nil
	}
	var back, away int
	if p.rejoin != nil {
		back, away = p.rejoin.Rejoin()
	}
	if !p.rejoining {
		if back+away == 0 {
			p.startupDone = true
			out := p.startupSummary(now)
			p.startup = nil
			return out
		}
		p.rejoining = true
		p.learnPending() // events held since the quiet ended belong to the restart
	}
	if away > 0 && now.Before(p.restartBy) {
		return nil
	}
	out := p.restartSummary(now, back, away)
	p.startupDone = true
	p.startup = nil
	return out
}

// learnt lists what the quiet start learnt: devices offline and devices
// with problems, sorted, leaving out those in skip.
func (p *Policy) learnt(skip map[string]bool) (offline, problems []string) {
	for _, dev := range slices.Sorted(maps.Keys(p.startup)) {
		if skip[dev] {
			continue
		}
		st := p.startup[dev]
		if st.offline {
			offline = append(offline, dev)
		}
		if st.problems != "" {
			problems = append(problems, dev+" ("+fleet.ProblemsInWords(st.problems)+")")
		}
	}
	return offline, problems
}

// startupSummary is the Startup alert (none when there is nothing to say).
func (p *Policy) startupSummary(now time.Time) []Alert {
	offline, problems := p.learnt(nil)
	parts := learntParts(offline, problems)
	if len(parts) == 0 {
		return nil
	}
	return []Alert{{Kind: Startup, Time: now, Detail: strings.Join(parts, "; ")}}
}

func learntParts(offline, problems []string) []string {
	var parts []string
	if len(offline) > 0 {
		parts = append(parts, fmt.Sprintf("%s offline: %s", fleet.Thousands(len(offline)), names(offline, len(offline))))
	}
	if len(problems) > 0 {
		parts = append(parts, fmt.Sprintf("%s with problems: %s", fleet.Thousands(len(problems)), names(problems, len(problems))))
	}
	return parts
}

// restartSummary is the one alert of a restart: how many of the Pis
// claimed online came back, how many are still away (which are then taken
// as reported), and what else the quiet start learnt.
func (p *Policy) restartSummary(now time.Time, back, away int) []Alert {
	var awayIDs []string
	skip := map[string]bool{}
	if p.rejoin != nil && away > 0 {
		for _, d := range p.rejoin.List() {
			// Claimed online by a retained message and never heard live
			// since this hub started: online still, or taken as lost for
			// silence (fleet: awaiting).
			if !d.LastLive.IsZero() || !(d.Online() || d.Silent) {
				continue
			}
			awayIDs = append(awayIDs, d.ID)
			skip[d.ID] = true
			if !d.Online() {
				p.state[d.ID] = Offline
				continue
			}
			hb := 0
			if d.Status != nil {
				hb = d.Status.HeartbeatS
			}
			p.awayUntil[d.ID] = now.Add(wire.SilenceAfter(hb) + awayGrace)
		}
	}
	head := pis(back) + " reconnected after the hub restart"
	if away > 0 {
		head += "; " + fleet.Thousands(away) + " still away"
	}
	s := &Summary{Head: head, Count: back, Away: away, Devices: awayIDs}
	if away > 0 {
		s.Lines = append(s.Lines, "Still away: "+names(awayIDs, max(away, len(awayIDs))))
		if len(awayIDs) > MaxListed {
			s.addFile(Restart, "Still away ("+fleet.Thousands(len(awayIDs))+")", awayIDs)
		}
	}
	s.Lines = append(s.Lines, learntParts(p.learnt(skip))...)
	if s.File != nil {
		s.File.Content = head + "\n\n" + s.File.Content
	}
	return []Alert{{Kind: Restart, Time: now, Detail: head, Summary: s}}
}
