package slackbot

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/alerts"
	"github.com/pifleet/pifleet/hub/internal/alerts/alertstest"
	"github.com/pifleet/pifleet/hub/internal/fleet"
)

// The alert policy's own tests are in hub/internal/alerts; these render
// what it gives, as Slack gets it.

var t14 = time.Date(2026, 11, 25, 14, 2, 0, 0, time.UTC)

// policyFeed runs a fresh policy (the bot's defaults, its own clock) on
// the events, each arriving at its own time, sweeping every second and
// until the last event plus a minute. Devices in offline were reported
// offline an hour before. It returns what the policy gave after t14.
func policyFeed(events []alertstest.Ev, offline []string) []alerts.Alert {
	now := t14.Add(-time.Hour)
	p := alerts.New(alerts.Config{Now: func() time.Time { return now }})
	for _, d := range offline {
		p.Add(Alert{Kind: AlertOffline, Device: d, Detail: "lost"})
	}
	p.Sweep(t14.Add(-time.Hour + time.Minute))
	var out []alerts.Alert
	next := time.Duration(0)
	sweepTo := func(to time.Duration) {
		for ; next <= to; next += time.Second {
			out = append(out, p.Sweep(t14.Add(next))...)
		}
	}
	for _, e := range events {
		sweepTo(e.At)
		now = t14.Add(e.At)
		p.Add(Alert{Kind: e.Kind, Device: e.Device, Detail: e.Detail, Time: now})
	}
	sweepTo(events[len(events)-1].At + time.Minute)
	return out
}

func heads(as []alerts.Alert) string {
	var s []string
	for _, a := range as {
		s = append(s, a.Kind+" "+a.Device+a.Detail)
	}
	return strings.Join(s, "\n")
}

// The summaries as Slack gets them, from the policy itself.
func TestRenderSummariesGolden(t *testing.T) {
	cases := map[string][]alerts.Alert{
		"alert-burst-lost": policyFeed(append(append(alertstest.Evs(AlertOffline, "lost", alertstest.IDs("pi-", 0, 313), 3*time.Second, 10*time.Millisecond),
			alertstest.Evs(AlertOffline, "silent", alertstest.IDs("pi-", 313, 2), 4*time.Second, time.Millisecond)...),
			alertstest.Evs(AlertOnline, "online", alertstest.IDs("pi-", 0, 3), 5*time.Second, time.Millisecond)...), nil),
		"alert-burst-back": policyFeed(alertstest.Evs(AlertOnline, "online", alertstest.IDs("pi-", 0, 298), 3*time.Minute, 10*time.Millisecond), alertstest.IDs("pi-", 0, 298)),
		"alert-burst-blip": policyFeed(append(alertstest.Evs(AlertOffline, "lost", alertstest.IDs("pi-", 0, 8), 0, time.Millisecond),
			alertstest.Evs(AlertOnline, "online", alertstest.IDs("pi-", 0, 8), time.Second, time.Millisecond)...), nil),
		"alert-burst-problem": policyFeed(append(alertstest.Evs(AlertProblem, "under_voltage", alertstest.IDs("pi-", 0, 30), 0, time.Millisecond),
			alertstest.Evs(AlertProblem, "hot, under_voltage", alertstest.IDs("pi-", 30, 3), 0, time.Millisecond)...), nil),
		"alert-burst-address": policyFeed(alertstest.Evs(AlertAddress, "192.0.2.9", alertstest.IDs("pi-", 0, 7), 0, time.Millisecond), nil),
	}
	// The restart: 9,874 back, 126 away.
	var devs []fleet.Device
	for _, id := range alertstest.IDs("pi-", 0, 126) {
		devs = append(devs, fleet.Device{ID: id, State: "lost", Silent: true})
	}
	at14 := func() time.Time { return t14 }
	p := alerts.New(alerts.Config{Now: at14, Rejoiner: &alertstest.Rejoiner{Back: 9874, Away: 126, Devices: devs}})
	p.Begin(t14)
	p.Add(Alert{Kind: AlertOffline, Device: "pi-old", Detail: "lost", Time: t14})
	p.Add(Alert{Kind: AlertProblem, Device: "pi-hot", Detail: "hot", Time: t14})
	cases["alert-restart"] = p.Sweep(t14.Add(90 * time.Second))
	p = alerts.New(alerts.Config{Now: at14, Rejoiner: &alertstest.Rejoiner{Back: 2}})
	p.Begin(t14)
	cases["alert-restart-all-back"] = p.Sweep(t14.Add(20 * time.Second))

	for name, out := range cases {
		t.Run(name, func(t *testing.T) {
			if len(out) != 1 || out[0].Summary == nil {
				t.Fatalf("posted %s, want one summary", heads(out))
			}
			m := renderAlert(out[0])
			checkLimits(t, m)
			checkGolden(t, name, m)
		})
	}
}

// However large the burst and however long the ids and details, a
// summary is a few blocks within Slack's limits (50 blocks, 12,000
// characters inline), with every Pi in its file.
func TestSummaryWithinSlackLimits(t *testing.T) {
	long := strings.Repeat("x", 58)
	var events []alertstest.Ev
	for i := range 10000 {
		events = append(events, alertstest.Ev{Kind: AlertProblem, Device: fmt.Sprintf("%s%06d", long, i), Detail: strings.Repeat("under_voltage, ", 10) + "hot"})
	}
	out := policyFeed(events, nil)
	if len(out) != 1 {
		t.Fatalf("posted %d messages", len(out))
	}
	m := renderAlert(out[0])
	checkLimits(t, m)
	size := len(m.Text)
	for _, b := range m.Blocks {
		size += len(fmt.Sprint(b))
	}
	if len(m.Blocks) > 10 || size > maxInline {
		t.Errorf("%d blocks, %d characters", len(m.Blocks), size)
	}
	if len(m.Files) != 1 || strings.Count(m.Files[0].Content, "\n"+long) != 10000 {
		t.Errorf("the file does not list the 10,000 Pis")
	}
}
