package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/api"
	"github.com/pifleet/pifleet/hub/internal/slackbot"
	sbt "github.com/pifleet/pifleet/hub/internal/slackbot/slackbottest"
	"github.com/pifleet/pifleet/internal/testenv"
)

// TestSlackAlertThreadAcrossHubRestart: a hub alone with its embedded
// broker posts a Pi's alerts in one thread, and after a restart (its
// JetStream store kept in --state-dir) continues that thread: Ctrl-C of
// the agent starts it, its return replies in it, and Ctrl-C after the
// hub's restart replies in it too, broadcast to the channel. The
// summary of the hub's start stays top-level.
func TestSlackAlertThreadAcrossHubRestart(t *testing.T) {
	ws := sbt.New(t) // before the hub: its cleanup (kill) runs first
	t.Setenv(slackbot.EnvAppToken, sbt.AppToken)
	t.Setenv(slackbot.EnvBotToken, sbt.BotToken)
	t.Setenv(slackbot.EnvAPIURL, ws.APIURL())
	t.Setenv(slackbot.EnvUsers, "U1")
	t.Setenv(slackbot.EnvAlertChannel, "CALERT")
	e := newEnv(t, brokers[0])
	inAlerts := func(r sbt.Record) bool { return r.Channel == "CALERT" }
	alertsSoFar := func() int { return len(ws.Find(sbt.KindPost, inAlerts)) }
	// ready waits until the hub's bot is connected and its store open,
	// then for its quiet start (alerts.QuietStart, 15 s from the bot's
	// start, which is before it connects).
	ready := func() {
		t.Helper()
		testenv.Eventually(t, 60*time.Second, func() string {
			out := e.hub.out.String()
			if !strings.Contains(out, "slack: connected") || !strings.Contains(out, "shared job store open") {
				return "the hub's Slack bot is not connected or its job store not open"
			}
			return ""
		})
		time.Sleep(20 * time.Second)
	}
	// nextAlert waits for the first alert from the from-th on that
	// matches (the agent may report health problems in between: an
	// unsynchronised clock).
	nextAlert := func(what string, from int, match func(sbt.Record) bool) sbt.Record {
		t.Helper()
		var got sbt.Record
		testenv.Eventually(t, 60*time.Second, func() string {
			posts := ws.Find(sbt.KindPost, inAlerts)
			for _, p := range posts[min(from, len(posts)):] {
				if match(p) {
					got = p
					return ""
				}
			}
			var texts []string
			for _, p := range posts {
				texts = append(texts, p.Text)
			}
			return "no alert " + what + " in CALERT; it has " + strings.Join(texts, " | ")
		})
		return got
	}
	about := func(text string) func(sbt.Record) bool {
		return func(r sbt.Record) bool { return strings.Contains(r.Text, text) }
	}
	online := func(d api.Device) bool { return d.Online }

	ready()
	from := alertsSoFar()
	agent := e.startAgent("pi-t")
	e.waitDevice("pi-t", 30*time.Second, "online", online)
	agent.kill(syscall.SIGINT)
	down := nextAlert("about pi-t's shutdown", from, about("pi-t shut down cleanly"))
	// The thread is the one of pi-t's first alert: this one, or a health
	// problem it reported first.
	first := nextAlert("about pi-t", from, about("pi-t "))
	if first.ThreadTS != "" {
		t.Errorf("pi-t's first alert is in thread %q, want a new message", first.ThreadTS)
	}
	if down.TS != first.TS && (down.ThreadTS != first.TS || !down.Broadcast) {
		t.Errorf("pi-t's shutdown: thread %q broadcast %v, want in thread %q, broadcast", down.ThreadTS, down.Broadcast, first.TS)
	}
	from = alertsSoFar()
	agent = e.startAgent("pi-t")
	back := nextAlert("about pi-t's return", from, about("pi-t is back online"))
	if back.ThreadTS != first.TS || back.Broadcast {
		t.Errorf("pi-t's return: thread %q broadcast %v, want in thread %q, not broadcast", back.ThreadTS, back.Broadcast, first.TS)
	}

	// The hub restarts on its state (the agent reconnects to the new broker).
	e.hub.kill(syscall.SIGTERM)
	from = alertsSoFar()
	e.startHub()
	ready()
	e.waitDevice("pi-t", 60*time.Second, "online after the hub's restart", online)
	// The start is summed up: "N Pis reconnected after the hub restart",
	// or "Hub started" when the Pi was back before the quiet start ended.
	summary := nextAlert("summing up the restart", from, func(r sbt.Record) bool {
		return about("after the hub restart")(r) || about("Hub started")(r)
	})
	if summary.ThreadTS != "" {
		t.Errorf("the restart summary is in thread %q, want a new message", summary.ThreadTS)
	}
	from = alertsSoFar()
	agent.kill(syscall.SIGINT)
	again := nextAlert("about pi-t's second shutdown", from, about("pi-t shut down cleanly"))
	if again.ThreadTS != first.TS || !again.Broadcast {
		t.Errorf("pi-t's shutdown after the restart: thread %q broadcast %v, want in thread %q, broadcast", again.ThreadTS, again.Broadcast, first.TS)
	}
}
