package alerts

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/alerts/alertstest"
	"github.com/pifleet/pifleet/hub/internal/fleet"
)

// burstConfig is the policy's configuration with its defaults spelled
// out, so the numbers in the tests are in sight.
func burstConfig() Config {
	return Config{FlapWindow: 10 * time.Minute, FlapChanges: 4, Repeat: 30 * time.Minute,
		Burst: 5, BurstWindow: 5 * time.Second, QuietStart: 15 * time.Second, RestartWait: 90 * time.Second}
}

var t14 = time.Date(2026, 11, 25, 14, 2, 0, 0, time.UTC)

func heads(ns []Alert) string {
	var s []string
	for _, n := range ns {
		if n.Summary != nil {
			s = append(s, n.Kind+": "+n.Summary.Head)
		} else {
			s = append(s, n.Kind+" "+n.Device)
		}
	}
	return strings.Join(s, "\n")
}

// feed adds the events in order (arriving at their own time) and sweeps
// every second of the way and once at until; it returns all that was
// posted.
func feed(a *Policy, events []alertstest.Ev, until time.Duration) []Alert {
	var out []Alert
	next := time.Duration(0)
	for _, e := range events {
		for ; next <= e.At; next += time.Second {
			out = append(out, a.sweep(t14.Add(next))...)
		}
		a.add(Event{Kind: e.Kind, Device: e.Device, Detail: e.Detail, Time: t14.Add(e.At)}, t14.Add(e.At))
	}
	for ; next <= until; next += time.Second {
		out = append(out, a.sweep(t14.Add(next))...)
	}
	return out
}

func TestPolicyBursts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		offline []string // known offline before (posted earlier)
		events  []alertstest.Ev
		until   time.Duration
		want    string // heads(posted)
		lines   []string
	}{
		{name: "five in the window keep their own messages, in order of arrival",
			events: []alertstest.Ev{
				{Kind: Offline, Device: "pi-5", Detail: "lost", At: 0}, {Kind: Offline, Device: "pi-3", Detail: "lost", At: 100 * time.Millisecond},
				{Kind: Offline, Device: "pi-1", Detail: "lost", At: time.Second}, {Kind: Offline, Device: "pi-4", Detail: "lost", At: 2 * time.Second},
				{Kind: Offline, Device: "pi-2", Detail: "lost", At: 3 * time.Second}, {Kind: Offline, Device: "pi-2", Detail: "lost", At: 3 * time.Second}, // repeat: muted
			},
			until: 10 * time.Second,
			want:  "offline pi-5\noffline pi-3\noffline pi-1\noffline pi-4\noffline pi-2"},
		{name: "six are a burst: one message",
			events: alertstest.Evs(Offline, "lost", alertstest.IDs("pi-", 0, 6), 0, time.Millisecond),
			until:  20 * time.Second,
			want:   "burst-lost: 6 Pis lost",
			lines:  []string{"pi-0000, pi-0001, pi-0002, pi-0003, pi-0004, pi-0005"}},
		{name: "312 wills spread over 12 s are one message",
			events: alertstest.Evs(Offline, "lost", alertstest.IDs("pi-", 0, 312), 0, 40*time.Millisecond),
			until:  time.Minute,
			want:   "burst-lost: 312 Pis lost",
			lines:  []string{strings.Join(alertstest.IDs("pi-", 0, 20), ", ") + " and 292 more"}},
		{name: "some came back within the burst",
			events: append(alertstest.Evs(Offline, "lost", alertstest.IDs("pi-", 0, 332), 0, time.Millisecond),
				alertstest.Evs(Online, "online", alertstest.IDs("pi-", 0, 20), 2*time.Second, time.Millisecond)...),
			until: time.Minute,
			want:  "burst-lost: 312 Pis lost",
			lines: []string{strings.Join(alertstest.IDs("pi-", 20, 20), ", ") + " and 292 more",
				"20 Pis went offline and came back: " + strings.Join(alertstest.IDs("pi-", 0, 20), ", ")}},
		{name: "Pis known offline are not lost again",
			offline: alertstest.IDs("pi-", 0, 10),
			events:  alertstest.Evs(Offline, "lost", alertstest.IDs("pi-", 0, 100), 0, time.Millisecond),
			until:   time.Minute,
			want:    "burst-lost: 90 Pis lost"},
		{name: "back online",
			offline: alertstest.IDs("pi-", 0, 298),
			events:  alertstest.Evs(Online, "online", alertstest.IDs("pi-", 0, 298), 0, 10*time.Millisecond),
			until:   time.Minute,
			want:    "burst-back: 298 Pis back online"},
		{name: "how they went",
			events: append(append(alertstest.Evs(Offline, "lost", alertstest.IDs("pi-", 0, 298), 0, time.Millisecond),
				alertstest.Evs(Offline, "silent", alertstest.IDs("pi-", 298, 10), time.Second, time.Millisecond)...),
				alertstest.Evs(Offline, "offline", alertstest.IDs("pi-", 308, 4), time.Second, time.Millisecond)...),
			until: time.Minute,
			want:  "burst-lost: 312 Pis lost",
			lines: []string{strings.Join(alertstest.IDs("pi-", 0, 20), ", ") + " and 292 more", "298 connection lost · 10 went silent · 4 shut down"}},
		{name: "a calm kind next to a burst keeps its messages",
			events: append(alertstest.Evs(Offline, "lost", alertstest.IDs("pi-", 0, 100), 0, time.Millisecond),
				alertstest.Ev{Kind: Problem, Device: "pi-0500", Detail: "under_voltage", At: time.Second}, alertstest.Ev{Kind: Address, Device: "pi-0501", Detail: "192.0.2.1", At: time.Second}),
			until: time.Minute,
			want:  "problem pi-0500\naddress pi-0501\nburst-lost: 100 Pis lost"},
		{name: "health problems",
			events: append(alertstest.Evs(Problem, "under_voltage", alertstest.IDs("pi-", 0, 400), 0, time.Millisecond),
				alertstest.Evs(Problem, "hot", alertstest.IDs("pi-", 400, 12), 0, time.Millisecond)...),
			until: time.Minute,
			want:  "burst-problem: 412 Pis with a health problem",
			lines: []string{strings.Join(alertstest.IDs("pi-", 0, 20), ", ") + " and 392 more", "400 under-voltage · 12 running hot"}},
		{name: "went and came back, nothing else",
			events: append(alertstest.Evs(Offline, "lost", alertstest.IDs("pi-", 0, 500), 0, time.Millisecond),
				alertstest.Evs(Online, "online", alertstest.IDs("pi-", 0, 500), time.Second, time.Millisecond)...),
			until: time.Minute,
			want:  "burst-blip: 500 Pis went offline and came back"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := New(burstConfig())
			for _, d := range tc.offline {
				a.state[d] = Offline
			}
			out := feed(a, tc.events, tc.until)
			if got := heads(out); got != tc.want {
				t.Errorf("posted:\n%s\nwant:\n%s", got, tc.want)
			}
			if tc.lines != nil && len(out) == 1 && out[0].Summary != nil {
				if got := strings.Join(out[0].Summary.Lines, "\n"); got != strings.Join(tc.lines, "\n") {
					t.Errorf("lines:\n%s\nwant:\n%s", got, strings.Join(tc.lines, "\n"))
				}
			}
			if a.pending != nil {
				t.Errorf("a window is still open")
			}
			if got, want := a.summarised.Load()+a.suppressed.Load()+uint64(len(out)), uint64(len(tc.events)); got < want {
				t.Errorf("%d events accounted for, want %d", got, want)
			}
		})
	}
}

