package slackbot

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/fleet"
)

// burstConfig is the alerter's configuration with the defaults the bot
// uses (New fills them in; newAlerter is given them directly here).
func burstConfig() Config {
	return Config{FlapWindow: 10 * time.Minute, FlapChanges: 4, AlertRepeat: 30 * time.Minute,
		AlertBurst: 5, AlertBurstWindow: 5 * time.Second, AlertQuietStart: 15 * time.Second, AlertRestartWait: 90 * time.Second}
}

var t14 = time.Date(2026, 11, 25, 14, 2, 0, 0, time.UTC)

func ids(prefix string, from, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%04d", prefix, from+i)
	}
	return out
}

// ev is one event at an offset from t14.
type ev struct {
	kind, device, detail string
	at                   time.Duration
}

func evs(kind, detail string, devices []string, start, step time.Duration) []ev {
	out := make([]ev, len(devices))
	for i, d := range devices {
		out[i] = ev{kind, d, detail, start + time.Duration(i)*step}
	}
	return out
}

func heads(ns []notice) string {
	var s []string
	for _, n := range ns {
		if n.sum != nil {
			s = append(s, n.Kind+": "+n.sum.head)
		} else {
			s = append(s, n.Kind+" "+n.Device)
		}
	}
	return strings.Join(s, "\n")
}

// feed adds the events in order (arriving at their own time) and sweeps
// every second of the way and once at until; it returns all that was
// posted.
func feed(a *alerter, events []ev, until time.Duration) []notice {
	var out []notice
	next := time.Duration(0)
	for _, e := range events {
		for ; next <= e.at; next += time.Second {
			out = append(out, a.sweep(t14.Add(next))...)
		}
		a.add(Alert{Kind: e.kind, Device: e.device, Detail: e.detail, Time: t14.Add(e.at)}, t14.Add(e.at))
	}
	for ; next <= until; next += time.Second {
		out = append(out, a.sweep(t14.Add(next))...)
	}
	return out
}

