package slackbot

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/dispatch"
	sbt "github.com/pifleet/pifleet/hub/internal/slackbot/slackbottest"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/wire"
)

// lateResult is a cloud command's result as the dispatcher hands it to
// OnLateResult.
func lateResult(channel, thread, out string, exit int) dispatch.Result {
	return dispatch.Result{ID: "c0123456789abcdef", Device: "pi-07", Tool: "aws", Argv: []string{"s3", "ls"},
		Final: wire.Final{V: 1, Kind: wire.KindFinal, ID: "c0123456789abcdef", Device: "pi-07", Outcome: wire.OutcomeExited,
			ExitCode: exit, DurationMS: 3200, Output: out},
		Output:  out,
		Request: dispatch.Request{User: "U2", Channel: channel, Source: "slack", Text: "aws pi-07 s3 ls", Thread: thread}}
}

// lateOf is what the hub hands the bot for r (hub/internal/cli).
func lateOf(r dispatch.Result) Late {
	return Late{Channel: r.Request.Channel, Thread: r.Request.Thread, User: r.Request.User, Command: r.Request.Text,
		Reply: dispatch.RenderLate(r, 0)}
}

func TestRenderLateGolden(t *testing.T) {
	for name, r := range map[string]dispatch.Result{
		"ok":     lateResult("C1", "1700000001.000100", "2026-01-02 03:04:05 bucket-a\n2026-01-02 03:04:06 bucket-<b>\n", 0),
		"failed": lateResult("C1", "1700000001.000100", "An error occurred (AccessDenied) when calling the ListBuckets operation: Access Denied\n", 254),
		"long":   lateResult("C1", "", lines(500, "2026-01-02 03:04:05 bucket-%03d"), 0),
	} {
		t.Run(name, func(t *testing.T) {
			m := renderLate(lateOf(r))
			checkLimits(t, m)
			checkGolden(t, "late-"+name, m)
		})
	}
}

func TestLateResultsGoToTheThreadTheyWereAskedIn(t *testing.T) {
	ws := sbt.New(t)
	ws.NotInChannel("C9")
	s := start(t, ws, testConfig(ws), &sbt.Engine{}, nil)

	// A mention's result: in the mention's thread, mentioning who asked.
	if !s.bot.PostLate(lateOf(lateResult("C1", "1700000007.000100", "bucket-a\n", 0))) {
		t.Fatal("PostLate refused a late result while the bot runs")
	}
	post := waitPosts(t, ws, sbt.KindPost, 1, inThread("C1", "1700000007.000100"))[0]
	blocks := text(post.Blocks)
	for _, want := range []string{"Late result from *pi-07* for `aws s3 ls`: ✅ exit 0 in 3.2s", "bucket-a", "<@U2> asked `aws pi-07 s3 ls`"} {
		if !strings.Contains(blocks, want) {
			t.Errorf("late result lacks %q:\n%s", want, blocks)
		}
	}
	if !strings.HasPrefix(post.Text, "<@U2> ") {
		t.Errorf("fallback text %q does not mention who asked", post.Text)
	}

	// A long result: a preview in the thread, the whole output as a file
	// in the same thread.
	long := lines(10000, "2026-01-02 03:04:05 bucket-%05d")
	s.bot.PostLate(lateOf(lateResult("C1", "1700000008.000100", long, 0)))
	post = waitPosts(t, ws, sbt.KindPost, 1, inThread("C1", "1700000008.000100"))[0]
	done := waitPosts(t, ws, sbt.KindComplete, 1, inThread("C1", "1700000008.000100"))[0]
	if done.Seq < post.Seq || done.FileName != "pi-07-s3-ls.txt" {
		t.Errorf("file %q (#%d) after message #%d, want pi-07-s3-ls.txt after it", done.FileName, done.Seq, post.Seq)
	}
	if up := ws.Find(sbt.KindUpload, func(r sbt.Record) bool { return r.FileID == done.FileID }); len(up) != 1 || up[0].Content != long {
		t.Errorf("uploaded %d records, want the whole %d-byte output once", len(up), len(long))
	}
	if len(post.Blocks) > 5000 {
		t.Errorf("the message is %d bytes of blocks; the output belongs in the file", len(post.Blocks))
	}

	// A slash command's result has no thread: a new message in the channel.
	s.bot.PostLate(lateOf(lateResult("C2", "", "bucket-b\n", 0)))
	if p := waitPosts(t, ws, sbt.KindPost, 1, func(r sbt.Record) bool { return r.Channel == "C2" })[0]; p.ThreadTS != "" {
		t.Errorf("slash late result in thread %q, want a new channel message", p.ThreadTS)
	}

	// Where Slack refuses it, it is counted and logged.
	s.bot.PostLate(lateOf(lateResult("C9", "1700000009.000100", "x\n", 0)))
	testenv.Eventually(t, wait, func() string {
		if st := s.bot.Stats(); st.LatePosted != 3 || st.LateFailed != 1 || st.LateDropped != 0 {
			return fmt.Sprintf("stats %+v, want 3 late posted, 1 failed, none dropped", st)
		}
		return ""
	})
	if !strings.Contains(s.logs.String(), "late answer not posted") {
		t.Errorf("the failure is not logged:\n%s", s.logs)
	}
}

