package slackbot

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/alerts/alertstest"
	"github.com/pifleet/pifleet/hub/internal/fleet"
	sbt "github.com/pifleet/pifleet/hub/internal/slackbot/slackbottest"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/wire"
)

// These tests run the real fleet view (real wire JSON through
// fleet.ApplyMessage) against the bot on the fake workspace: the alert
// policy's outcomes as Slack messages, threads and files (the policy on
// its own is tested in hub/internal/alerts). The fleet and the policy
// share a fake clock that only the test moves, so no outcome depends on
// how fast the machine is; real time only paces the policy's ticks
// (20 ms) and bounds the waits.

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// watchedFleet is the real fleet, telling the test when the bot subscribed.
// It is a Rejoiner through the embedded *fleet.Fleet.
type watchedFleet struct {
	*fleet.Fleet
	subs atomic.Int32
}

func (w *watchedFleet) Subscribe(fn func(fleet.Alert)) (cancel func()) {
	c := w.Fleet.Subscribe(fn)
	w.subs.Add(1)
	return func() { c(); w.subs.Add(-1) }
}

var _ Rejoiner = (*watchedFleet)(nil)

// alertBot starts the bot on ws with the alert channel CALERT, the fleet
// f as its alert source and clock as the alert policy's clock, and waits until
// it subscribed.
func alertBot(t *testing.T, ws *sbt.Workspace, f *fleet.Fleet, clock *fakeClock) *session {
	t.Helper()
	cfg := testConfig(ws)
	cfg.AlertChannel = "CALERT"
	cfg.AlertQuietStart = 15 * time.Second
	cfg.AlertBurstWindow = 5 * time.Second
	cfg.clock = clock.Now
	cfg.alertTick = 20 * time.Millisecond
	src := &watchedFleet{Fleet: f}
	s := start(t, ws, cfg, &sbt.Engine{}, src)
	testenv.Eventually(t, wait, func() string {
		if src.subs.Load() != 1 {
			return "the bot did not subscribe to the fleet's alerts"
		}
		return ""
	})
	return s
}

func inAlerts(r sbt.Record) bool { return r.Channel == "CALERT" }

// 2,000 Pis whose wills arrive within 4 s (their switch died) are one
// Slack message with the exact count and every id in a file.
func TestTwoThousandPisLostAreOneSlackMessage(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 14, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: t0}
	f := fleet.New(clock.Now)
	w := alertstest.Feed{T: t, F: f}
	const n = 2000
	id := func(i int) string { return fmt.Sprintf("pi-%04d", i) }
	for i := range n {
		w.State(id(i), wire.StateOnline, 1, false)
		w.Status(id(i), 1, 1, 30, false)
	}
	ws := sbt.New(t)
	s := alertBot(t, ws, f, clock)

	clock.Set(t0.Add(2 * time.Minute)) // long after the quiet start
	for i := range n {
		clock.Set(t0.Add(2*time.Minute + time.Duration(i)*2*time.Millisecond))
		w.State(id(i), wire.StateLost, 1, false) // the broker publishes each will
	}
	clock.Set(t0.Add(3 * time.Minute))
	posts := waitPosts(t, ws, sbt.KindPost, 1, inAlerts)
	if want := "2,000 Pis lost at 14:02 UTC\n"; !strings.HasPrefix(posts[0].Text, want) {
		t.Errorf("alert = %q, want it to start with %q", posts[0].Text, want)
	}
	up := waitPosts(t, ws, sbt.KindUpload, 1, nil)[0]
	if got := strings.Count(up.Content, "\npi-"); up.FileName != "pifleet-lost.txt" || got != n {
		t.Errorf("file %s lists %d Pis, want pifleet-lost.txt with %d", up.FileName, got, n)
	}
	waitPosts(t, ws, sbt.KindComplete, 1, func(r sbt.Record) bool { return r.Channel == "CALERT" && r.ThreadTS == posts[0].TS })

	// One of them comes back later: a message of its own, as before.
	clock.Set(t0.Add(4 * time.Minute))
	w.State(id(7), wire.StateOnline, 2, false)
	clock.Set(t0.Add(5 * time.Minute))
	waitPosts(t, ws, sbt.KindPost, 2, inAlerts)
	waitCounted(t, s, 2)
	s.stop(t)

	all := ws.Find(sbt.KindPost, inAlerts)
	if len(all) != 2 || all[1].Text != "pi-0007 is back online" {
		t.Errorf("alert channel got %d messages, want the summary then pi-0007's return:%s", len(all), dump(all))
	}
	if st := s.bot.Stats(); st.AlertsSummarised != n || st.AlertsDropped != 0 || st.AlertsPosted != 2 {
		t.Errorf("stats %+v, want %d summarised, none dropped, 2 posted", st, n)
	}
}