func TestAlerterBursts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		offline []string // known offline before (posted earlier)
		events  []ev
		until   time.Duration
		want    string // heads(posted)
		lines   []string
	}{
		{name: "five in the window keep their own messages, in order of arrival",
			events: []ev{
				{AlertOffline, "pi-5", "lost", 0}, {AlertOffline, "pi-3", "lost", 100 * time.Millisecond},
				{AlertOffline, "pi-1", "lost", time.Second}, {AlertOffline, "pi-4", "lost", 2 * time.Second},
				{AlertOffline, "pi-2", "lost", 3 * time.Second}, {AlertOffline, "pi-2", "lost", 3 * time.Second}, // repeat: muted
			},
			until: 10 * time.Second,
			want:  "offline pi-5\noffline pi-3\noffline pi-1\noffline pi-4\noffline pi-2"},
		{name: "six are a burst: one message",
			events: evs(AlertOffline, "lost", ids("pi-", 0, 6), 0, time.Millisecond),
			until:  20 * time.Second,
			want:   "burst-lost: 6 Pis lost",
			lines:  []string{"pi-0000, pi-0001, pi-0002, pi-0003, pi-0004, pi-0005"}},
		{name: "312 wills spread over 12 s are one message",
			events: evs(AlertOffline, "lost", ids("pi-", 0, 312), 0, 40*time.Millisecond),
			until:  time.Minute,
			want:   "burst-lost: 312 Pis lost",
			lines:  []string{strings.Join(ids("pi-", 0, 20), ", ") + " and 292 more"}},
		{name: "some came back within the burst",
			events: append(evs(AlertOffline, "lost", ids("pi-", 0, 332), 0, time.Millisecond),
				evs(AlertOnline, "online", ids("pi-", 0, 20), 2*time.Second, time.Millisecond)...),
			until: time.Minute,
			want:  "burst-lost: 312 Pis lost",
			lines: []string{strings.Join(ids("pi-", 20, 20), ", ") + " and 292 more",
				"20 Pis went offline and came back: " + strings.Join(ids("pi-", 0, 20), ", ")}},
		{name: "Pis known offline are not lost again",
			offline: ids("pi-", 0, 10),
			events:  evs(AlertOffline, "lost", ids("pi-", 0, 100), 0, time.Millisecond),
			until:   time.Minute,
			want:    "burst-lost: 90 Pis lost"},
		{name: "back online",
			offline: ids("pi-", 0, 298),
			events:  evs(AlertOnline, "online", ids("pi-", 0, 298), 0, 10*time.Millisecond),
			until:   time.Minute,
			want:    "burst-back: 298 Pis back online"},
		{name: "how they went",
			events: append(append(evs(AlertOffline, "lost", ids("pi-", 0, 298), 0, time.Millisecond),
				evs(AlertOffline, "silent", ids("pi-", 298, 10), time.Second, time.Millisecond)...),
				evs(AlertOffline, "offline", ids("pi-", 308, 4), time.Second, time.Millisecond)...),
			until: time.Minute,
			want:  "burst-lost: 312 Pis lost",
			lines: []string{strings.Join(ids("pi-", 0, 20), ", ") + " and 292 more", "298 connection lost · 10 went silent · 4 shut down"}},
		{name: "a calm kind next to a burst keeps its messages",
			events: append(evs(AlertOffline, "lost", ids("pi-", 0, 100), 0, time.Millisecond),
				ev{AlertProblem, "pi-0500", "under_voltage", time.Second}, ev{AlertAddress, "pi-0501", "192.0.2.1", time.Second}),
			until: time.Minute,
			want:  "problem pi-0500\naddress pi-0501\nburst-lost: 100 Pis lost"},
		{name: "health problems",
			events: append(evs(AlertProblem, "under_voltage", ids("pi-", 0, 400), 0, time.Millisecond),
				evs(AlertProblem, "hot", ids("pi-", 400, 12), 0, time.Millisecond)...),
			until: time.Minute,
			want:  "burst-problem: 412 Pis with a health problem",
			lines: []string{strings.Join(ids("pi-", 0, 20), ", ") + " and 392 more", "400 under_voltage · 12 hot"}},
		{name: "went and came back, nothing else",
			events: append(evs(AlertOffline, "lost", ids("pi-", 0, 500), 0, time.Millisecond),
				evs(AlertOnline, "online", ids("pi-", 0, 500), time.Second, time.Millisecond)...),
			until: time.Minute,
			want:  "burst-blip: 500 Pis went offline and came back"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &counters{}
			a := newAlerter(burstConfig(), c)
			for _, d := range tc.offline {
				a.state[d] = AlertOffline
			}
			out := feed(a, tc.events, tc.until)
			if got := heads(out); got != tc.want {
				t.Errorf("posted:\n%s\nwant:\n%s", got, tc.want)
			}
			if tc.lines != nil && len(out) == 1 && out[0].sum != nil {
				if got := strings.Join(out[0].sum.lines, "\n"); got != strings.Join(tc.lines, "\n") {
					t.Errorf("lines:\n%s\nwant:\n%s", got, strings.Join(tc.lines, "\n"))
				}
			}
			if a.pending != nil {
				t.Errorf("a window is still open")
			}
			if c.alertsDropped.Load() != 0 {
				t.Errorf("%d dropped", c.alertsDropped.Load())
			}
			if got, want := c.alertsSummarised.Load()+c.alertsSuppressed.Load()+uint64(len(out)), uint64(len(tc.events)); got < want {
				t.Errorf("%d events accounted for, want %d", got, want)
			}
		})
	}
}

// A calm alert waits one window; a burst waits for a pause of one window.
func TestAlerterBurstTiming(t *testing.T) {
	a := newAlerter(burstConfig(), &counters{})
	a.add(Alert{Kind: AlertOffline, Device: "pi-1", Detail: "lost", Time: t14}, t14)
	if out := a.sweep(t14.Add(4999 * time.Millisecond)); len(out) != 0 {
		t.Fatalf("posted before the window ended: %s", heads(out))
	}
	if out := a.sweep(t14.Add(5 * time.Second)); heads(out) != "offline pi-1" {
		t.Fatalf("after the window: %q", heads(out))
	}

	// A storm that never pauses: ten Pis a second for three minutes is a
	// message a minute, and every Pi is counted once.
	a = newAlerter(burstConfig(), &counters{})
	all := ids("pi-", 0, 1800)
	out := feed(a, evs(AlertOffline, "lost", all, time.Hour, 100*time.Millisecond), time.Hour+5*time.Minute)
	total := 0
	for _, n := range out {
		var k int
		if _, err := fmt.Sscanf(strings.ReplaceAll(n.sum.head, ",", ""), "%d Pis lost", &k); err != nil || n.Kind != alertBurstLost {
			t.Fatalf("posted %s", heads(out))
		}
		total += k
	}
	if len(out) < 3 || len(out) > 4 || total != 1800 {
		t.Errorf("posted %d summaries of %d Pis, want 3-4 of 1800:\n%s", len(out), total, heads(out))
	}
}

