package slackbot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pifleet/pifleet/hub/internal/fleet"
	"github.com/pifleet/pifleet/hub/internal/jobs"
	sbt "github.com/pifleet/pifleet/hub/internal/slackbot/slackbottest"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/testenv/natstest"
)

var _ ThreadStore = (*jobs.Store)(nil)

func TestThreadContinues(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 14, 0, 0, 0, time.UTC)
	th := func(lastKind string, last time.Duration) alertThread {
		return alertThread{Channel: "CALERT", TS: "1.1", Started: t0, Last: t0.Add(last), LastKind: lastKind}
	}
	for _, c := range []struct {
		name string
		th   alertThread
		at   time.Duration
		want bool
	}{
		{"no thread", alertThread{}, time.Minute, false},
		{"after bad news", th(AlertOffline, 0), 5 * time.Hour, true},
		{"soon after good news", th(AlertOnline, time.Minute), time.Minute + ThreadQuietAfter - time.Second, true},
		{"healthy for an hour", th(AlertOnline, time.Minute), time.Minute + ThreadQuietAfter, false},
		{"recovered for an hour", th(AlertRecovered, 0), ThreadQuietAfter, false},
		{"a day old", th(AlertProblem, 23*time.Hour), ThreadMaxAge, false},
		{"another channel", alertThread{Channel: "COLD", TS: "1.1", Started: t0, Last: t0, LastKind: AlertOffline}, time.Minute, false},
	} {
		if got := c.th.continues("CALERT", t0.Add(c.at)); got != c.want {
			t.Errorf("%s: continues = %v, want %v", c.name, got, c.want)
		}
	}
}

