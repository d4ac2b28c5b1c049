package dispatch

// End to end (real broker, real agent process, real containers; uses the
// harness in e2e_test.go): a command redelivered to the Pi is reported
// back as a duplicate notice, which the hub logs and counts without
// taking it for the result.

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pifleet/pifleet/hub/internal/chat"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/wire"
)

func TestDockerDuplicateNotice(t *testing.T) {
	e := newE2E(t)
	a := e.startAgent("pi1")
	h := e.startHub("a")
	e.waitOnline("pi1", true)

	// Another client sees the signed commands the hub sends, to replay
	// them (it gets its own replays too: those are not recorded twice).
	var mu sync.Mutex
	var cmds [][]byte
	spy := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(e.brokerURL).SetClientID("spy"))
	if tok := spy.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		t.Fatalf("spy connect: %v", tok.Error())
	}
	defer spy.Disconnect(50)
	if tok := spy.Subscribe(wire.CmdTopic("pi1"), 1, func(_ mqtt.Client, m mqtt.Message) {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range cmds {
			if bytes.Equal(c, m.Payload()) {
				return
			}
		}
		cmds = append(cmds, append([]byte(nil), m.Payload()...))
	}); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		t.Fatalf("spy subscribe: %v", tok.Error())
	}
	replay := func(i int) {
		t.Helper()
		mu.Lock()
		b := cmds[i]
		mu.Unlock()
		if tok := spy.Publish(wire.CmdTopic("pi1"), 1, false, b); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
			t.Fatalf("replay: %v", tok.Error())
		}
	}
	seen := func(n int) func() string {
		return func() string {
			mu.Lock()
			defer mu.Unlock()
			if len(cmds) < n {
				return fmt.Sprintf("%d commands seen, want %d", len(cmds), n)
			}
			return ""
		}
	}

	// A redelivery while the command runs: the hub counts it and goes on
	// waiting for the real final.
	done := make(chan chat.Reply, 1)
	running := a.count("running")
	go func() { done <- ask(h, "job", "U2", "pi1", "6") }()
	testenv.Eventually(t, 30*time.Second, seen(1))
	testenv.Eventually(t, 30*time.Second, func() string {
		if a.count("running") == running {
			return "not running yet"
		}
		return ""
	})
	replay(0)
	// Normally the notice comes back while the job still runs (a counted
	// duplicate); on a very slow machine it may come after the final (a
	// stray one). Which path counts is the unit tests' business
	// (notice_test.go); here: exactly one notice, and the real result.
	testenv.Eventually(t, 30*time.Second, func() string {
		if st := h.d.Stats(); st.Duplicates+st.StrayDuplicates != 1 {
			return fmt.Sprintf("hub stats %+v, want one duplicate notice", st)
		}
		return ""
	})
	first := h.d.Stats()
	t.Logf("redelivery during the run: %+v", first)
	select {
	case r := <-done:
		if !strings.Contains(r.Text, "pi1: ✅ exit 0") || !strings.Contains(r.Text, "slept 6") {
			t.Errorf("reply %q, want the real result", r.Text)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("no reply")
	}
	if n := a.count("telling the hub"); n != 1 {
		t.Errorf("agent told the hub %d times, want 1:\n%s", n, a.log.String())
	}

	// A replay of a finished command: a warning and a stray count; the
	// command never runs again and nothing reaches OnLateResult.
	r := ask(h, "job", "U2", "pi1", "0")
	if !strings.Contains(r.Text, "pi1: ✅ exit 0") {
		t.Fatalf("second command: %q", r.Text)
	}
	testenv.Eventually(t, 30*time.Second, seen(2))
	running = a.count("running")
	replay(1)
	testenv.Eventually(t, 30*time.Second, func() string {
		if st := h.d.Stats(); st.StrayDuplicates != first.StrayDuplicates+1 || st.Duplicates != first.Duplicates {
			return fmt.Sprintf("hub stats %+v (before %+v), want one more stray duplicate", st, first)
		}
		return ""
	})
	if a.count("running") != running {
		t.Error("the replayed command ran again")
	}
	select {
	case r := <-h.late:
		t.Errorf("a notice reached OnLateResult: %+v", r)
	default:
	}
	// Nothing is left retained on the broker.
	testenv.Eventually(t, 30*time.Second, func() string {
		if n := retainedResults(t, e.brokerURL); n != 0 {
			return fmt.Sprintf("%d retained results on the broker", n)
		}
		return ""
	})
}

// Pis read commands at QoS 0, so a command published while its Pi is
// away is gone; the hub sends it again until the Pi acknowledges it. The
// Pi comes back a moment later, runs it once and acknowledges once.
func TestDockerResendReachesAPiThatWasAway(t *testing.T) {
	e := newE2E(t)
	e.hubOpts = func(o *Options) { o.AllowOffline = true }
	a := e.startAgent("pi1")
	h := e.startHub("a")
	e.waitOnline("pi1", true)
	a.stop()
	e.waitOnline("pi1", false)

	answer := make(chan chat.Reply, 1)
	go func() { answer <- ask(h, "job", "U2", "pi1", "echo", "back") }()
	testenv.Eventually(t, 10*time.Second, func() string {
		if len(h.d.Pending()) != 1 {
			return "the command is not in flight yet"
		}
		return ""
	})
	a2 := e.startAgent("pi1") // the same data dir: the same id store
	r := <-answer
	if r.Problem || !strings.Contains(r.Text, "[back]") {
		t.Fatalf("reply %q, want the command's output", r.Text)
	}
	st := h.d.Stats()
	if st.Resent < 1 || st.Accepted != 1 {
		t.Errorf("Stats %+v, want at least one copy re-sent and exactly one acknowledgement", st)
	}
	if n := a2.count("msg=running"); n != 1 {
		t.Errorf("the agent ran the command %d times, want once:\n%s", n, a2.log.String())
	}
	// Nothing is sent after the acknowledgement.
	sent := st.Resent
	time.Sleep(3 * time.Second)
	if now := h.d.Stats().Resent; now != sent {
		t.Errorf("%d copies re-sent after the Pi acknowledged, want none", now-sent)
	}
}