func TestLateResultsOnlyWhileTheBotRuns(t *testing.T) {
	ws := sbt.New(t)
	logs := &testenv.SyncBuffer{}
	bot, err := New(testConfig(ws), &sbt.Engine{}, nil, testLogger(logs))
	if err != nil {
		t.Fatal(err)
	}
	l := lateOf(lateResult("C1", "1700000010.000100", "x\n", 0))
	if bot.PostLate(l) {
		t.Error("PostLate queued before Run")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bot.Run(ctx) }()
	ws.WaitConnected(wait)
	if !bot.PostLate(l) {
		t.Error("PostLate refused while the bot runs")
	}
	waitPosts(t, ws, sbt.KindPost, 1, inThread("C1", "1700000010.000100"))
	// The workspace has it; wait for the bot to have had Slack's answer
	// too, or the cancel below would turn it into a failure.
	testenv.Eventually(t, wait, func() string {
		if st := bot.Stats(); st.LatePosted != 1 {
			return fmt.Sprintf("stats %+v, want the late result posted", st)
		}
		return ""
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Run did not return")
	}
	if bot.PostLate(l) {
		t.Error("PostLate queued after Run returned")
	}
	if st := bot.Stats(); st.LatePosted != 1 || st.LateDropped != 2 {
		t.Errorf("stats %+v, want 1 late posted and 2 dropped", st)
	}
	if n := len(ws.Find(sbt.KindPost, nil)); n != 1 {
		t.Errorf("%d posts, want 1: %s", n, dump(ws.Records()))
	}
	if n := strings.Count(logs.String(), "late answer not posted"); n != 2 {
		t.Errorf("%d drops logged, want 2:\n%s", n, logs)
	}
}

// TestLateQueueIsBounded: PostLate never blocks; past the bound it drops
// and counts, and what is still queued when Run returns is dropped too.
func TestLateQueueIsBounded(t *testing.T) {
	bot, err := New(Config{XAppToken: sbt.AppToken, XBotToken: sbt.BotToken, APIURL: "http://127.0.0.1:1/api/"}, &sbt.Engine{}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	bot.openLate() // as Serve does; no Run, so nothing drains the queue
	l := lateOf(lateResult("C1", "1700000011.000100", "x\n", 0))
	for i := range lateQueue {
		if !bot.PostLate(l) {
			t.Fatalf("PostLate %d refused below the bound %d", i, lateQueue)
		}
	}
	if bot.PostLate(l) {
		t.Fatal("PostLate queued past the bound")
	}
	if got := bot.Stats().LateDropped; got != 1 {
		t.Errorf("LateDropped = %d, want 1", got)
	}
	bot.closeLate()
	if got := bot.Stats().LateDropped; got != lateQueue+1 {
		t.Errorf("LateDropped after close = %d, want %d", got, lateQueue+1)
	}
	if bot.PostLate(l) {
		t.Error("PostLate queued after close")
	}
}