// A calm alert waits one window; a burst waits for a pause of one window.
func TestPolicyBurstTiming(t *testing.T) {
	a := New(burstConfig())
	a.add(Event{Kind: Offline, Device: "pi-1", Detail: "lost", Time: t14}, t14)
	if out := a.sweep(t14.Add(4999 * time.Millisecond)); len(out) != 0 {
		t.Fatalf("posted before the window ended: %s", heads(out))
	}
	if out := a.sweep(t14.Add(5 * time.Second)); heads(out) != "offline pi-1" {
		t.Fatalf("after the window: %q", heads(out))
	}

	// A storm that never pauses: ten Pis a second for three minutes is a
	// message a minute, and every Pi is counted once.
	a = New(burstConfig())
	all := alertstest.IDs("pi-", 0, 1800)
	out := feed(a, alertstest.Evs(Offline, "lost", all, time.Hour, 100*time.Millisecond), time.Hour+5*time.Minute)
	total := 0
	for _, n := range out {
		var k int
		if _, err := fmt.Sscanf(strings.ReplaceAll(n.Summary.Head, ",", ""), "%d Pis lost", &k); err != nil || n.Kind != BurstLost {
			t.Fatalf("posted %s", heads(out))
		}
		total += k
	}
	if len(out) < 3 || len(out) > 4 || total != 1800 {
		t.Errorf("posted %d summaries of %d Pis, want 3-4 of 1800:\n%s", len(out), total, heads(out))
	}
}

