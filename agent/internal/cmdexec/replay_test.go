package cmdexec

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/pifleet/pifleet/internal/link"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/wire"
)

// clock is a test clock the test moves by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestDuplicateIsNoticedNotRerun(t *testing.T) {
	f := newFixture(t, nil)
	p := f.payload(f.command("dup1", "ec2", "describe-instances"), true)
	var s sink
	f.deliver(t, &s, p)
	_, first := s.snapshot()
	f.deliver(t, &s, p) // QoS 1 redelivery or a replay
	chunks, finals := s.snapshot()
	if f.run.count() != 1 || len(chunks) != 1 || len(finals) != 1 || fmt.Sprint(finals) != fmt.Sprint(first) {
		t.Fatalf("runs %d, chunks %d, finals %+v; want one run and the first final alone", f.run.count(), len(chunks), finals)
	}
	want := wire.Notice{V: wire.ProtocolVersion, Kind: wire.KindNotice, ID: "dup1", Device: "pi1", Reason: wire.NoticeDuplicate}
	if n := s.noticesSnapshot(wire.NoticeDuplicate); len(n) != 1 || n[0] != want {
		t.Fatalf("notices %+v, want exactly %+v", n, want)
	}
	ack := want
	ack.Reason = wire.NoticeAccepted
	if n := s.noticesSnapshot(wire.NoticeAccepted); len(n) != 1 || n[0] != ack {
		t.Fatalf("accepted notices %+v, want exactly one %+v (the hub's acknowledgement, once per id)", n, ack)
	}
	s.mu.Lock()
	hubs := append([]string(nil), s.hubs...)
	firstNotice := s.notices[0]
	s.mu.Unlock()
	if firstNotice.Reason != wire.NoticeAccepted {
		t.Errorf("first notice %+v, want the accepted one (published before the run)", firstNotice)
	}
	if len(hubs) != 3 || hubs[2] != "hub1" {
		t.Errorf("records went to hubs %v, want accepted, final and the duplicate notice on hub1's result topic", hubs)
	}
	if st := &f.h.Stats; st.Replayed.Load() != 1 || st.Notices.Load() != 1 || st.Ran.Load() != 1 || st.Rejected.Load() != 0 {
		t.Errorf("Replayed %d Notices %d Ran %d Rejected %d; want 1 1 1 0", st.Replayed.Load(), st.Notices.Load(), st.Ran.Load(), st.Rejected.Load())
	}
}

// A copy of a handled command that does not verify is dropped and counted
// without a word: only the hub's key can make the Pi publish a notice.
func TestForgedReplayGetsNoNotice(t *testing.T) {
	_, otherKey, _ := ed25519.GenerateKey(nil)
	f := newFixture(t, nil)
	c := f.command("dup2", "ec2", "describe-instances")
	var s sink
	f.deliver(t, &s, f.payload(c, true))
	forged := map[string][]byte{
		"unsigned": f.payload(c, false),
		"signed by another key": func() []byte {
			cc := c
			cc.Sign(otherKey)
			return f.payload(cc, false)
		}(),
		"argv changed after signing": func() []byte {
			cc := c
			cc.Sign(f.key)
			cc.Argv = []string{"ec2", "terminate-instances"}
			return f.payload(cc, false)
		}(),
		"reply_to changed after signing": func() []byte {
			cc := c
			cc.Sign(f.key)
			cc.ReplyTo = "evilhub"
			return f.payload(cc, false)
		}(),
		"signed by the hub for another device": func() []byte {
			cc := c
			cc.Device = "pi2"
			return f.payload(cc, true)
		}(),
	}
	for name, p := range forged {
		f.deliver(t, &s, p)
		if n := s.noticesSnapshot(wire.NoticeDuplicate); len(n) != 0 {
			t.Fatalf("%s: got notices %+v, want none", name, n)
		}
	}
	if _, finals := s.snapshot(); f.run.count() != 1 || len(finals) != 1 || finals[0].Outcome != wire.OutcomeExited {
		t.Errorf("runs %d, finals %+v; want the first run's final alone", f.run.count(), finals)
	}
	if st := &f.h.Stats; st.Replayed.Load() != int64(len(forged)) || st.Notices.Load() != 0 || st.Rejected.Load() != 0 {
		t.Errorf("Replayed %d Notices %d Rejected %d; want %d 0 0", st.Replayed.Load(), st.Notices.Load(), st.Rejected.Load(), len(forged))
	}
	// The genuine command replayed after all that is still noticed.
	f.deliver(t, &s, f.payload(c, true))
	if n := s.noticesSnapshot(wire.NoticeDuplicate); len(n) != 1 {
		t.Errorf("genuine replay: %d notices, want 1", len(n))
	}
}