// The state after a burst is as if each event had been posted.
func TestAlerterAfterABurst(t *testing.T) {
	a := newAlerter(burstConfig(), &counters{})
	feed(a, evs(AlertOffline, "lost", ids("pi-", 0, 50), 0, time.Millisecond), 20*time.Second)
	// offline → lost of the same Pi: muted; its return: posted on its own.
	out := feed(a, []ev{{AlertOffline, "pi-0001", "offline", 30 * time.Second}, {AlertOnline, "pi-0002", "online", 31 * time.Second}}, 50*time.Second)
	if got := heads(out); got != "online pi-0002" {
		t.Errorf("after the burst: %q, want only pi-0002 back", got)
	}
	m := out[0].render()
	if m.Text != "pi-0002 is back online: online" {
		t.Errorf("per-device message after a burst = %q", m.Text)
	}
}

// The intake never drops and its memory follows the number of Pis, not of
// events: 10,000 Pis flapping 50 times each within one window.
func TestAlertIntakeNeverDropsAndStaysSmall(t *testing.T) {
	c := &counters{}
	a := newAlerter(burstConfig(), c)
	devs := ids("pi-", 0, 10000)
	now := t14
	for round := range 50 {
		kind := AlertOffline
		if round%2 == 1 {
			kind = AlertOnline
		}
		for _, d := range devs {
			a.enqueueAt(Alert{Kind: kind, Device: d, Detail: kind, Time: now}, now)
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
	if c.alertsDropped.Load() != 0 || c.alertsSummarised.Load() != 500000 {
		t.Errorf("dropped %d, summarised %d; want 0 and 500000", c.alertsDropped.Load(), c.alertsSummarised.Load())
	}
}

// enqueueAt is enqueue at a given time (enqueue uses the alerter's clock).
func (a *alerter) enqueueAt(al Alert, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.add(al, now)
}

// enqueue from many goroutines while run's sweep runs: no race, nothing
// lost (run under -race).
func TestAlertIntakeConcurrent(t *testing.T) {
	var mu sync.Mutex
	now := t14
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	cfg := burstConfig()
	cfg.clock = clock
	c := &counters{}
	a := newAlerter(cfg, c)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, d := range ids(fmt.Sprintf("g%d-", g), 0, 500) {
				a.enqueue(Alert{Kind: AlertOffline, Device: d, Detail: "lost"})
			}
		}()
	}
	var out []notice
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			a.mu.Lock()
			out = append(out, a.sweep(clock())...)
			a.mu.Unlock()
		}
	}()
	wg.Wait()
	<-done
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	a.mu.Lock()
	out = append(out, a.sweep(clock())...)
	a.mu.Unlock()
	if got := heads(out); got != "burst-lost: 4,000 Pis lost" {
		t.Errorf("posted %q", got)
	}
}

// fakeRejoin is the fleet as the restart summary sees it.
type fakeRejoin struct {
	back, away int
	devs       []fleet.Device
}

func (f *fakeRejoin) Rejoin() (int, int)   { return f.back, f.away }
func (f *fakeRejoin) List() []fleet.Device { return f.devs }