// The state after a burst is as if each event had been posted.
func TestPolicyAfterABurst(t *testing.T) {
	a := New(burstConfig())
	feed(a, alertstest.Evs(Offline, "lost", alertstest.IDs("pi-", 0, 50), 0, time.Millisecond), 20*time.Second)
	// offline → lost of the same Pi: muted; its return: posted on its own.
	out := feed(a, []alertstest.Ev{{Kind: Offline, Device: "pi-0001", Detail: "offline", At: 30 * time.Second}, {Kind: Online, Device: "pi-0002", Detail: "online", At: 31 * time.Second}}, 50*time.Second)
	if got := heads(out); got != "online pi-0002" {
		t.Errorf("after the burst: %q, want only pi-0002 back", got)
	}
	if got := out[0]; got.Detail != "online" || got.Summary != nil {
		t.Errorf("per-device alert after a burst = %+v, want pi-0002's own event", got)
	}
}

// The intake never drops and its memory follows the number of Pis, not of
// events: 10,000 Pis flapping 50 times each within one window.
func TestAlertIntakeNeverDropsAndStaysSmall(t *testing.T) {
	a := New(burstConfig())
	devs := alertstest.IDs("pi-", 0, 10000)
	now := t14
	for round := range 50 {
		kind := Offline
		if round%2 == 1 {
			kind = Online
		}
		for _, d := range devs {
			a.enqueueAt(Event{Kind: kind, Device: d, Detail: kind, Time: now}, now)
		}
		now = now.Add(10 * time.Millisecond)
	}
	p := a.pending
	if n := len(p.groups[groupState].devs); n != 10000 || len(p.events) != 0 {
		t.Errorf("window holds %d Pis and %d events, want 10000 and 0", n, len(p.events))
	}
	out := a.sweep(now.Add(6 * time.Second))
	if got := heads(out); got != "burst-blip: 10,000 Pis went offline and came back" {
		t.Errorf("posted %q", got)
	}
	if st := a.Stats(); st.Summarised != 500000 {
		t.Errorf("summarised %d, want 500000", st.Summarised)
	}
}

// enqueueAt is Add at a given time (Add uses the policy's clock).
func (a *Policy) enqueueAt(al Event, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.add(al, now)
}

// Add from many goroutines while Sweep runs: no race, nothing
// lost (run under -race).
func TestAlertIntakeConcurrent(t *testing.T) {
	var mu sync.Mutex
	now := t14
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	cfg := burstConfig()
	cfg.Now = clock
	a := New(cfg)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, d := range alertstest.IDs(fmt.Sprintf("g%d-", g), 0, 500) {
				a.Add(Event{Kind: Offline, Device: d, Detail: "lost"})
			}
		}()
	}
	var out []Alert
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			out = append(out, a.Sweep(clock())...)
		}
	}()
	wg.Wait()
	<-done
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	out = append(out, a.Sweep(clock())...)
	if got := heads(out); got != "burst-lost: 4,000 Pis lost" {
		t.Errorf("posted %q", got)
	}
}

