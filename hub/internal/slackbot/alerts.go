package slackbot

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// alerter turns the fleet's events into alert messages: one message per
// event, with repeats muted and flapping devices summarised.
//
//   - offline/online: a repeat of the device's last posted state is muted
//     (the fleet already keeps quiet about a device's first "online"). A
//     device that changes
//     state more than FlapChanges times within FlapWindow gets one
//     "flapping" message and is muted until it has been steady for
//     FlapWindow, when one "settled" message gives its state.
//   - problem/recovered/address: the same device, kind and detail within AlertRepeat
//     is muted.
//   - for AlertQuietStart after the bot starts, nothing is posted: the hub
//     is learning the fleet from the broker's retained messages, and every
//     offline device and every problem would otherwise be announced at each
//     restart. One "hub started" message then lists the devices that are
//     offline or have problems.
//
// decide and sweep are pure (time comes in), so the rules are table-tested.
type alerter struct {
	window  time.Duration
	changes int
	repeat  time.Duration
	stats   *counters

	queue chan Alert

	flips    map[string][]time.Time // device → recent state changes
	flapping map[string]string      // device → latest state while muted
	state    map[string]string      // device → last posted state
	recent   map[string]time.Time   // device/kind/detail → last posted

	quiet       time.Duration
	quietUntil  time.Time                // set by run; zero: no quiet start
	startup     map[string]*startupState // device → what was learnt while quiet
	startupDone bool
}

type startupState struct {
	offline  bool
	problems string
}

const alertQueue = 256

func newAlerter(cfg Config, stats *counters) *alerter {
	return &alerter{
		window:   cfg.FlapWindow,
		changes:  cfg.FlapChanges,
		repeat:   cfg.AlertRepeat,
		stats:    stats,
		queue:    make(chan Alert, alertQueue),
		flips:    map[string][]time.Time{},
		flapping: map[string]string{},
		state:    map[string]string{},
		recent:   map[string]time.Time{},
		quiet:    cfg.AlertQuietStart,
		startup:  map[string]*startupState{},
	}
}

// enqueue is the AlertSource callback: it never blocks the fleet.
func (a *alerter) enqueue(al Alert) {
	if al.Time.IsZero() {
		al.Time = timeNow()
	}
	select {
	case a.queue <- al:
	default:
		a.stats.alertsDropped.Add(1)
	}
}

// begin starts the quiet start. It is called before the alerter subscribes,
// so every event that arrives is judged against a window already set.
func (a *alerter) begin(now time.Time) {
	a.quietUntil = now.Add(a.quiet)
}

func (a *alerter) run(ctx context.Context, post func(context.Context, Alert) error) {
	tick := time.NewTicker(max(min(a.window/10, a.quiet/3, 5*time.Second), 20*time.Millisecond))
	defer tick.Stop()
	send := func(out []Alert) {
		for _, al := range out {
			if err := post(ctx, al); err != nil {
				if ctx.Err() == nil {
					a.stats.alertsDropped.Add(1)
				}
				continue
			}
			a.stats.alertsPosted.Add(1)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case al := <-a.queue:
			out := a.decide(al)
			if len(out) == 0 {
				a.stats.alertsSuppressed.Add(1)
			}
			send(out)
		case now := <-tick.C:
			send(a.sweep(now))
		}
	}
}

// decide returns the messages one event deserves (none when muted).
func (a *alerter) decide(al Alert) []Alert {
	out := a.rules(al)
	if !a.quietUntil.IsZero() && al.Time.Before(a.quietUntil) {
		a.learn(al)
		return nil
	}
	return out
}

func (a *alerter) rules(al Alert) []Alert {
	switch al.Kind {
	case AlertOffline, AlertOnline:
		return a.stateChange(al)
	}
	key := al.Device + "\x00" + al.Kind + "\x00" + al.Detail
	if last, ok := a.recent[key]; ok && al.Time.Sub(last) < a.repeat {
		return nil
	}
	a.recent[key] = al.Time
	return []Alert{al}
}

func (a *alerter) stateChange(al Alert) []Alert {
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
		return []Alert{{Kind: alertFlapping, Device: al.Device, Time: al.Time,
			Detail: fmt.Sprintf("%d changes in %s, now %s; muted until it is steady for %s", len(flips), a.window, al.Kind, a.window)}}
	}
	if a.state[al.Device] == al.Kind {
		return nil
	}
	a.state[al.Device] = al.Kind
	return []Alert{al}
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

// maxStartupNames bounds the device lists of the "hub started" message.
const maxStartupNames = 20

// summary is the "hub started" message, once the quiet start is over.
func (a *alerter) summary(now time.Time) []Alert {
	if a.startupDone || a.quietUntil.IsZero() || now.Before(a.quietUntil) {
		return nil
	}
	a.startupDone = true
	var offline, problems []string
	for _, dev := range slices.Sorted(maps.Keys(a.startup)) {
		st := a.startup[dev]
		if st.offline {
			offline = append(offline, dev)
		}
		if st.problems != "" {
			problems = append(problems, dev+" ("+st.problems+")")
		}
	}
	a.startup = nil
	var parts []string
	if len(offline) > 0 {
		parts = append(parts, fmt.Sprintf("%d offline: %s", len(offline), names(offline)))
	}
	if len(problems) > 0 {
		parts = append(parts, fmt.Sprintf("%d with problems: %s", len(problems), names(problems)))
	}
	if len(parts) == 0 {
		return nil
	}
	return []Alert{{Kind: alertStartup, Time: now, Detail: strings.Join(parts, "; ")}}
}

func names(xs []string) string {
	if len(xs) > maxStartupNames {
		return strings.Join(xs[:maxStartupNames], ", ") + fmt.Sprintf(" and %d more", len(xs)-maxStartupNames)
	}
	return strings.Join(xs, ", ")
}

// sweep ends the muting of devices that have been steady for the window,
// and forgets old history so memory stays bounded.
func (a *alerter) sweep(now time.Time) []Alert {
	out := a.summary(now)
	for dev, kind := range a.flapping {
		flips := a.flips[dev]
		if len(flips) > 0 && now.Sub(flips[len(flips)-1]) < a.window {
			continue
		}
		delete(a.flapping, dev)
		a.state[dev] = kind
		out = append(out, Alert{Kind: alertSettled, Device: dev, Time: now, Detail: "steady for " + a.window.String() + ", now " + kind})
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
	return out
}

func (b *Bot) postAlert(ctx context.Context, al Alert) error {
	_, err := b.post(ctx, b.cfg.AlertChannel, "", renderAlert(al))
	if err != nil {
		b.log.Warn("slack: alert not posted", "device", al.Device, "kind", al.Kind, "err", err)
	}
	return err
}