func TestRestartSummary(t *testing.T) {
	sec := func(s float64) time.Time { return t14.Add(time.Duration(s * float64(time.Second))) }
	newA := func(r *fakeRejoin) (*alerter, *counters) {
		c := &counters{}
		a := newAlerter(burstConfig(), c)
		if r != nil {
			a.rejoin = r
		}
		a.begin(t14)
		return a, c
	}

	t.Run("a fresh hub says Hub started as before", func(t *testing.T) {
		a, _ := newA(&fakeRejoin{})
		a.add(Alert{Kind: AlertOffline, Device: "pi-09", Detail: "lost", Time: sec(1)}, sec(1))
		out := a.sweep(sec(15))
		if len(out) != 1 || out[0].Kind != alertStartup || out[0].Detail != "1 offline: pi-09" || out[0].sum != nil {
			t.Fatalf("start = %+v", out)
		}
	})

	t.Run("everyone back before the limit", func(t *testing.T) {
		r := &fakeRejoin{back: 900, away: 100}
		a, _ := newA(r)
		a.add(Alert{Kind: AlertOffline, Device: "pi-x", Detail: "lost", Time: sec(17)}, sec(17))
		for s := 15.0; s < 20; s++ {
			if out := a.sweep(sec(s)); len(out) != 0 {
				t.Fatalf("posted at %vs while 100 are away: %s", s, heads(out))
			}
		}
		r.back, r.away = 1000, 0
		out := a.sweep(sec(20))
		if heads(out) != "restart: 1,000 Pis reconnected after the hub restart" {
			t.Fatalf("posted %q", heads(out))
		}
		if got := strings.Join(out[0].sum.lines, "\n"); got != "1 offline: pi-x" {
			t.Errorf("lines %q", got)
		}
	})

	t.Run("some stay away: one message at the limit, and their loss is not posted again", func(t *testing.T) {
		var devs []fleet.Device
		for i, id := range ids("pi-", 0, 200) {
			d := fleet.Device{ID: id, State: "online", LastLive: t14.Add(time.Second)} // back
			if i < 126 {
				d.LastLive = time.Time{}
				if i%2 == 0 {
					d.State, d.Silent = "lost", true // swept already
				}
			}
			devs = append(devs, d)
		}
		r := &fakeRejoin{back: 9874, away: 126, devs: devs}
		a, _ := newA(r)
		// Learnt while waiting: the fleet's sweep takes the silent as lost,
		// and an unrelated Pi dies by its will.
		for i := 0; i < 126; i += 2 {
			a.add(Alert{Kind: AlertOffline, Device: devs[i].ID, Detail: detailSilent, Time: sec(46)}, sec(46))
		}
		a.add(Alert{Kind: AlertOffline, Device: "pi-zz", Detail: "lost", Time: sec(50)}, sec(50))
		if out := feedSweeps(a, 0, 89); len(out) != 0 {
			t.Fatalf("posted before the limit: %s", heads(out))
		}
		out := a.sweep(sec(90))
		if heads(out) != "restart: 9,874 Pis reconnected after the hub restart; 126 still away" {
			t.Fatalf("posted %q", heads(out))
		}
		want := "Still away: " + strings.Join(ids("pi-", 0, 20), ", ") + " and 106 more\n1 offline: pi-zz"
		if got := strings.Join(out[0].sum.lines, "\n"); got != want {
			t.Errorf("lines:\n%s\nwant:\n%s", got, want)
		}
		if f := out[0].sum.file; f == nil || strings.Count(f.Content, "\npi-") != 126 {
			t.Errorf("file %+v, want the 126 away", f)
		}
		// The away Pi still claimed online is swept later: muted. After its
		// deadline (silence limit + grace), a loss is news again.
		a.add(Alert{Kind: AlertOffline, Device: "pi-0001", Detail: detailSilent, Time: sec(130)}, sec(130))
		if out := feedSweeps(a, 91, 200); len(out) != 0 {
			t.Errorf("the loss of an away Pi was posted again: %s", heads(out))
		}
		// Its return is news, and so is its next loss.
		a.add(Alert{Kind: AlertOnline, Device: "pi-0001", Detail: "online", Time: sec(300)}, sec(300))
		a.add(Alert{Kind: AlertOnline, Device: "pi-0000", Detail: "online", Time: sec(300)}, sec(300))
		if out := feedSweeps(a, 300, 320); heads(out) != "online pi-0001\nonline pi-0000" {
			t.Errorf("returns: %q", heads(out))
		}
		a.add(Alert{Kind: AlertOffline, Device: "pi-0003", Detail: detailSilent, Time: sec(1000)}, sec(1000))
		if out := feedSweeps(a, 1000, 1010); heads(out) != "offline pi-0003" {
			t.Errorf("a loss long after the restart: %q", heads(out))
		}
	})

	t.Run("events held before the restart was known are learnt", func(t *testing.T) {
		r := &fakeRejoin{back: 10, away: 5}
		for _, id := range ids("pi-a", 0, 5) {
			r.devs = append(r.devs, fleet.Device{ID: id, State: "online"})
		}
		a, _ := newA(r)
		// After the quiet start, before a sweep found it was a restart.
		for _, d := range ids("pi-", 0, 40) {
			a.add(Alert{Kind: AlertOffline, Device: d, Detail: "lost", Time: sec(16)}, sec(16))
		}
		a.add(Alert{Kind: AlertProblem, Device: "pi-p", Detail: "hot", Time: sec(16)}, sec(16))
		if out := feedSweeps(a, 16, 89); len(out) != 0 {
			t.Fatalf("posted %s", heads(out))
		}
		out := a.sweep(sec(90))
		if heads(out) != "restart: 10 Pis reconnected after the hub restart; 5 still away" {
			t.Fatalf("posted %q", heads(out))
		}
		if got := out[0].sum.lines; len(got) != 3 || got[0] != "Still away: "+strings.Join(ids("pi-a", 0, 5), ", ") {
			t.Errorf("lines %q", got)
		}
		if got := out[0].sum.lines[1:]; len(got) != 2 || !strings.HasPrefix(got[0], "40 offline: pi-0000,") || got[1] != "1 with problems: pi-p (hot)" {
			t.Errorf("lines %q", got)
		}
	})
}