// natsThreads is a thread store in a real nats-server's JetStream (the
// hubs' job store); each call is a new connection, as a restarted hub's.
func natsThreads(t *testing.T) func() ThreadStore {
	t.Helper()
	s := natstest.Server(t)
	return func() ThreadStore {
		nc, err := nats.Connect(s.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		store, err := jobs.Open(ctx, nc, 1)
		if err != nil {
			t.Fatal(err)
		}
		return store
	}
}

// threadBot starts a bot posting alerts from src to CALERT, with the
// policy on clock and the threads in store.
func threadBot(t *testing.T, ws *sbt.Workspace, src *sbt.Alerts, clock *fakeClock, store ThreadStore) *session {
	t.Helper()
	cfg := testConfig(ws)
	cfg.AlertChannel = "CALERT"
	cfg.AlertQuietStart = 15 * time.Second
	cfg.AlertBurstWindow = 5 * time.Second
	cfg.clock = clock.Now
	cfg.alertTick = 20 * time.Millisecond
	cfg.Threads = store
	subs := src.Subscribers()
	s := start(t, ws, cfg, &sbt.Engine{}, src)
	testenv.Eventually(t, wait, func() string {
		if src.Subscribers() != subs+1 {
			return "the bot did not subscribe to alerts"
		}
		return ""
	})
	return s
}

// alertAt sends one alert at the time at on the policy's clock, moves
// the clock past the burst window and waits for the n-th post in the
// alert channel, which it returns.
func alertAt(t *testing.T, ws *sbt.Workspace, src *sbt.Alerts, clock *fakeClock, at time.Time, n int, a fleet.Alert) sbt.Record {
	t.Helper()
	clock.Set(at)
	a.Time = at
	src.Emit(a)
	clock.Set(at.Add(6 * time.Second))
	return waitPosts(t, ws, sbt.KindPost, n, inAlerts)[n-1]
}

// Alerts about one Pi go into one thread, bad news also to the channel; a
// different Pi gets its own thread; a restarted bot on the same JetStream
// state continues the thread; after an hour healthy the Pi's next alert
// starts a new one; a summary of many Pis stays top-level.
func TestAlertsThreadPerPi(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 14, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: t0}
	ws := sbt.New(t)
	src := &sbt.Alerts{}
	openStore := natsThreads(t)
	s := threadBot(t, ws, src, clock, openStore())
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	inThreadOf := func(name string, r, root sbt.Record, broadcast bool) {
		t.Helper()
		if r.ThreadTS != root.TS || r.Broadcast != broadcast {
			t.Errorf("%s: thread %q broadcast %v, want thread %q broadcast %v:%s", name, r.ThreadTS, r.Broadcast, root.TS, broadcast, dump(ws.Records()))
		}
	}
	topLevel := func(name string, r sbt.Record) {
		t.Helper()
		if r.ThreadTS != "" || r.Broadcast {
			t.Errorf("%s: in thread %q (broadcast %v), want a new message in the channel:%s", name, r.ThreadTS, r.Broadcast, dump(ws.Records()))
		}
	}

	first := alertAt(t, ws, src, clock, at(2*time.Minute), 1, fleet.Alert{Kind: AlertOffline, Device: "pi-a", Detail: "lost"})
	topLevel("pi-a lost", first)
	back := alertAt(t, ws, src, clock, at(10*time.Minute), 2, fleet.Alert{Kind: AlertOnline, Device: "pi-a", Detail: "online"})
	inThreadOf("pi-a back", back, first, false)
	other := alertAt(t, ws, src, clock, at(11*time.Minute), 3, fleet.Alert{Kind: AlertOffline, Device: "pi-b", Detail: "lost"})
	topLevel("pi-b lost", other)
	again := alertAt(t, ws, src, clock, at(40*time.Minute), 4, fleet.Alert{Kind: AlertOffline, Device: "pi-a", Detail: "lost"})
	inThreadOf("pi-a lost again", again, first, true)
	waitCounted(t, s, 4)
	s.stop(t)

	// A new bot (a restarted hub, or the one that took the alerts lease
	// over) with its own connection to the same JetStream.
	clock.Set(at(45 * time.Minute))
	s = threadBot(t, ws, src, clock, openStore())
	clock.Set(at(46 * time.Minute)) // past its quiet start
	backAgain := alertAt(t, ws, src, clock, at(50*time.Minute), 5, fleet.Alert{Kind: AlertOnline, Device: "pi-a", Detail: "online"})
	inThreadOf("pi-a back after the restart", backAgain, first, false)
	hot := alertAt(t, ws, src, clock, at(3*time.Hour), 6, fleet.Alert{Kind: AlertProblem, Device: "pi-a", Detail: "hot"})
	topLevel("pi-a hot, hours after it came back", hot)
	bFlap := alertAt(t, ws, src, clock, at(3*time.Hour+time.Minute), 7, fleet.Alert{Kind: AlertOnline, Device: "pi-b", Detail: "online"})
	inThreadOf("pi-b back, hours later but never healthy in between", bFlap, other, false)

	// A burst: seven Pis lost at once, pi-a among them, is one summary.
	clock.Set(at(4 * time.Hour))
	for i := range 7 {
		dev := fmt.Sprintf("pi-s%d", i)
		if i == 0 {
			dev = "pi-a"
		}
		src.Emit(fleet.Alert{Kind: AlertOffline, Device: dev, Detail: "lost", Time: at(4 * time.Hour)})
	}
	clock.Set(at(4*time.Hour + time.Minute))
	summary := waitPosts(t, ws, sbt.KindPost, 8, inAlerts)[7]
	if !strings.Contains(summary.Text, "7 Pis") {
		t.Errorf("post 8 = %q, want the summary of 7 Pis", summary.Text)
	}
	topLevel("the summary", summary)
	waitCounted(t, s, 4) // this bot's four
}

type brokenThreads struct{}

func (brokenThreads) AlertThread(context.Context, string) ([]byte, error) {
	return nil, errors.New("no JetStream")
}

func (brokenThreads) SetAlertThread(context.Context, string, []byte) error {
	return errors.New("no JetStream")
}

// A thread store that fails holds no alert up: the bot threads from its
// own memory and says so in its log, rate-limited.
func TestAlertThreadsWithoutTheirStore(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 14, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: t0}
	ws := sbt.New(t)
	src := &sbt.Alerts{}
	s := threadBot(t, ws, src, clock, brokenThreads{})
	first := alertAt(t, ws, src, clock, t0.Add(time.Minute), 1, fleet.Alert{Kind: AlertProblem, Device: "pi-a", Detail: "hot"})
	next := alertAt(t, ws, src, clock, t0.Add(2*time.Minute), 2, fleet.Alert{Kind: AlertRecovered, Device: "pi-a", Detail: "hot"})
	if first.ThreadTS != "" || next.ThreadTS != first.TS {
		t.Errorf("posts:%s\nwant pi-a's recovery in the thread of its problem", dump(ws.Records()))
	}
	waitCounted(t, s, 2)
	s.stop(t)
	if n := strings.Count(s.logs.String(), "alert thread store"); n < 1 || n > 3 {
		t.Errorf("%d log lines about the failing store, want 1 to 3:\n%s", n, s.logs.String())
	}
}
