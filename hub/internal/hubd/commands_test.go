package hubd

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/dispatch"
	"github.com/pifleet/pifleet/hub/internal/fleetserver"
	"github.com/pifleet/pifleet/hub/internal/slackbot"
	sbt "github.com/pifleet/pifleet/hub/internal/slackbot/slackbottest"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/wire"
)

type fakePoster struct {
	mu   sync.Mutex
	late []slackbot.Late
}

func (f *fakePoster) PostLate(l slackbot.Late) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.late = append(f.late, l)
	return true
}

func result(id, source, channel, thread string) dispatch.Result {
	return dispatch.Result{ID: id, Device: "pi1", Tool: "aws", Argv: []string{"s3", "ls"},
		Final:   wire.Final{Outcome: wire.OutcomeExited, DurationMS: 1500, Output: "bucket-a\n"},
		Output:  "bucket-a\n",
		Request: dispatch.Request{User: "U2", Channel: channel, Source: source, Text: "aws pi1 s3 ls", Thread: thread}}
}

// TestLateResultsGoToSlackOnlyWhenAskedThere: a result asked in Slack goes
// to the bot, addressed to its channel and thread; HTTP and CLI results
// are only logged; every one is logged, also while Slack is off.
func TestLateResultsGoToSlackOnlyWhenAskedThere(t *testing.T) {
	logs := &testenv.SyncBuffer{}
	late := &lateResults{log: slog.New(slog.NewTextHandler(logs, nil))}
	late.handle(result("c1", "slack", "C1", "1700000001.000100")) // Slack off
	bot := &fakePoster{}
	late.useSlack(bot)
	late.handle(result("c2", "slack", "C1", "1700000002.000100"))
	late.handle(result("c3", "http", "", ""))
	late.handle(result("c4", "cli", "", ""))

	if len(bot.late) != 1 {
		t.Fatalf("bot got %d late results, want 1 (c2): %+v", len(bot.late), bot.late)
	}
	l := bot.late[0]
	if l.Channel != "C1" || l.Thread != "1700000002.000100" || l.User != "U2" || l.Command != "aws pi1 s3 ls" ||
		!strings.Contains(l.Reply.Text, "Late result from pi1 for `aws s3 ls`: ✅ exit 0") {
		t.Errorf("late result for Slack = %+v", l)
	}
	out := logs.String()
	for _, id := range []string{"c1", "c2", "c3", "c4"} {
		if !strings.Contains(out, `late command result" id=`+id+" ") {
			t.Errorf("no log line for %s:\n%s", id, out)
		}
	}
	if !strings.Contains(out, `id=c1 `) || !strings.Contains(out, `slack="off: not posted"`) {
		t.Errorf("the log does not say c1 was not posted because Slack is off:\n%s", out)
	}
}

