package dispatch

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/chat"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/wire"
)

func notice(dev, id string) wire.Notice {
	return wire.Notice{V: 1, Kind: wire.KindNotice, ID: id, Device: dev, Reason: wire.NoticeDuplicate}
}

// A Pi's duplicate notice arriving before the real final (a re-sent copy
// of a command still running) is logged and counted; the wait
// goes on and the real final still ends it.
func TestNoticeBeforeFinalDoesNotEndTheWait(t *testing.T) {
	p := &pub{}
	logs := &testenv.SyncBuffer{}
	var mu sync.Mutex
	var late []Result
	d, _ := newTestDispatcher(t, p, staticFleet{"pi1": true}, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		o.OnLateResult = func(r Result) { mu.Lock(); late = append(late, r); mu.Unlock() }
	})
	stillPending := make(chan bool, 1)
	p.onCmd = func(c wire.Command) {
		send(d, c.Device, c.ID, chunk("pi1", c.ID, 1, "line1\n"), notice("pi1", c.ID), notice("pi1", c.ID))
		stillPending <- slices.Contains(d.Pending(), c.ID)
		send(d, c.Device, c.ID, final("pi1", c.ID, 2, 0, "line1\n"))
	}
	r := d.Handle(context.Background(), chat.Request{User: "U2"}, []string{"pi1", "s3", "ls"})
	if !<-stillPending {
		t.Error("the command was no longer in flight after the notices")
	}
	if r.Problem || !strings.Contains(r.Text, "pi1: ✅ exit 0") || !strings.Contains(r.Text, "line1") {
		t.Fatalf("reply %q, want the real final's exit 0 and output", r.Text)
	}
	if st := d.Stats(); st.Duplicates != 2 || st.StrayDuplicates != 0 {
		t.Errorf("Stats = %+v, want 2 duplicates of a command in flight", st)
	}
	id := p.commands()[0].ID
	if n := strings.Count(logs.String(), "level=DEBUG msg=\"Pi got another copy of command "+id+" "); n != 2 {
		t.Errorf("%d debug lines about the notices, want 2:\n%s", n, logs.String())
	}
	waitClears(t, p, 1)
	if c := p.clears(); len(c) != 1 || c[0] != wire.ResultTopic("pi1", "hub1", id) {
		t.Errorf("clears %v, want one for the final alone", c)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(late) != 0 {
		t.Errorf("late results %+v, want none", late)
	}
}

// A notice for a command that is not in flight (someone replayed an old
// command the hub signed) is a warning and a count, nothing else.
func TestNoticeOfACommandNotInFlight(t *testing.T) {
	p := &pub{}
	logs := &testenv.SyncBuffer{}
	var late int
	d, _ := newTestDispatcher(t, p, staticFleet{"pi1": true}, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
		o.OnLateResult = func(Result) { late++ }
	})
	send(d, "pi1", "c-old", notice("pi1", "c-old"))
	if st := d.Stats(); st.StrayDuplicates != 1 || st.Duplicates != 0 {
		t.Errorf("Stats = %+v, want one stray duplicate", st)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "Pi reports a replay of command c-old") {
		t.Errorf("no warning about the replay:\n%s", logs.String())
	}
	// Not matching its topic, or of a reason this hub does not know:
	// ignored. None of these publishes anything or reaches OnLateResult.
	send(d, "pi1", "c1", notice("pi2", "c1"))
	send(d, "pi1", "c2", notice("pi1", "c3"))
	send(d, "pi1", "c4", wire.Notice{V: 1, Kind: wire.KindNotice, ID: "c4", Device: "pi1", Reason: "from-the-future"})
	if st := d.Stats(); st.StrayDuplicates != 1 || st.Duplicates != 0 {
		t.Errorf("Stats = %+v after ignored notices, want unchanged", st)
	}
	p.mu.Lock()
	n := len(p.msgs)
	p.mu.Unlock()
	if late != 0 || n != 0 {
		t.Errorf("%d late results, %d publishes; want none", late, n)
	}
}

// A notice for a command of another device with the same id is not
// counted as that command's.
func TestNoticeFromAnotherDeviceIsStray(t *testing.T) {
	p := &pub{}
	d, _ := newTestDispatcher(t, p, staticFleet{"pi1": true}, func(o *Options) { o.Wait = 1 })
	d.Handle(context.Background(), chat.Request{User: "U2"}, []string{"pi1", "s3", "ls"}) // no answer: stays in flight
	id := p.commands()[0].ID
	send(d, "pi2", id, notice("pi2", id))
	if st := d.Stats(); st.StrayDuplicates != 1 || st.Duplicates != 0 {
		t.Errorf("Stats = %+v, want one stray duplicate", st)
	}
	if got := d.Pending(); len(got) != 1 || got[0] != id {
		t.Errorf("pending %v, want [%s]", got, id)
	}
}

