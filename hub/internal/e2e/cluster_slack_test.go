package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/api"
	"github.com/pifleet/pifleet/hub/internal/slackbot"
	sbt "github.com/pifleet/pifleet/hub/internal/slackbot/slackbottest"
	"github.com/pifleet/pifleet/internal/testenv"
)

// slackCounters are the Slack counters a test reads (GET /api/stats,
// "slack": slackbot.Stats in snake_case).
type slackCounters struct {
	Commands      uint64 `json:"commands"`
	Duplicates    uint64 `json:"duplicates"`
	ClaimFailed   uint64 `json:"claim_failed"`
	AlertsPosted  uint64 `json:"alerts_posted"`
	AlertsStandby uint64 `json:"alerts_standby"`
}

// slackStats is a hub's Slack counters.
func slackStats(h *clusterHub) (slackCounters, error) {
	var st struct {
		Slack map[string]json.RawMessage `json:"slack"`
	}
	code, err := httpGetJSON(h.env.hubURL()+"/api/stats", &st)
	switch {
	case err != nil || code != 200:
		return slackCounters{}, fmt.Errorf("GET /api/stats on %s: %d %v", h.env.hub.name, code, err)
	case st.Slack == nil:
		return slackCounters{}, fmt.Errorf("%s runs no Slack bot (no \"slack\" in /api/stats)", h.env.hub.name)
	}
	for _, k := range []string{"commands", "duplicates", "claim_failed", "alerts_posted", "alerts_standby"} {
		if _, ok := st.Slack[k]; !ok {
			return slackCounters{}, fmt.Errorf("%s: no %q among the Slack counters in /api/stats", h.env.hub.name, k)
		}
	}
	b, _ := json.Marshal(st.Slack)
	var c slackCounters
	return c, json.Unmarshal(b, &c)
}

// sumSlack adds up a counter over the hubs.
func sumSlack(t *testing.T, hubs []*clusterHub, f func(slackCounters) uint64) uint64 {
	t.Helper()
	var n uint64
	for _, h := range hubs {
		s, err := slackStats(h)
		if err != nil {
			t.Fatal(err)
		}
		n += f(s)
	}
	return n
}

