package alerts

import (
	"strings"
	"testing"
	"time"
)

func TestPolicyRules(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC)
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	type step struct {
		kind, device, detail string
		min                  int
		want                 string // kinds posted, comma-separated; "" = muted
	}
	for _, tc := range []struct {
		name  string
		steps []step
		sweep int    // minute of a sweep after the steps (0: none)
		swept string // kinds the sweep posts
	}{
		{name: "offline then back", steps: []step{
			{Offline, "pi-1", "lost", 0, "offline"},
			{Online, "pi-1", "online", 1, "online"},
		}},
		{name: "repeated state is muted", steps: []step{
			{Offline, "pi-1", "lost", 0, "offline"},
			{Offline, "pi-1", "offline", 1, ""},
			{Online, "pi-1", "", 2, "online"},
			{Online, "pi-1", "", 3, ""},
		}},
		{name: "devices are independent", steps: []step{
			{Offline, "pi-1", "", 0, "offline"},
			{Offline, "pi-2", "", 0, "offline"},
		}},
		{name: "flapping gets one message, then settles", steps: []step{
			{Offline, "pi-1", "", 0, "offline"},
			{Online, "pi-1", "", 1, "online"},
			{Offline, "pi-1", "", 2, "offline"},
			{Online, "pi-1", "", 3, "online"},
			{Offline, "pi-1", "", 4, "flapping"},
			{Online, "pi-1", "", 5, ""},
			{Offline, "pi-1", "", 6, ""},
			{Online, "pi-1", "", 7, ""},
		}, sweep: 30, swept: "settled"},
		{name: "still flapping at sweep", steps: []step{
			{Offline, "pi-1", "", 0, "offline"}, {Online, "pi-1", "", 1, "online"},
			{Offline, "pi-1", "", 2, "offline"}, {Online, "pi-1", "", 3, "online"},
			{Offline, "pi-1", "", 4, "flapping"},
		}, sweep: 8, swept: ""},
		{name: "slow changes are not flapping", steps: []step{
			{Offline, "pi-1", "", 0, "offline"}, {Online, "pi-1", "", 11, "online"},
			{Offline, "pi-1", "", 22, "offline"}, {Online, "pi-1", "", 33, "online"},
			{Offline, "pi-1", "", 44, "offline"}, {Online, "pi-1", "", 55, "online"},
		}},
		{name: "same problem muted for the repeat window", steps: []step{
			{Problem, "pi-1", "under_voltage", 0, "problem"},
			{Problem, "pi-1", "under_voltage", 10, ""},
			{Problem, "pi-1", "hot", 11, "problem"},
			{Recovered, "pi-1", "under_voltage", 12, "recovered"},
			{Problem, "pi-1", "under_voltage", 31, "problem"},
		}},
		{name: "address changes", steps: []step{
			{Address, "pi-1", "192.0.2.7", 0, "address"},
			{Address, "pi-1", "192.0.2.7", 1, ""},
			{Address, "pi-1", "192.0.2.8", 2, "address"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := New(Config{FlapWindow: 10 * time.Minute, FlapChanges: 4, Repeat: 30 * time.Minute})
			for i, s := range tc.steps {
				out := a.decide(Event{Kind: s.kind, Device: s.device, Detail: s.detail, Time: at(s.min)})
				if got := kinds(out); got != s.want {
					t.Errorf("step %d (%s %s at +%dm): posted %q, want %q", i, s.kind, s.device, s.min, got, s.want)
				}
			}
			if tc.sweep > 0 {
				if got := kinds(a.sweep(at(tc.sweep))); got != tc.swept {
					t.Errorf("sweep at +%dm posted %q, want %q", tc.sweep, got, tc.swept)
				}
			}
		})
	}
}

func kinds(as []Alert) string {
	var k []string
	for _, a := range as {
		k = append(k, a.Kind)
	}
	return strings.Join(k, ",")
}

func TestPolicySettledStateAndMemory(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC)
	a := New(Config{FlapWindow: time.Minute, FlapChanges: 2, Repeat: time.Minute})
	for i, k := range []string{Offline, Online, Offline, Online} {
		a.decide(Event{Kind: k, Device: "pi-1", Time: t0.Add(time.Duration(i) * time.Second)})
	}
	out := a.sweep(t0.Add(5 * time.Minute))
	if len(out) != 1 || !strings.Contains(out[0].Detail, "now online") {
		t.Fatalf("sweep = %+v, want one settled message saying it is online", out)
	}
	// Settled online: a repeat "online" is muted, "offline" is news.
	if got := kinds(a.decide(Event{Kind: Online, Device: "pi-1", Time: t0.Add(6 * time.Minute)})); got != "" {
		t.Errorf("online after settling online: posted %q, want nothing", got)
	}
	a.decide(Event{Kind: Problem, Device: "pi-1", Detail: "hot", Time: t0})
	a.sweep(t0.Add(time.Hour))
	if len(a.recent) != 0 || len(a.flips) != 0 || len(a.flapping) != 0 {
		t.Errorf("old history kept: recent=%d flips=%d flapping=%d", len(a.recent), len(a.flips), len(a.flapping))
	}
}

func TestQuietStartIsSummarisedOnce(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC)
	a := New(Config{FlapWindow: 10 * time.Minute, FlapChanges: 4, Repeat: 30 * time.Minute})
	a.quietUntil = t0.Add(15 * time.Second)
	sec := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	for _, al := range []Event{
		{Kind: Offline, Device: "pi-09", Detail: "lost", Time: sec(1)},
		{Kind: Offline, Device: "pi-03", Detail: "lost", Time: sec(1)},
		{Kind: Problem, Device: "pi-04", Detail: "under_voltage", Time: sec(2)},
		{Kind: Offline, Device: "pi-05", Time: sec(3)},
		{Kind: Online, Device: "pi-05", Time: sec(4)}, // came back during the quiet start
		{Kind: Address, Device: "pi-06", Detail: "192.0.2.6", Time: sec(5)},
	} {
		if out := a.decide(al); len(out) != 0 {
			t.Errorf("%+v during the quiet start posted %v", al, out)
		}
	}
	if out := a.sweep(sec(10)); len(out) != 0 {
		t.Errorf("summary before the quiet start ended: %v", out)
	}
	out := a.sweep(sec(16))
	want := "2 offline: pi-03, pi-09; 1 with problems: pi-04 (under-voltage)"
	if len(out) != 1 || out[0].Kind != Startup || out[0].Detail != want {
		t.Fatalf("summary = %+v, want one %q", out, want)
	}
	if out := a.sweep(sec(17)); len(out) != 0 {
		t.Errorf("a second summary: %v", out)
	}
	// What was learnt counts: pi-09 is known offline, so its return is news
	// and a repeat of offline is not.
	if got := kinds(a.decide(Event{Kind: Offline, Device: "pi-09", Time: sec(20)})); got != "" {
		t.Errorf("repeat offline after start: %q, want muted", got)
	}
	if got := kinds(a.decide(Event{Kind: Online, Device: "pi-09", Time: sec(21)})); got != "online" {
		t.Errorf("back online after start: %q, want online", got)
	}

	calm := New(Config{FlapWindow: time.Minute, FlapChanges: 4, Repeat: time.Minute})
	calm.quietUntil = t0
	if out := calm.sweep(sec(1)); len(out) != 0 {
		t.Errorf("a summary of nothing: %v", out)
	}
}