// Pis read commands at QoS 0: the hub sends a command again until the Pi
// acknowledges it, then stops. The copies are the same signed command.
func TestResendUntilAccepted(t *testing.T) {
	p := &pub{}
	d, _ := newTestDispatcher(t, p, staticFleet{"pi1": true}, func(o *Options) { o.Resend = []time.Duration{20 * time.Millisecond} })
	var mu sync.Mutex
	copies := 0
	p.onCmd = func(c wire.Command) {
		mu.Lock()
		copies++
		n := copies
		mu.Unlock()
		if n < 3 {
			return // lost on the way to the Pi
		}
		accepted := wire.Notice{V: 1, Kind: wire.KindNotice, ID: c.ID, Device: "pi1", Reason: wire.NoticeAccepted}
		send(d, "pi1", c.ID, accepted)
		time.Sleep(100 * time.Millisecond) // a run longer than several re-send periods
		send(d, "pi1", c.ID, final("pi1", c.ID, 1, 0, "ok\n"))
	}
	r := d.Handle(context.Background(), chat.Request{User: "U2"}, []string{"pi1", "s3", "ls"})
	if r.Problem || !strings.Contains(r.Text, "pi1: ✅ exit 0") {
		t.Fatalf("reply %q, want exit 0", r.Text)
	}
	cmds := p.commands()
	if len(cmds) != 3 {
		t.Fatalf("%d copies sent, want 3 (two lost, the third accepted, none after)", len(cmds))
	}
	for _, c := range cmds[1:] {
		if c.ID != cmds[0].ID || string(c.Sig) != string(cmds[0].Sig) {
			t.Errorf("copy %+v differs from the first %+v", c, cmds[0])
		}
	}
	if st := d.Stats(); st.Resent != 2 || st.Accepted != 1 {
		t.Errorf("Stats %+v, want Resent 2, Accepted 1", st)
	}
}

// A command nobody acknowledges is sent again only until it expires.
func TestResendStopsAtExpiry(t *testing.T) {
	p := &pub{}
	d, _ := newTestDispatcher(t, p, staticFleet{"pi1": true}, func(o *Options) {
		o.Resend = []time.Duration{10 * time.Millisecond}
		o.TTL = 200 * time.Millisecond
		o.Wait = 10 * time.Millisecond
	})
	d.Handle(context.Background(), chat.Request{User: "U2"}, []string{"pi1", "s3", "ls"})
	testenv.Eventually(t, 10*time.Second, func() string {
		n := len(p.commands())
		time.Sleep(300 * time.Millisecond)
		if m := len(p.commands()); m != n || m < 2 {
			return fmt.Sprintf("%d copies, then %d: still sending, or never sent again", n, m)
		}
		return ""
	})
	if n := len(p.commands()); n > 21 {
		t.Errorf("%d copies in a 200 ms TTL at 10 ms apart, want at most 21", n)
	}
}

// A flood of forged finals starts at most maxBackground goroutines (each
// clears a retained final, in the background): the rest are dropped and
// counted, and the dispatcher keeps working.
func TestForgedFinalFloodIsBounded(t *testing.T) {
	block := make(chan struct{})
	p := &blockingPub{block: block}
	d, _ := newTestDispatcher(t, nil, staticFleet{"pi1": true}, func(o *Options) { o.Publisher = p })
	before := runtime.NumGoroutine()
	for i := range 5 * maxBackground {
		id := fmt.Sprintf("c-forged-%d", i)
		send(d, "pi1", id, final("pi1", id, 1, 0, "x"))
	}
	if n := runtime.NumGoroutine() - before; n > maxBackground+10 {
		t.Errorf("%d goroutines started by %d forged finals, want at most %d", n, 5*maxBackground, maxBackground)
	}
	if st := d.Stats(); st.BackgroundDropped != 4*maxBackground || st.Unknown != 5*maxBackground {
		t.Errorf("Stats %+v: want %d dropped, %d unknown", st, 4*maxBackground, 5*maxBackground)
	}
	close(block)
}

// blockingPub blocks every publish until block is closed.
type blockingPub struct{ block chan struct{} }

func (p *blockingPub) Publish(string, byte, bool, []byte) error { <-p.block; return nil }