func feedSweeps(a *alerter, from, to int) []notice {
	var out []notice
	for s := from; s <= to; s++ {
		out = append(out, a.sweep(t14.Add(time.Duration(s)*time.Second))...)
	}
	return out
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 7: "7", 999: "999", 1000: "1,000", 9874: "9,874", 123456: "123,456", 1234567: "1,234,567", -5000: "-5,000"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
	if pis(1) != "1 Pi" || pis(2000) != "2,000 Pis" {
		t.Errorf("pis: %q %q", pis(1), pis(2000))
	}
}

// The summaries as Slack gets them, from the alerter itself.
func TestRenderSummariesGolden(t *testing.T) {
	run := func(events []ev, offline []string) []notice {
		a := newAlerter(burstConfig(), &counters{})
		for _, d := range offline {
			a.state[d] = AlertOffline
		}
		return feed(a, events, events[len(events)-1].at+time.Minute)
	}
	cases := map[string][]notice{
		"alert-burst-lost": run(append(append(evs(AlertOffline, "lost", ids("pi-", 0, 313), 3*time.Second, 10*time.Millisecond),
			evs(AlertOffline, "silent", ids("pi-", 313, 2), 4*time.Second, time.Millisecond)...),
			evs(AlertOnline, "online", ids("pi-", 0, 3), 5*time.Second, time.Millisecond)...), nil),
		"alert-burst-back": run(evs(AlertOnline, "online", ids("pi-", 0, 298), 3*time.Minute, 10*time.Millisecond), ids("pi-", 0, 298)),
		"alert-burst-blip": run(append(evs(AlertOffline, "lost", ids("pi-", 0, 8), 0, time.Millisecond),
			evs(AlertOnline, "online", ids("pi-", 0, 8), time.Second, time.Millisecond)...), nil),
		"alert-burst-problem": run(append(evs(AlertProblem, "under_voltage", ids("pi-", 0, 30), 0, time.Millisecond),
			evs(AlertProblem, "hot, under_voltage", ids("pi-", 30, 3), 0, time.Millisecond)...), nil),
		"alert-burst-address": run(evs(AlertAddress, "192.0.2.9", ids("pi-", 0, 7), 0, time.Millisecond), nil),
	}
	// The restart: 9,874 back, 126 away.
	var devs []fleet.Device
	for _, id := range ids("pi-", 0, 126) {
		devs = append(devs, fleet.Device{ID: id, State: "lost", Silent: true})
	}
	a := newAlerter(burstConfig(), &counters{})
	a.rejoin = &fakeRejoin{back: 9874, away: 126, devs: devs}
	a.begin(t14)
	a.add(Alert{Kind: AlertOffline, Device: "pi-old", Detail: "lost", Time: t14}, t14)
	a.add(Alert{Kind: AlertProblem, Device: "pi-hot", Detail: "hot", Time: t14}, t14)
	cases["alert-restart"] = a.sweep(t14.Add(90 * time.Second))
	a = newAlerter(burstConfig(), &counters{})
	a.rejoin = &fakeRejoin{back: 2}
	a.begin(t14)
	cases["alert-restart-all-back"] = a.sweep(t14.Add(20 * time.Second))

	for name, out := range cases {
		t.Run(name, func(t *testing.T) {
			if len(out) != 1 || out[0].sum == nil {
				t.Fatalf("posted %s, want one summary", heads(out))
			}
			m := out[0].render()
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
	var events []ev
	for i := range 10000 {
		events = append(events, ev{AlertProblem, fmt.Sprintf("%s%06d", long, i), strings.Repeat("under_voltage, ", 10) + "hot", 0})
	}
	a := newAlerter(burstConfig(), &counters{})
	out := feed(a, events, time.Minute)
	if len(out) != 1 {
		t.Fatalf("posted %d messages", len(out))
	}
	m := out[0].render()
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
