package slackbot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pifleet/pifleet/hub/internal/chat"
	"github.com/pifleet/pifleet/hub/internal/jobs"
	sbt "github.com/pifleet/pifleet/hub/internal/slackbot/slackbottest"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/testenv/natstest"
)

// memClaim is a shared claim in memory: what the hubs' JetStream bucket
// is, minus the network.
type memClaim struct {
	mu    sync.Mutex
	taken map[string]bool
}

func (m *memClaim) Claim(_ context.Context, key string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.taken == nil {
		m.taken = map[string]bool{}
	}
	if m.taken[key] {
		return false, nil
	}
	m.taken[key] = true
	return true, nil
}

// natsClaims returns n claims, each a hub's own connection to one real
// nats-server with JetStream, through the hubs' job store.
func natsClaims(t *testing.T, n int) []func(context.Context, string) (bool, error) {
	t.Helper()
	s := natstest.Server(t)
	var out []func(context.Context, string) (bool, error)
	for range n {
		nc, err := nats.Connect(s.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		store, err := jobs.Open(ctx, nc, 1)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, store.ClaimEvent)
	}
	return out
}

// confirming answers every request with a confirm button.
func confirming() *sbt.Engine {
	return &sbt.Engine{Answer: func(r chat.Request) chat.Reply {
		if strings.HasPrefix(r.Text, "reboot") {
			return chat.Reply{Title: "Reboot pi-01?", Text: "This reboots pi-01.", Confirm: &chat.Confirm{Token: "tok-7", Summary: "Reboot pi-01"}}
		}
		return chat.Reply{Text: "you said: " + r.Text}
	}}
}

// Several hubs hold one Socket Mode connection each to one Slack app; Slack
// gives each envelope to one of them and, when it sees no ack in time,
// sends it again, maybe to another hub. With a shared claim each mention,
// slash command and button click is served once across the hubs, and a
// stopped hub's share goes to the others.
func TestSeveralHubsServeEachEnvelopeOnce(t *testing.T) {
	for _, tc := range []struct {
		name   string
		claims func(t *testing.T) []func(context.Context, string) (bool, error)
	}{
		{"memory", func(*testing.T) []func(context.Context, string) (bool, error) {
			m := &memClaim{}
			return []func(context.Context, string) (bool, error){m.Claim, m.Claim}
		}},
		{"jetstream", func(t *testing.T) []func(context.Context, string) (bool, error) { return natsClaims(t, 2) }},
	} {
		t.Run(tc.name, func(t *testing.T) { testSeveralHubs(t, tc.claims(t)) })
	}
}