func TestNoticeRateLimit(t *testing.T) {
	f := newFixture(t, nil)
	clk := &clock{t: now}
	f.h.o.Now = clk.now
	f.h.notices.max = 2 // remember two ids at most
	var s sink
	pay := map[string][]byte{}
	for _, id := range []string{"a", "b", "c"} {
		pay[id] = f.payload(f.command(id, "ec2", "describe-instances"), true)
		f.deliver(t, &s, pay[id])
	}
	count := func(id string) int {
		n := 0
		for _, x := range s.noticesSnapshot(wire.NoticeDuplicate) {
			if x.ID == id {
				n++
			}
		}
		return n
	}
	// A flood of replays of one id: one notice a minute.
	for i := 0; i < 50; i++ {
		f.deliver(t, &s, pay["a"])
	}
	if count("a") != 1 || f.h.Stats.NoticesLimited.Load() != 49 {
		t.Fatalf("50 replays: %d notices, %d limited; want 1 and 49", count("a"), f.h.Stats.NoticesLimited.Load())
	}
	clk.add(59 * time.Second)
	f.deliver(t, &s, pay["a"])
	if count("a") != 1 {
		t.Fatalf("59 s later: %d notices, want still 1", count("a"))
	}
	// Bounded memory: with a and b remembered and recent, c is suppressed.
	f.deliver(t, &s, pay["b"])
	f.deliver(t, &s, pay["c"])
	if count("b") != 1 || count("c") != 0 || len(f.h.notices.last) != 2 {
		t.Fatalf("b %d c %d notices, %d ids remembered; want 1, 0 (table full), 2", count("b"), count("c"), len(f.h.notices.last))
	}
	clk.add(time.Second) // a's minute is over (b's is not)
	f.deliver(t, &s, pay["c"])
	f.deliver(t, &s, pay["b"])
	if count("c") != 1 || count("b") != 1 || len(f.h.notices.last) != 2 {
		t.Fatalf("a minute on: c %d b %d notices, %d ids; want 1, 1, 2", count("c"), count("b"), len(f.h.notices.last))
	}
	clk.add(time.Minute)
	f.deliver(t, &s, pay["a"])
	if count("a") != 2 {
		t.Errorf("two minutes on: %d notices for a, want 2", count("a"))
	}
	if f.run.count() != 3 {
		t.Errorf("ran %d, want 3 (each command once)", f.run.count())
	}
}

type mqttMsg struct {
	topic   string
	payload []byte
}

// listen subscribes a new client to filter and collects what it gets.
func listen(t *testing.T, url, name, filter string) (func() []mqttMsg, paho.Client) {
	t.Helper()
	var mu sync.Mutex
	var got []mqttMsg
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(name).SetCleanSession(true))
	if tok := c.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		t.Fatalf("%s connect: %v", name, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(50) })
	tok := c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		got = append(got, mqttMsg{m.Topic(), append([]byte(nil), m.Payload()...)})
		mu.Unlock()
	})
	if !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		t.Fatalf("%s subscribe: %v", name, tok.Error())
	}
	return func() []mqttMsg { mu.Lock(); defer mu.Unlock(); return append([]mqttMsg(nil), got...) }, c
}

// Over a real broker and the agent's real link: a redelivered command
// runs once, the hub gets exactly one notice, and the broker still
// retains the first run's final (the notice is not retained).
func TestDuplicateNoticeOverBroker(t *testing.T) {
	url := testenv.StartMosquitto(t, "").URL // a host process: this test also runs as ARMv7 under qemu
	f := newFixture(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	up := make(chan struct{}, 1)
	var lnk *link.Link
	lnk, err := link.New(link.Options{Brokers: []string{url}, ID: "pi1",
		OnCommand: func(p []byte) { f.h.HandleCommand(ctx, p, lnk) },
		OnUp: func(uint64) {
			select {
			case up <- struct{}{}:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- lnk.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; f.h.Wait() })
	select {
	case <-up:
	case <-time.After(30 * time.Second):
		t.Fatal("the agent's link never came up")
	}

	hubGot, hub := listen(t, url, "hub1", wire.ResultFilter("hub1"))
	publish := func(b []byte) {
		t.Helper()
		if tok := hub.Publish(wire.CmdTopic("pi1"), 1, false, b); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
			t.Fatalf("publish command: %v", tok.Error())
		}
	}
	// notices counts duplicate notices; accepted the acknowledgements.
	kinds := func() (finals, notices int, final []byte) {
		accepted := 0
		for _, m := range hubGot() {
			r, err := wire.DecodeResult(m.payload)
			switch {
			case err != nil:
				t.Errorf("bad record on %s: %v", m.topic, err)
			case r.Final != nil:
				finals++
				final = m.payload
			case r.Notice != nil && r.Notice.Reason == wire.NoticeAccepted:
				accepted++
			case r.Notice != nil:
				notices++
				if m.topic != wire.ResultTopic("pi1", "hub1", "bk1") || r.Notice.Reason != wire.NoticeDuplicate || r.Notice.ID != "bk1" {
					t.Errorf("notice %+v on %s", *r.Notice, m.topic)
				}
			}
		}
		if accepted > 1 {
			t.Errorf("%d accepted notices for one command id, want at most 1", accepted)
		}
		return
	}
	p := f.payload(f.command("bk1", "ec2", "describe-instances"), true)
	publish(p)
	testenv.Eventually(t, 30*time.Second, func() string {
		if n, _, _ := kinds(); n != 1 {
			return "no final yet"
		}
		return ""
	})
	publish(p) // the replay
	testenv.Eventually(t, 30*time.Second, func() string {
		if _, n, _ := kinds(); n != 1 {
			return fmt.Sprintf("%d notices, want 1", n)
		}
		return ""
	})
	finals, _, final := kinds()
	if finals != 1 || f.run.count() != 1 {
		t.Fatalf("%d finals, %d runs; want 1 and 1", finals, f.run.count())
	}
	// A new subscriber gets what the broker retains: the first run's final.
	lateGot, _ := listen(t, url, "late-hub", wire.ResultTopic("pi1", "hub1", "bk1"))
	testenv.Eventually(t, 30*time.Second, func() string {
		got := lateGot()
		if len(got) == 0 {
			return "no retained record"
		}
		if len(got) != 1 || !bytes.Equal(got[0].payload, final) {
			return fmt.Sprintf("retained %q, want the first run's final %q", got, final)
		}
		return ""
	})
}