// Three hubs of one cluster serve one Slack app (a fake workspace in this
// process that behaves like Slack: each envelope to one of the open Socket
// Mode connections, sent again to another when no ack comes in 3 s).
// Every hub holds a connection; a mention is answered once, also when its
// ack is lost and the retry reaches another hub; a hub killed with kill -9
// → mentions are answered once by the hubs left; a Pi lost → one alert.
func TestClusterSlackThreeHubs(t *testing.T) {
	ws := sbt.New(t) // before the hubs: their cleanup (kill) runs first
	// The hubs inherit this environment (start does not replace it).
	t.Setenv(slackbot.EnvAppToken, sbt.AppToken)
	t.Setenv(slackbot.EnvBotToken, sbt.BotToken)
	t.Setenv(slackbot.EnvAPIURL, ws.APIURL())
	t.Setenv(slackbot.EnvUsers, "U1")
	t.Setenv(slackbot.EnvAlertChannel, "CALERT")
	hubs := startCluster(t)

	ws.WaitConnections(3, 90*time.Second)
	// Each hub's alerts start quiet (alerts.QuietStart) when its bot
	// starts, which is before it connects: after this, 20 s are enough.
	// (Counted from before the cluster formed, a slow start left the Pi's
	// loss inside a hub's quiet start, summarised in "Hub started".)
	began := time.Now()
	for _, h := range hubs {
		if _, err := slackStats(h); err != nil {
			t.Fatal(err)
		}
	}
	// Steady state: every hub has its shared store (where the Slack
	// events are claimed) and its results subscription, and one hub holds
	// the alerts lease.
	testenv.Eventually(t, 120*time.Second, func() string {
		for _, h := range hubs {
			out := h.env.hub.out.String()
			if !strings.Contains(out, "shared job store open") {
				return h.env.hub.name + " has not opened the shared job store yet"
			}
			if !strings.Contains(out, "subscribed to results") {
				return h.env.hub.name + " has not subscribed to its results yet"
			}
		}
		return oneAlertLeader(hubs)
	})
	agent := hubs[1].env.startAgentWith("pi-s1", brokersFrom(hubs, 1))
	hubs[1].env.waitDevice("pi-s1", 60*time.Second, "online", func(d api.Device) bool { return d.Online })

	// answeredOnce waits for the answer in the mention's thread, then
	// until every envelope is acked and the hubs have counted n commands
	// and dups duplicates in all, and checks that there is one answer.
	answeredOnce := func(live []*clusterHub, ts string, commands, dups uint64) sbt.Record {
		t.Helper()
		var post sbt.Record
		testenv.Eventually(t, 90*time.Second, func() string {
			posts := ws.Find(sbt.KindPost, func(r sbt.Record) bool { return r.Channel == "C1" && r.ThreadTS == ts })
			if len(posts) == 0 {
				return "no answer in the thread of " + ts
			}
			post = posts[0]
			if n := ws.Pending(); n != 0 {
				return fmt.Sprintf("%d envelopes not acked yet", n)
			}
			if c, d := sumSlack(t, live, func(s slackCounters) uint64 { return s.Commands }),
				sumSlack(t, live, func(s slackCounters) uint64 { return s.Duplicates }); c != commands || d != dups {
				return fmt.Sprintf("the hubs counted %d commands and %d duplicates, want %d and %d", c, d, commands, dups)
			}
			return ""
		})
		if posts := ws.Find(sbt.KindPost, func(r sbt.Record) bool { return r.Channel == "C1" && r.ThreadTS == ts }); len(posts) != 1 {
			t.Errorf("mention %s answered %d times, want once: %+v", ts, len(posts), posts)
		}
		if !strings.Contains(post.Text, "pi-s1") {
			t.Errorf("answer to `fleet` does not list pi-s1: %q", post.Text)
		}
		return post
	}

	ws.Mention("EvC1", "U1", "C1", "1700000301.000100", "fleet")
	answeredOnce(hubs, "1700000301.000100", 1, 0)

	// The ack is lost: 3 s later the workspace sends the event again, to
	// the next connection (another hub), which must know it was answered.
	ws.LoseAcks(1)
	env := ws.Mention("EvC2", "U1", "C1", "1700000302.000100", "fleet")
	answeredOnce(hubs, "1700000302.000100", 2, 1)
	var conns []int
	for _, d := range ws.Deliveries() {
		if strings.HasPrefix(d.Envelope, env) {
			conns = append(conns, d.Conn)
		}
	}
	if len(conns) != 2 || conns[0] == conns[1] {
		t.Errorf("the mention with the lost ack went to connections %v, want two different ones", conns)
	}
	if n := sumSlack(t, hubs, func(s slackCounters) uint64 { return s.ClaimFailed }); n != 0 {
		t.Errorf("%d claims failed before any fault", n)
	}

	// Hub 1 dies without a word. Mentions sent at once: any that goes to
	// its connection before the workspace noticed is sent again after 3 s.
	hubs[0].env.hub.kill(syscall.SIGKILL)
	killed := time.Now()
	rest := hubs[1:]
	base := sumSlack(t, rest, func(s slackCounters) uint64 { return s.Commands })
	var took []time.Duration
	for i := range 3 {
		ts := fmt.Sprintf("1700000303.%06d", i)
		sent := time.Now()
		ws.Mention(fmt.Sprintf("EvC3-%d", i), "U1", "C1", ts, "fleet")
		post := answeredOnce(rest, ts, base+uint64(i)+1, sumSlack(t, rest, func(s slackCounters) uint64 { return s.Duplicates }))
		took = append(took, post.At.Sub(sent))
	}
	ws.WaitConnections(2, 30*time.Second)
	var retries []sbt.Delivery
	for _, d := range ws.Deliveries() {
		if d.Attempt > 0 && d.At.After(killed) {
			retries = append(retries, d)
		}
	}
	t.Logf("hub1 killed: three mentions answered once each, in %v after they were sent (%d sent again after a missing ack)", took, len(retries))

	// A Pi lost: one alert, from the hub that holds the alerts lease.
	testenv.Eventually(t, 60*time.Second, func() string { return oneAlertLeader(rest) })
	if quiet := 20 * time.Second; time.Since(began) < quiet { // alerts.QuietStart: only summaries
		time.Sleep(quiet - time.Since(began))
	}
	decided := func() uint64 {
		return sumSlack(t, rest, func(s slackCounters) uint64 { return s.AlertsPosted + s.AlertsStandby })
	}
	before := decided()
	agent.kill(syscall.SIGKILL)
	lostAt := time.Now()
	// Its will says "lost its connection"; should the will not be stored
	// (JetStream still electing leaders after the node died), the hubs
	// take the silent Pi as lost after its heartbeat: "went offline".
	lost := func(r sbt.Record) bool {
		return r.Channel == "CALERT" && (strings.Contains(r.Text, "pi-s1 lost its connection") || strings.Contains(r.Text, "pi-s1 went offline"))
	}
	testenv.Eventually(t, 150*time.Second, func() string {
		if len(ws.Find(sbt.KindPost, lost)) == 0 {
			var texts []string
			for _, r := range ws.Find(sbt.KindPost, func(r sbt.Record) bool { return r.Channel == "CALERT" }) {
				texts = append(texts, r.Text)
			}
			return fmt.Sprintf("no alert about pi-s1's loss in CALERT; it has %q", texts)
		}
		// Both hubs left have decided on it: one posted, one stood by.
		if n := decided(); n < before+2 {
			return fmt.Sprintf("the hubs left decided %d alerts since the agent died, want 2", n-before)
		}
		return ""
	})
	alert := ws.Find(sbt.KindPost, lost)[0]
	t.Logf("pi-s1 killed: %q posted %v later", alert.Text, alert.At.Sub(lostAt))
	if n := len(ws.Find(sbt.KindPost, lost)); n != 1 {
		t.Errorf("pi-s1's loss was posted %d times, want once: %+v", n, ws.Find(sbt.KindPost, lost))
	}
	for _, p := range ws.Find(sbt.KindPost, func(r sbt.Record) bool { return r.Channel == "C1" }) {
		if p.ThreadTS == "" {
			t.Errorf("an answer outside any thread: %+v", p)
		}
	}
}