func testSeveralHubs(t *testing.T, claims []func(context.Context, string) (bool, error)) {
	ws := sbt.New(t)
	// A retry a second after the lost ack, not Slack's 3 s: a short test.
	ws.SetAckTimeout(time.Second, sbt.MaxRetries)
	var hubs []*session
	for i, claim := range claims {
		cfg := testConfig(ws)
		cfg.Claim = claim
		hubs = append(hubs, start(t, ws, cfg, confirming(), nil))
		ws.WaitConnections(i+1, wait)
	}
	asked := func() (n int) {
		for _, h := range hubs {
			n += len(h.eng.Asked())
		}
		return n
	}
	duplicates := func() (n uint64) {
		for _, h := range hubs {
			n += h.bot.Stats().Duplicates
		}
		return n
	}
	// connOf is the connection envelope went to.
	connOf := func(env string) int {
		for _, d := range ws.Deliveries() {
			if d.Envelope == env {
				return d.Conn
			}
		}
		t.Fatalf("envelope %s was not delivered: %+v", env, ws.Deliveries())
		return 0
	}
	// retried waits until env was sent again and the retry acked, and
	// returns the retry's delivery.
	retried := func(env string) sbt.Delivery {
		t.Helper()
		var d sbt.Delivery
		testenv.Eventually(t, wait, func() string {
			for _, x := range ws.Deliveries() {
				if x.Envelope == env+"~retry1" {
					if _, ok := ws.Acked(x.Envelope); ok {
						d = x
						return ""
					}
				}
			}
			return fmt.Sprintf("envelope %s not sent again and acked: %+v", env, ws.Deliveries())
		})
		return d
	}
	// A mention to each connection in turn: each answered once, by the
	// hub that got it.
	e1 := ws.Mention("EvH1", "U1", "C1", "1700000201.000100", "fleet")
	waitPosts(t, ws, sbt.KindPost, 1, inThread("C1", "1700000201.000100"))
	e2 := ws.Mention("EvH2", "U1", "C1", "1700000202.000100", "fleet")
	waitPosts(t, ws, sbt.KindPost, 1, inThread("C1", "1700000202.000100"))
	if c1, c2 := connOf(e1), connOf(e2); c1 == c2 {
		t.Errorf("both mentions went to connection %d, want one each (round robin)", c1)
	}
	for i, h := range hubs {
		if n := len(h.eng.Asked()); n != 1 {
			t.Errorf("hub %d was asked %d times, want once (one mention each)", i, n)
		}
	}

	// The ack of a mention is lost: Slack sends it again, to the other
	// hub, which knows it was answered.
	before, dups := asked(), duplicates()
	ws.LoseAcks(1)
	e3 := ws.Mention("EvH3", "U1", "C1", "1700000203.000100", "fleet")
	if r := retried(e3); r.Conn == connOf(e3) || r.Attempt != 1 {
		t.Errorf("retry %+v: want attempt 1 on another connection than %d", r, connOf(e3))
	}
	testenv.Eventually(t, wait, func() string {
		if duplicates() != dups+1 {
			return fmt.Sprintf("duplicates = %d, want %d: the retry was not recognised", duplicates(), dups+1)
		}
		return ""
	})
	if n := len(ws.Find(sbt.KindPost, inThread("C1", "1700000203.000100"))); n != 1 || asked() != before+1 {
		t.Errorf("a retried mention: %d answers, engines asked %d times; want 1 and 1: %s", n, asked()-before, dump(ws.Records()))
	}

	// The same for a slash command: it runs once.
	before, dups = asked(), duplicates()
	ws.LoseAcks(1)
	e4 := ws.Slash("U1", "C2", "where pi-01")
	retried(e4)
	testenv.Eventually(t, wait, func() string {
		if duplicates() != dups+1 {
			return fmt.Sprintf("duplicates = %d, want %d: the retried slash command was not recognised", duplicates(), dups+1)
		}
		return ""
	})
	if n := len(ws.Find(sbt.KindPost, func(r sbt.Record) bool { return r.Channel == "C2" })); n != 1 || asked() != before+1 {
		t.Errorf("a retried slash command: %d answers, engines asked %d times; want 1 and 1: %s", n, asked()-before, dump(ws.Records()))
	}

	// And for a confirm button: the action runs once.
	ws.Mention("EvH5", "U1", "C1", "1700000205.000100", "reboot pi-01")
	question := waitPosts(t, ws, sbt.KindPost, 1, inThread("C1", "1700000205.000100"))[0]
	dups = duplicates()
	ws.LoseAcks(1)
	e5 := ws.Click("U1", question, ActionConfirm, "tok-7")
	retried(e5)
	testenv.Eventually(t, wait, func() string {
		if duplicates() != dups+1 {
			return fmt.Sprintf("duplicates = %d, want %d: the retried click was not recognised", duplicates(), dups+1)
		}
		return ""
	})
	waitPosts(t, ws, sbt.KindPost, 2, inThread("C1", "1700000205.000100"))
	var confirmed int
	for _, h := range hubs {
		confirmed += len(h.eng.Confirmed())
	}
	if confirmed != 1 {
		t.Errorf("the action was confirmed %d times across the hubs, want once", confirmed)
	}

	// One hub stops: its connection closes, and every mention goes to the
	// hub that is left.
	hubs[0].stop(t)
	ws.WaitConnections(1, wait)
	was := len(hubs[1].eng.Asked())
	for i := range 2 {
		ts := fmt.Sprintf("1700000206.%06d", i)
		ws.Mention(fmt.Sprintf("EvH6-%d", i), "U1", "C1", ts, "fleet")
		waitPosts(t, ws, sbt.KindPost, 1, inThread("C1", ts))
	}
	if got := len(hubs[1].eng.Asked()) - was; got != 2 {
		t.Errorf("the hub left was asked %d times, want both mentions", got)
	}
	hubs[1].stop(t)
	for _, h := range hubs {
		if s := h.bot.Stats(); s.ClaimFailed != 0 {
			t.Errorf("claims failed: %+v", s)
		}
	}
	if n := len(ws.Find(sbt.KindPost, nil)); n != 8 {
		t.Errorf("%d posts, want 8 (one answer per command and the confirmed action's result): %s", n, dump(ws.Records()))
	}
}

// A shared claim that fails (the cluster is unreachable) does not cost
// the answer: the bot answers, counts and logs it.
func TestFailingClaimStillAnswers(t *testing.T) {
	ws := sbt.New(t)
	cfg := testConfig(ws)
	cfg.Claim = func(context.Context, string) (bool, error) {
		return false, errors.New("nats: no responders available for request")
	}
	s := start(t, ws, cfg, &sbt.Engine{}, nil)
	for i := range 5 {
		ts := fmt.Sprintf("1700000210.%06d", i)
		ws.Mention(fmt.Sprintf("EvF%d", i), "U1", "C1", ts, "fleet")
		waitPosts(t, ws, sbt.KindPost, 1, inThread("C1", ts))
	}
	// A retry to the same hub is still caught by its own memory.
	ws.Event("EvF0", 1, sbt.MentionEvent("U1", "C1", "1700000210.000000", "fleet"))
	testenv.Eventually(t, wait, func() string {
		if s.bot.Stats().Duplicates != 1 {
			return "the retry was not recognised"
		}
		return ""
	})
	s.stop(t)
	if n := len(ws.Find(sbt.KindPost, nil)); n != 5 {
		t.Errorf("%d answers, want 5", n)
	}
	// Two keys a mention (its event, its message), five mentions.
	if got := s.bot.Stats().ClaimFailed; got != 10 {
		t.Errorf("ClaimFailed = %d, want 10", got)
	}
	if n := strings.Count(s.logs.String(), "could not claim the event"); n != 3 {
		t.Errorf("logged the failed claim %d times, want 3 (rate-limited)", n)
	}
}