// A hub restart with 1,000 Pis claimed online by retained messages: 950
// come back, 50 stay away. Slack gets one message, at the limit (90 s),
// with the exact counts; the away Pis the fleet takes as lost afterwards
// (a long heartbeat) are not announced again.
func TestHubRestartIsOneSlackMessage(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 14, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: t0}
	f := fleet.New(clock.Now)
	w := alertstest.Feed{T: t, F: f}
	ws := sbt.New(t)
	s := alertBot(t, ws, f, clock)

	id := func(i int) string { return fmt.Sprintf("pi-%04d", i) }
	// The hub subscribes; the broker replays what it retained.
	f.Resync(t0)
	for i := range 1000 {
		hb := 30
		if i >= 975 {
			hb = 120 // these will be taken as lost only after the summary
		}
		w.State(id(i), wire.StateOnline, 1, true)
		w.Status(id(i), 1, 1, hb, true)
	}
	for i := range 10 {
		w.State(fmt.Sprintf("pi-gone-%d", i), wire.StateLost, 1, true) // offline before the restart
	}
	// 950 reconnect (a new session each) within seconds.
	clock.Set(t0.Add(5 * time.Second))
	for i := range 950 {
		w.State(id(i), wire.StateOnline, 2, false)
		w.Status(id(i), 2, 1, 30, false)
	}
	// The fleet's sweep takes the silent ones with a 30 s heartbeat as lost.
	clock.Set(t0.Add(46 * time.Second))
	if got := f.Sweep(); got != 25 {
		t.Fatalf("Sweep at +46s took %d as lost, want 25", got)
	}
	if back, away := f.Rejoin(); back != 950 || away != 50 {
		t.Fatalf("Rejoin = %d, %d", back, away)
	}
	clock.Set(t0.Add(91 * time.Second))
	post := waitPosts(t, ws, sbt.KindPost, 1, inAlerts)[0]
	want := "950 Pis reconnected after the hub restart; 50 still away\nStill away: " + strings.Join(alertstest.IDs("pi-", 950, 20), ", ") +
		" and 30 more\n10 offline: pi-gone-0, pi-gone-1, pi-gone-2, pi-gone-3, pi-gone-4, pi-gone-5, pi-gone-6, pi-gone-7, pi-gone-8, pi-gone-9"
	if post.Text != want {
		t.Errorf("restart summary =\n%s\nwant\n%s", post.Text, want)
	}
	up := waitPosts(t, ws, sbt.KindUpload, 1, nil)[0]
	if got := strings.Count(up.Content, "\npi-"); up.FileName != "pifleet-still-away.txt" || got != 50 {
		t.Errorf("file %s lists %d Pis, want pifleet-still-away.txt with 50", up.FileName, got)
	}

	// The 950 keep talking; the 25 away with a 120 s heartbeat are swept
	// now. Their loss was in the summary: the policy takes it there and
	// then (the callback runs inside Sweep), nothing is held for later.
	clock.Set(t0.Add(190 * time.Second))
	for i := range 950 {
		w.Status(id(i), 2, 2, 30, false)
	}
	before := s.bot.Stats().AlertsSummarised
	clock.Set(t0.Add(200 * time.Second))
	if got := f.Sweep(); got != 25 {
		t.Fatalf("Sweep at +200s took %d as lost, want 25", got)
	}
	if got := s.bot.Stats().AlertsSummarised - before; got != 25 {
		t.Errorf("%d of the 25 late losses were taken as reported in the summary", got)
	}
	// A Pi that came back dies later: news, on its own.
	clock.Set(t0.Add(210 * time.Second))
	w.State(id(1), wire.StateLost, 2, false)
	clock.Set(t0.Add(230 * time.Second))
	waitPosts(t, ws, sbt.KindPost, 2, inAlerts)
	waitCounted(t, s, 2)
	s.stop(t)

	all := ws.Find(sbt.KindPost, inAlerts)
	if len(all) != 2 || all[1].Text != "pi-0001 lost its connection" {
		t.Errorf("alert channel got %d messages, want the restart summary then pi-0001's loss:%s", len(all), dump(all))
	}
	if st := s.bot.Stats(); st.AlertsDropped != 0 || st.AlertsPosted != 2 {
		t.Errorf("stats %+v, want none dropped, 2 posted", st)
	}
}

// waitCounted waits until the bot counted n alerts as posted. Slack has a
// post before the bot has read Slack's answer and counted it: stopping the
// bot in between would cut that answer off.
func waitCounted(t *testing.T, s *session, n uint64) {
	t.Helper()
	testenv.Eventually(t, wait, func() string {
		if got := s.bot.Stats().AlertsPosted; got < n {
			return fmt.Sprintf("%d alerts counted as posted, want %d", got, n)
		}
		return ""
	})
}