// TestLateResultAfterRestartReachesTheSlackThread runs the hub's wiring for
// real: a state file left by a hub that restarted mid-command, the hub
// (embedded broker) with the dispatcher from wireCommands, the Slack bot
// against the fake workspace, and the Pi's retained final arriving once the
// hub connects. The Slack request's result lands in its thread; the HTTP
// request's is logged only.
func TestLateResultAfterRestartReachesTheSlackThread(t *testing.T) {
	const within = 30 * time.Second
	stateDir := t.TempDir()
	expires := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	state := fmt.Sprintf(`[
 {"id":"c0000000000000001","device":"pi1","tool":"aws","argv":["s3","ls"],"expires":%q,
  "request":{"user":"U2","channel":"C1","source":"slack","text":"aws pi1 s3 ls","thread":"1700000001.000100"}},
 {"id":"c0000000000000002","device":"pi1","tool":"aws","argv":["s3","ls"],"expires":%q,
  "request":{"user":"http","source":"http","text":"aws pi1 s3 ls"}}]`, expires, expires)
	if err := os.WriteFile(filepath.Join(stateDir, "dispatch-hub.json"), []byte(state), 0o600); err != nil {
		t.Fatal(err)
	}

	logs := &testenv.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ready := make(chan struct{})
	h, err := fleetserver.New(fleetserver.Config{ID: "hub", MQTTListen: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		HTTPListen: "127.0.0.1:0", Logger: log, Ready: func(*fleetserver.Hub) { close(ready) }})
	if err != nil {
		t.Fatal(err)
	}
	late, err := wireCommands(CommandsConfig{StateDir: stateDir}, log, h)
	if err != nil {
		t.Fatal(err)
	}
	ws := sbt.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	slackCfg := slackbot.Config{XAppToken: sbt.AppToken, XBotToken: sbt.BotToken, APIURL: ws.APIURL(), Users: []string{"U2"},
		PostInterval: 20 * time.Millisecond}
	bot, slackDone, err := slackbot.Serve(ctx, slackCfg, h.Engine, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	late.useSlack(bot)
	hubDone := make(chan error, 1)
	go func() { hubDone <- h.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-hubDone; err != nil {
			t.Errorf("hub Run: %v", err)
		}
		<-slackDone
		if t.Failed() {
			t.Logf("--- hub log:\n%s", logs)
		}
	})
	select {
	case <-ready:
	case err := <-hubDone:
		t.Fatalf("hub stopped: %v", err)
	case <-time.After(within):
		t.Fatal("hub not ready")
	}

	// The Pi's finals for the commands in the leftover state file, as
	// retained records (published here once the hub is up: the dispatcher
	// treats them as it would the broker's retained copies on resubscribe,
	// which the dispatch package's restart tests cover with a real agent).
	// After the dispatcher's SUBSCRIBE: nats-server replays retained
	// messages from a per-node view it fills asynchronously, so a record
	// published while the subscription is being made may be neither
	// replayed nor delivered live (CI saw c1 missed that way).
	testenv.Eventually(t, within, func() string {
		if !strings.Contains(logs.String(), "subscribed to results") {
			return "the dispatcher has not subscribed to its results yet"
		}
		return ""
	})
	pub := dispatch.Paho(h.MQTT)
	for i, out := range []string{"bucket-slack\n", "bucket-http\n"} {
		id := fmt.Sprintf("c%016d", i+1)
		b, _ := json.Marshal(wire.Final{V: wire.ProtocolVersion, Kind: wire.KindFinal, ID: id, Device: "pi1", Seq: 1,
			Outcome: wire.OutcomeExited, DurationMS: 2100, Output: out})
		if err := pub.Publish(wire.ResultTopic("pi1", "hub", id), 1, true, b); err != nil {
			t.Fatal(err)
		}
	}

	var post sbt.Record
	testenv.Eventually(t, within, func() string {
		posts := ws.Find(sbt.KindPost, nil)
		if len(posts) == 0 {
			return "no late result posted in Slack"
		}
		post = posts[0]
		if n := strings.Count(logs.String(), "late command result"); n < 2 {
			return fmt.Sprintf("%d late results logged, want 2", n)
		}
		return ""
	})
	if post.Channel != "C1" || post.ThreadTS != "1700000001.000100" {
		t.Errorf("late result posted in %s thread %q, want C1 thread 1700000001.000100", post.Channel, post.ThreadTS)
	}
	if !strings.Contains(string(post.Blocks), "bucket-slack") || !strings.Contains(post.Text, "Late result from pi1") {
		t.Errorf("posted %q / %s, want pi1's late result", post.Text, post.Blocks)
	}
	// The HTTP request's result was logged, and handled before or after
	// the Slack one by the same synchronous callback: it is not posted.
	if posts := ws.Find(sbt.KindPost, nil); len(posts) != 1 || strings.Contains(string(posts[0].Blocks), "bucket-http") {
		t.Errorf("posts %+v, want only the Slack request's result", posts)
	}
	if !strings.Contains(logs.String(), "id=c0000000000000002") {
		t.Errorf("the HTTP request's late result is not logged:\n%s", logs)
	}
}