func TestRestartSummary(t *testing.T) {
	sec := func(s float64) time.Time { return t14.Add(time.Duration(s * float64(time.Second))) }
	newA := func(r *alertstest.Rejoiner) *Policy {
		a := New(burstConfig())
		if r != nil {
			a.rejoin = r
		}
		a.Begin(t14)
		return a
	}

	t.Run("a fresh hub says Hub started as before", func(t *testing.T) {
		a := newA(&alertstest.Rejoiner{})
		a.add(Event{Kind: Offline, Device: "pi-09", Detail: "lost", Time: sec(1)}, sec(1))
		out := a.sweep(sec(15))
		if len(out) != 1 || out[0].Kind != Startup || out[0].Detail != "1 offline: pi-09" || out[0].Summary != nil {
			t.Fatalf("start = %+v", out)
		}
	})

	t.Run("everyone back before the limit", func(t *testing.T) {
		r := &alertstest.Rejoiner{Back: 900, Away: 100}
		a := newA(r)
		a.add(Event{Kind: Offline, Device: "pi-x", Detail: "lost", Time: sec(17)}, sec(17))
		for s := 15.0; s < 20; s++ {
			if out := a.sweep(sec(s)); len(out) != 0 {
				t.Fatalf("posted at %vs while 100 are away: %s", s, heads(out))
			}
		}
		r.Back, r.Away = 1000, 0
		out := a.sweep(sec(20))
		if heads(out) != "restart: 1,000 Pis reconnected after the hub restart" {
			t.Fatalf("posted %q", heads(out))
		}
		if got := strings.Join(out[0].Summary.Lines, "\n"); got != "1 offline: pi-x" {
			t.Errorf("lines %q", got)
		}
	})

	t.Run("some stay away: one message at the limit, and their loss is not posted again", func(t *testing.T) {
		var devs []fleet.Device
		for i, id := range alertstest.IDs("pi-", 0, 200) {
			d := fleet.Device{ID: id, State: "online", LastLive: t14.Add(time.Second)} // back
			if i < 126 {
				d.LastLive = time.Time{}
				if i%2 == 0 {
					d.State, d.Silent = "lost", true // swept already
				}
			}
			devs = append(devs, d)
		}
		r := &alertstest.Rejoiner{Back: 9874, Away: 126, Devices: devs}
		a := newA(r)
		// Learnt while waiting: the fleet's sweep takes the silent as lost,
		// and an unrelated Pi dies by its will.
		for i := 0; i < 126; i += 2 {
			a.add(Event{Kind: Offline, Device: devs[i].ID, Detail: detailSilent, Time: sec(46)}, sec(46))
		}
		a.add(Event{Kind: Offline, Device: "pi-zz", Detail: "lost", Time: sec(50)}, sec(50))
		if out := feedSweeps(a, 0, 89); len(out) != 0 {
			t.Fatalf("posted before the limit: %s", heads(out))
		}
		out := a.sweep(sec(90))
		if heads(out) != "restart: 9,874 Pis reconnected after the hub restart; 126 still away" {
			t.Fatalf("posted %q", heads(out))
		}
		want := "Still away: " + strings.Join(alertstest.IDs("pi-", 0, 20), ", ") + " and 106 more\n1 offline: pi-zz"
		if got := strings.Join(out[0].Summary.Lines, "\n"); got != want {
			t.Errorf("lines:\n%s\nwant:\n%s", got, want)
		}
		if f := out[0].Summary.File; f == nil || strings.Count(f.Content, "\npi-") != 126 {
			t.Errorf("file %+v, want the 126 away", f)
		}
		// The away Pi still claimed online is swept later: muted. After its
		// deadline (silence limit + grace), a loss is news again.
		a.add(Event{Kind: Offline, Device: "pi-0001", Detail: detailSilent, Time: sec(130)}, sec(130))
		if out := feedSweeps(a, 91, 200); len(out) != 0 {
			t.Errorf("the loss of an away Pi was posted again: %s", heads(out))
		}
		// Its return is news, and so is its next loss.
		a.add(Event{Kind: Online, Device: "pi-0001", Detail: "online", Time: sec(300)}, sec(300))
		a.add(Event{Kind: Online, Device: "pi-0000", Detail: "online", Time: sec(300)}, sec(300))
		if out := feedSweeps(a, 300, 320); heads(out) != "online pi-0001\nonline pi-0000" {
			t.Errorf("returns: %q", heads(out))
		}
		a.add(Event{Kind: Offline, Device: "pi-0003", Detail: detailSilent, Time: sec(1000)}, sec(1000))
		if out := feedSweeps(a, 1000, 1010); heads(out) != "offline pi-0003" {
			t.Errorf("a loss long after the restart: %q", heads(out))
		}
	})

	t.Run("events held before the restart was known are learnt", func(t *testing.T) {
		r := &alertstest.Rejoiner{Back: 10, Away: 5}
		for _, id := range alertstest.IDs("pi-a", 0, 5) {
			r.Devices = append(r.Devices, fleet.Device{ID: id, State: "online"})
		}
		a := newA(r)
		// After the quiet start, before a sweep found it was a restart.
		for _, d := range alertstest.IDs("pi-", 0, 40) {
			a.add(Event{Kind: Offline, Device: d, Detail: "lost", Time: sec(16)}, sec(16))
		}
		a.add(Event{Kind: Problem, Device: "pi-p", Detail: "hot", Time: sec(16)}, sec(16))
		if out := feedSweeps(a, 16, 89); len(out) != 0 {
			t.Fatalf("posted %s", heads(out))
		}
		out := a.sweep(sec(90))
		if heads(out) != "restart: 10 Pis reconnected after the hub restart; 5 still away" {
			t.Fatalf("posted %q", heads(out))
		}
		if got := out[0].Summary.Lines; len(got) != 3 || got[0] != "Still away: "+strings.Join(alertstest.IDs("pi-a", 0, 5), ", ") {
			t.Errorf("lines %q", got)
		}
		if got := out[0].Summary.Lines[1:]; len(got) != 2 || !strings.HasPrefix(got[0], "40 offline: pi-0000,") || got[1] != "1 with problems: pi-p (running hot)" {
			t.Errorf("lines %q", got)
		}
	})
}

func feedSweeps(a *Policy, from, to int) []Alert {
	var out []Alert
	for s := from; s <= to; s++ {
		out = append(out, a.sweep(t14.Add(time.Duration(s)*time.Second))...)
	}
	return out
}

func TestPis(t *testing.T) {
	if pis(1) != "1 Pi" || pis(2000) != "2,000 Pis" {
		t.Errorf("pis: %q %q", pis(1), pis(2000))
	}
}
