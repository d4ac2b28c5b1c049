package slackbot

import (
	"context"
	"fmt"
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

func (a *alerter) run(ctx context.Context, post func(context.Context, Alert) error) {
	tick := time.NewTicker(max(a.window/10, 50*time.Millisecond))
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

// sweep ends the muting of devices that have been steady for the window,
// and forgets old history so memory stays bounded.
func (a *alerter) sweep(now time.Time) []Alert {
	var out []Alert
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
