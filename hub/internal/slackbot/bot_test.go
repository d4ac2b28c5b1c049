package slackbot

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/chat"
	"github.com/pifleet/pifleet/hub/internal/fleet"
	sbt "github.com/pifleet/pifleet/hub/internal/slackbot/slackbottest"
	"github.com/pifleet/pifleet/internal/testenv"
)

const wait = 15 * time.Second

// session is a bot connected to a fake workspace.
type session struct {
	ws     *sbt.Workspace
	eng    *sbt.Engine
	bot    *Bot
	audit  *testenv.SyncBuffer
	logs   *testenv.SyncBuffer
	cancel context.CancelFunc
	done   chan error
}

// testConfig is a config for the fake workspace with fast pacing.
func testConfig(ws *sbt.Workspace) Config {
	return Config{
		XAppToken: sbt.AppToken, XBotToken: sbt.BotToken, APIURL: ws.APIURL(),
		Users: []string{"U1"}, PostInterval: 20 * time.Millisecond, UpdateInterval: 100 * time.Millisecond,
		PlaceholderAfter: 2 * time.Second, AlertQuietStart: time.Millisecond, AlertBurstWindow: 50 * time.Millisecond,
	}
}

func start(t *testing.T, ws *sbt.Workspace, cfg Config, eng Asker, alerts AlertSource) *session {
	t.Helper()
	s := &session{ws: ws, audit: &testenv.SyncBuffer{}, logs: &testenv.SyncBuffer{}, done: make(chan error, 1)}
	s.eng, _ = eng.(*sbt.Engine)
	cfg.AuditLog = s.audit
	log := slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	bot, err := New(cfg, eng, alerts, log)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	s.bot = bot
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { s.done <- bot.Run(ctx) }()
	t.Cleanup(func() {
		s.stop(t)
		// The tokens never appear in what the bot writes.
		for _, out := range []string{s.logs.String(), s.audit.String()} {
			if strings.Contains(out, sbt.AppToken) || strings.Contains(out, sbt.BotToken) || strings.Contains(out, "fakebottoken") {
				t.Errorf("a token leaked into the logs or audit:\n%s", out)
			}
		}
	})
	ws.WaitConnected(wait)
	return s
}

func (s *session) stop(t *testing.T) {
	t.Helper()
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("Run returned %v after cancel, want nil", err)
		}
	case <-time.After(wait):
		t.Fatalf("Run did not return within %v of cancel", wait)
	}
}

func (s *session) auditEntries(t *testing.T) []AuditEntry {
	t.Helper()
	var out []AuditEntry
	sc := bufio.NewScanner(strings.NewReader(s.audit.String()))
	for sc.Scan() {
		var e AuditEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit line %q is not JSON: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	return out
}

// waitPosts waits until n posts match and returns them.
func waitPosts(t *testing.T, ws *sbt.Workspace, kind string, n int, match func(sbt.Record) bool) []sbt.Record {
	t.Helper()
	var got []sbt.Record
	testenv.Eventually(t, wait, func() string {
		got = ws.Find(kind, match)
		if len(got) < n {
			return fmt.Sprintf("got %d %s records, want %d; all: %s", len(got), kind, n, dump(ws.Records()))
		}
		return ""
	})
	return got
}

func dump(rs []sbt.Record) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "\n  #%d %s env=%s ch=%s ts=%s thread=%s text=%.80q file=%s", r.Seq, r.Kind, r.Envelope, r.Channel, r.TS, r.ThreadTS, r.Text, r.FileName)
	}
	return b.String()
}

func inThread(ch, ts string) func(sbt.Record) bool {
	return func(r sbt.Record) bool { return r.Channel == ch && r.ThreadTS == ts }
}

func blockTypes(t *testing.T, raw json.RawMessage) []string {
	t.Helper()
	var bs []struct {
		Type    string `json:"type"`
		BlockID string `json:"block_id"`
	}
	if err := json.Unmarshal(raw, &bs); err != nil {
		t.Fatalf("blocks %s: %v", raw, err)
	}
	var out []string
	for _, b := range bs {
		out = append(out, b.Type)
	}
	return out
}

// waitAck waits for the ack of envelope: the engine (gated) has not
// answered yet, so the ack cannot be waiting for the work.
func waitAck(t *testing.T, ws *sbt.Workspace, env string) sbt.Record {
	t.Helper()
	var ack sbt.Record
	testenv.Eventually(t, wait, func() string {
		var ok bool
		if ack, ok = ws.Acked(env); !ok {
			return "envelope " + env + " not acked while the engine is still working: " + dump(ws.Records())
		}
		return ""
	})
	return ack
}

// text is raw JSON with Go's HTML escaping (\u003c for <) undone.
func text(raw json.RawMessage) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return b.String()
}

func TestMentionIsAckedThenAnsweredInThread(t *testing.T) {
	ws := sbt.New(t)
	eng := &sbt.Engine{Gate: make(chan struct{}), Answer: func(r chat.Request) chat.Reply {
		return chat.Reply{Title: "Fleet: 1 device", Text: "pi-01 online", Sections: []chat.Section{{Text: "🟢 pi-01 · online"}}, Context: "seen just now"}
	}}
	s := start(t, ws, testConfig(ws), eng, nil)

	env := ws.Mention("Ev1", "U1", "C1", "1700000001.000100", "  fleet   online ")
	ack := waitAck(t, ws, env)
	close(eng.Gate)
	post := waitPosts(t, ws, sbt.KindPost, 1, inThread("C1", "1700000001.000100"))[0]
	if ack.Seq > post.Seq {
		t.Errorf("ack #%d arrived after the answer #%d, want it first", ack.Seq, post.Seq)
	}
	if s.bot.acks.written() == 0 {
		t.Errorf("no ack was seen written: has slack-go's %q debug line changed? (see ackWatch)", ackWrittenPrefix)
	}
	if got, want := strings.Join(blockTypes(t, post.Blocks), ","), "header,section,context"; got != want {
		t.Errorf("answer blocks = %s, want %s", got, want)
	}
	if !strings.Contains(post.Text, "pi-01 online") {
		t.Errorf("fallback text = %q, want the plain answer", post.Text)
	}
	asked := eng.Asked()
	want := chat.Request{Text: "fleet online", User: "U1", Channel: "C1", Source: "slack", Thread: "1700000001.000100"}
	if len(asked) != 1 || asked[0] != want {
		t.Errorf("engine asked %+v, want [%+v]", asked, want)
	}
	s.stop(t)
	entries := s.auditEntries(t)
	if len(entries) != 1 || entries[0].User != "U1" || entries[0].Channel != "C1" || entries[0].Command != "fleet online" || entries[0].Outcome != OutcomeAnswered || entries[0].Via != viaMention {
		t.Errorf("audit = %+v, want one answered mention of U1 in C1", entries)
	}
}

func TestRetriedEnvelopeIsAnsweredOnce(t *testing.T) {
	ws := sbt.New(t)
	eng := &sbt.Engine{}
	s := start(t, ws, testConfig(ws), eng, nil)

	ev := sbt.MentionEvent("U1", "C1", "1700000002.000100", "health pi-01")
	first := ws.Event("Ev2", 0, ev)
	retry := ws.Event("Ev2", 1, ev)
	testenv.Eventually(t, wait, func() string {
		if s.bot.Stats().Duplicates != 1 {
			return fmt.Sprintf("duplicates = %d, want 1", s.bot.Stats().Duplicates)
		}
		return ""
	})
	waitPosts(t, ws, sbt.KindPost, 1, inThread("C1", "1700000002.000100"))
	s.stop(t) // waits for every handler: nothing more can be posted
	for _, env := range []string{first, retry} {
		if _, ok := ws.Acked(env); !ok {
			t.Errorf("envelope %s not acked (a retry must be acked too, or Slack keeps retrying)", env)
		}
	}
	if n := len(ws.Find(sbt.KindPost, nil)); n != 1 {
		t.Errorf("got %d answers, want 1: %s", n, dump(ws.Records()))
	}
	if n := len(eng.Asked()); n != 1 {
		t.Errorf("engine asked %d times, want 1", n)
	}
}

func TestUnauthorizedUserIsRefusedPolitely(t *testing.T) {
	ws := sbt.New(t)
	eng := &sbt.Engine{}
	s := start(t, ws, testConfig(ws), eng, nil)

	ws.Mention("Ev3", "U666", "C1", "1700000003.000100", "fleet")
	post := waitPosts(t, ws, sbt.KindEphemeral, 1, inThread("C1", "1700000003.000100"))[0]
	if !strings.Contains(post.Text, "not on pifleet's list") || !strings.Contains(post.Text, "U666") ||
		!strings.Contains(post.Text, "whoever runs pifleet here") || strings.Contains(post.Text, "PIFLEET_") {
		t.Errorf("refusal = %q, want a polite refusal naming the user id and whom to ask, no setting names", post.Text)
	}
	if post.User != "U666" {
		t.Errorf("refusal shown to %q, want the asker U666 alone (ephemeral)", post.User)
	}
	s.stop(t)
	if pub := ws.Find(sbt.KindPost, inThread("C1", "1700000003.000100")); len(pub) != 0 {
		t.Errorf("refusal posted for everyone to see: %s", dump(pub))
	}
	if n := len(eng.Asked()); n != 0 {
		t.Errorf("engine asked %d times for an unauthorized user, want 0", n)
	}
	if e := s.auditEntries(t); len(e) != 1 || e[0].Outcome != OutcomeRefused || e[0].User != "U666" {
		t.Errorf("audit = %+v, want one refused entry for U666", e)
	}
	if got := s.bot.Stats().Refused; got != 1 {
		t.Errorf("Stats().Refused = %d, want 1", got)
	}
}

func TestChannelsAndUserGroups(t *testing.T) {
	ws := sbt.New(t)
	ws.SetUserGroup("S1", "U5", "U6")
	cfg := testConfig(ws)
	cfg.Users = nil
	cfg.UserGroups = []string{"S1"}
	cfg.Channels = []string{"C1"}
	eng := &sbt.Engine{}
	s := start(t, ws, cfg, eng, nil)

	for _, tc := range []struct {
		user, channel, ts, want, kind string
	}{
		{"U5", "C1", "1700000004.000100", "you said: fleet", sbt.KindPost},
		{"U5", "C2", "1700000004.000200", "I only answer in <#C1>", sbt.KindEphemeral},
		{"U5", "D1", "1700000004.000300", "you said: fleet", sbt.KindPost}, // DMs are fine
		{"U7", "C1", "1700000004.000400", "not on pifleet's list", sbt.KindEphemeral},
	} {
		ws.Mention("Ev-"+tc.ts, tc.user, tc.channel, tc.ts, "fleet")
		thread := tc.ts
		if strings.HasPrefix(tc.channel, "D") {
			thread = "" // a DM is answered in the DM itself
		}
		post := waitPosts(t, ws, tc.kind, 1, inThread(tc.channel, thread))[0]
		if !strings.Contains(post.Text, tc.want) {
			t.Errorf("%s in %s: got %q, want it to contain %q", tc.user, tc.channel, post.Text, tc.want)
		}
	}
	s.stop(t)
	if n := len(eng.Asked()); n != 2 {
		t.Errorf("engine asked %d times, want 2", n)
	}
}

func TestTenThousandLineAnswerBecomesAFileInTheThread(t *testing.T) {
	ws := sbt.New(t)
	var long strings.Builder
	for i := range 10000 {
		fmt.Fprintf(&long, "line %05d pi-%04d online\n", i, i)
	}
	eng := &sbt.Engine{Answer: func(chat.Request) chat.Reply {
		return chat.Reply{Title: "History of pi-01", Text: long.String()}
	}}
	start(t, ws, testConfig(ws), eng, nil)

	ws.Mention("Ev5", "U1", "C1", "1700000005.000100", "history pi-01")
	post := waitPosts(t, ws, sbt.KindPost, 1, inThread("C1", "1700000005.000100"))[0]
	done := waitPosts(t, ws, sbt.KindComplete, 1, inThread("C1", "1700000005.000100"))[0]
	up := ws.Find(sbt.KindUpload, func(r sbt.Record) bool { return r.FileID == done.FileID })
	if len(up) != 1 {
		t.Fatalf("no upload for file %s: %s", done.FileID, dump(ws.Records()))
	}
	if up[0].Content != long.String() {
		t.Errorf("uploaded %d bytes, want the whole %d-byte answer", len(up[0].Content), long.Len())
	}
	if done.FileName != "pifleet-history-pi-01.txt" {
		t.Errorf("file name = %q, want pifleet-history-pi-01.txt", done.FileName)
	}
	if len(post.Blocks) > 20000 || len(post.Text) > maxFallbackText+100 {
		t.Errorf("the message itself is %d bytes of blocks and %d of text; the answer belongs in the file", len(post.Blocks), len(post.Text))
	}
	if !strings.Contains(string(post.Blocks), "of 10,001 lines") && !strings.Contains(string(post.Blocks), "of 10,000 lines") {
		t.Errorf("message does not say the answer is attached: %s", post.Blocks)
	}
	if done.Seq < post.Seq {
		t.Errorf("file (#%d) came before its message (#%d)", done.Seq, post.Seq)
	}
}

func TestEngineFilesGoIntoTheThread(t *testing.T) {
	ws := sbt.New(t)
	eng := &sbt.Engine{Answer: func(chat.Request) chat.Reply {
		return chat.Reply{Title: "Fleet", Text: "41 devices", Context: "Showing 40 of 41; the whole list is attached.",
			Files: []chat.File{{Name: "fleet.txt", Content: "pi-01\npi-02\n"}}}
	}}
	start(t, ws, testConfig(ws), eng, nil)
	ws.Mention("Ev6", "U1", "C1", "1700000006.000100", "fleet")
	done := waitPosts(t, ws, sbt.KindComplete, 1, inThread("C1", "1700000006.000100"))[0]
	if done.FileName != "fleet.txt" {
		t.Errorf("file = %q, want fleet.txt", done.FileName)
	}
}

func TestSlowAnswerGetsAPlaceholderEditedInPlace(t *testing.T) {
	ws := sbt.New(t)
	cfg := testConfig(ws)
	cfg.PlaceholderAfter = 50 * time.Millisecond
	cfg.UpdateInterval = 300 * time.Millisecond
	eng := &sbt.Engine{Delay: 1500 * time.Millisecond, Progress: fourPis(),
		Answer: func(chat.Request) chat.Reply { return chat.Reply{Title: "Done", Text: "all good"} }}
	start(t, ws, cfg, eng, nil)

	ws.Mention("Ev7", "U1", "C1", "1700000007.000100", "aws s3 ls")
	placeholder := waitPosts(t, ws, sbt.KindPost, 1, inThread("C1", "1700000007.000100"))[0]
	if !strings.Contains(placeholder.Text, "Working on aws s3 ls") {
		t.Errorf("placeholder = %q, want 'Working on aws s3 ls…'", placeholder.Text)
	}
	onPlaceholder := func(r sbt.Record) bool { return r.TS == placeholder.TS && r.Channel == "C1" }
	testenv.Eventually(t, wait, func() string {
		ups := ws.Find(sbt.KindUpdate, onPlaceholder)
		if len(ups) == 0 || !strings.Contains(ups[len(ups)-1].Text, "all good") {
			return "the placeholder was not edited into the answer: " + dump(ws.Records())
		}
		return ""
	})
	ups := ws.Find(sbt.KindUpdate, onPlaceholder)
	if len(ups) < 2 {
		t.Errorf("got %d edits, want progress edits before the answer: %s", len(ups), dump(ws.Records()))
	}
	if len(ups) >= 2 {
		// The bot spaces its edits by the interval on its own clock; the
		// workspace sees them shifted by each request's latency, so the
		// rate is checked over the whole span with one interval of slack
		// (an unspaced bot would send dozens here).
		span := ups[len(ups)-1].At.Sub(ups[0].At)
		if most := int(span/cfg.UpdateInterval) + 2; len(ups) > most {
			t.Errorf("%d edits in %v, want at most %d (one per %v): %s", len(ups), span, most, cfg.UpdateInterval, dump(ups))
		}
	}
	if n := len(ws.Find(sbt.KindPost, nil)); n != 1 {
		t.Errorf("got %d posts, want only the placeholder", n)
	}
}

// fourPis is a run on four Pis that finish one after the other.
func fourPis() []chat.Status {
	var out []chat.Status
	for done := 1; done <= 4; done++ {
		var s chat.Status
		for i := 1; i <= 4; i++ {
			p := chat.PiStatus{Device: fmt.Sprintf("pi-%d", i), State: chat.PiRunning}
			if i <= done {
				p.State, p.Took = chat.PiOK, time.Duration(i)*time.Second
			}
			s.Pis = append(s.Pis, p)
		}
		out = append(out, s)
	}
	return out
}

func TestSlashCommandAnswersInChannel(t *testing.T) {
	ws := sbt.New(t)
	eng := &sbt.Engine{Gate: make(chan struct{}), Answer: func(chat.Request) chat.Reply {
		return chat.Reply{Text: "ok", Files: []chat.File{{Name: "x.txt", Content: "x"}}}
	}}
	start(t, ws, testConfig(ws), eng, nil)

	env := ws.Slash("U1", "C1", "where pi-01")
	waitAck(t, ws, env)
	close(eng.Gate)
	post := waitPosts(t, ws, sbt.KindPost, 1, func(r sbt.Record) bool { return r.Channel == "C1" })[0]
	if post.ThreadTS != "" {
		t.Errorf("slash answer in thread %q, want a new channel message", post.ThreadTS)
	}
	if !strings.Contains(text(post.Blocks), "<@U1> asked `/pi where pi-01`") {
		t.Errorf("slash answer does not say who asked: %s", post.Blocks)
	}
	if bt := blockTypes(t, post.Blocks); len(bt) == 0 || bt[0] != "context" {
		t.Errorf("slash answer blocks %v: want who asked first, as a context line", bt)
	}
	if ack, ok := ws.Acked(env); !ok || ack.Seq > post.Seq {
		t.Errorf("slash envelope ack = %+v (ok=%v), want it before the answer #%d", ack, ok, post.Seq)
	}
	waitPosts(t, ws, sbt.KindComplete, 1, inThread("C1", post.TS))
	// A slash command has no thread: a late result is a new message too.
	if asked := eng.Asked(); len(asked) != 1 || asked[0].Thread != "" || asked[0].Channel != "C1" {
		t.Errorf("engine asked %+v, want one request in C1 without a thread", asked)
	}
}

func TestSlashWhereTheBotIsNotAMemberUsesResponseURL(t *testing.T) {
	ws := sbt.New(t)
	ws.NotInChannel("C9")
	start(t, ws, testConfig(ws), &sbt.Engine{}, nil)
	ws.Slash("U1", "C9", "fleet")
	resp := waitPosts(t, ws, sbt.KindResponse, 1, nil)[0]
	if resp.Text != "you said: fleet" || resp.ThreadTS != "ephemeral" {
		t.Errorf("response_url got %q (%s), want the answer, ephemeral", resp.Text, resp.ThreadTS)
	}
}

func TestSlashRefusalIsPrivate(t *testing.T) {
	ws := sbt.New(t)
	start(t, ws, testConfig(ws), &sbt.Engine{}, nil)
	ws.Slash("U666", "C1", "fleet")
	resp := waitPosts(t, ws, sbt.KindResponse, 1, nil)[0]
	if !strings.Contains(resp.Text, "not on pifleet's list") {
		t.Errorf("refusal = %q", resp.Text)
	}
	if n := len(ws.Find(sbt.KindPost, nil)); n != 0 {
		t.Errorf("a refused slash command posted %d channel messages, want 0", n)
	}
}

func TestRateLimitHonoursRetryAfter(t *testing.T) {
	ws := sbt.New(t)
	ws.RateLimit(1, 1)
	s := start(t, ws, testConfig(ws), &sbt.Engine{}, nil)
	ws.Mention("Ev8", "U1", "C1", "1700000008.000100", "fleet")
	waitPosts(t, ws, sbt.KindPost, 1, inThread("C1", "1700000008.000100"))
	if got := s.bot.Stats().RateLimited; got != 1 {
		t.Errorf("Stats().RateLimited = %d, want 1", got)
	}
}

func TestConfirmButtonRunsTheActionOnce(t *testing.T) {
	ws := sbt.New(t)
	eng := &sbt.Engine{Answer: func(chat.Request) chat.Reply {
		return chat.Reply{Title: "Reboot pi-01?", Text: "This reboots pi-01.", Confirm: &chat.Confirm{Token: "tok-123", Summary: "Reboot pi-01"}}
	}}
	s := start(t, ws, testConfig(ws), eng, nil)

	ws.Mention("Ev9", "U1", "C1", "1700000009.000100", "reboot pi-01")
	ask := waitPosts(t, ws, sbt.KindPost, 1, inThread("C1", "1700000009.000100"))[0]
	if !strings.Contains(string(ask.Blocks), ActionConfirm) {
		t.Fatalf("no confirm button in %s", ask.Blocks)
	}
	env := ws.Click("U1", ask, ActionConfirm, "tok-123")
	result := waitPosts(t, ws, sbt.KindPost, 2, inThread("C1", "1700000009.000100"))[1]
	if !strings.Contains(result.Text, "confirmed tok-123") {
		t.Errorf("result = %q", result.Text)
	}
	if _, ok := ws.Acked(env); !ok {
		t.Errorf("button envelope not acked")
	}
	ups := ws.Find(sbt.KindUpdate, func(r sbt.Record) bool { return r.TS == ask.TS })
	if len(ups) != 1 || strings.Contains(string(ups[0].Blocks), ActionConfirm) || !strings.Contains(text(ups[0].Blocks), "Confirmed by <@U1>") {
		t.Errorf("the question was not updated to drop its buttons: %s", dump(ups))
	}
	if got := eng.Confirmed(); len(got) != 1 || got[0] != [2]string{"U1", "tok-123"} {
		t.Errorf("engine confirmed %v, want [[U1 tok-123]]", got)
	}
	s.stop(t)
	if strings.Contains(s.audit.String(), "tok-123") {
		t.Errorf("the audit log holds a confirm token: %s", s.audit.String())
	}
}

func TestCancelButtonAndOutsiderClick(t *testing.T) {
	ws := sbt.New(t)
	eng := &sbt.Engine{Answer: func(chat.Request) chat.Reply {
		return chat.Reply{Text: "Delete it?", Confirm: &chat.Confirm{Token: "tok-9", Summary: "Delete"}}
	}}
	s := start(t, ws, testConfig(ws), eng, nil)
	ws.Mention("Ev10", "U1", "C1", "1700000010.000100", "delete")
	ask := waitPosts(t, ws, sbt.KindPost, 1, inThread("C1", "1700000010.000100"))[0]

	ws.Click("U666", ask, ActionConfirm, "tok-9")
	refusal := waitPosts(t, ws, sbt.KindEphemeral, 1, inThread("C1", "1700000010.000100"))[0]
	if !strings.Contains(refusal.Text, "not on pifleet's list") || refusal.User != "U666" {
		t.Errorf("outsider's click: %q to %q, want a refusal only U666 sees", refusal.Text, refusal.User)
	}
	ws.Click("U1", ask, ActionCancel, "tok-9")
	testenv.Eventually(t, wait, func() string {
		if len(ws.Find(sbt.KindUpdate, func(r sbt.Record) bool { return strings.Contains(text(r.Blocks), "Cancelled by <@U1>") })) != 1 {
			return "no cancel edit: " + dump(ws.Records())
		}
		return ""
	})
	s.stop(t)
	if got := eng.Confirmed(); len(got) != 0 {
		t.Errorf("engine confirmed %v, want nothing", got)
	}
	var outcomes []string
	for _, e := range s.auditEntries(t) {
		outcomes = append(outcomes, e.Outcome)
	}
	// The refusal of the outsider's click may be written before the
	// answer's entry (that one waits for chat.postMessage's reply).
	slices.Sort(outcomes)
	if got, want := strings.Join(outcomes, ","), "answered,cancelled,refused"; got != want {
		t.Errorf("audit outcomes = %s, want %s", got, want)
	}
}

func TestDirectMessagesAndOwnMessages(t *testing.T) {
	ws := sbt.New(t)
	eng := &sbt.Engine{}
	s := start(t, ws, testConfig(ws), eng, nil)

	ws.DirectMessage("Ev11", "U1", "D1", "1700000011.000100", "where pi-01")
	// The bot's own reply in the DM comes back as a message event: ignored.
	ws.Event("Ev12", 0, map[string]any{"type": "message", "channel_type": "im", "user": sbt.BotUser, "bot_id": "B0TEST",
		"channel": "D1", "ts": "1700000011.000200", "text": "you said: where pi-01"})
	// A mention in the DM may come as app_mention too: answered once.
	ws.Event("Ev13", 0, sbt.MentionEvent("U1", "D1", "1700000011.000100", "where pi-01"))
	// Answered in the DM itself, not in a thread under the question.
	waitPosts(t, ws, sbt.KindPost, 1, inThread("D1", ""))
	testenv.Eventually(t, wait, func() string {
		if st := s.bot.Stats(); st.Envelopes < 3 {
			return fmt.Sprintf("%d envelopes acked, want 3", st.Envelopes)
		}
		return ""
	})
	s.stop(t)
	if n := len(ws.Find(sbt.KindPost, nil)); n != 1 {
		t.Errorf("got %d posts, want 1: %s", n, dump(ws.Records()))
	}
	if n := len(eng.Asked()); n != 1 {
		t.Errorf("engine asked %d times, want 1", n)
	}
}

func TestUnparseableEnvelopeIsAckedAndCounted(t *testing.T) {
	ws := sbt.New(t)
	s := start(t, ws, testConfig(ws), &sbt.Engine{}, nil)
	env := ws.Send(map[string]any{"type": "events_api", "payload": map[string]any{"type": "event_callback", "event_id": "EvBad",
		"event": map[string]any{"type": "app_mention", "user": 42}}})
	testenv.Eventually(t, wait, func() string {
		if _, ok := ws.Acked(env); !ok {
			return "bad envelope not acked"
		}
		return ""
	})
	if s.bot.Stats().BadEnvelopes != 1 {
		t.Errorf("BadEnvelopes = %d, want 1", s.bot.Stats().BadEnvelopes)
	}
	// Still serving.
	ws.Mention("Ev14", "U1", "C1", "1700000014.000100", "fleet")
	waitPosts(t, ws, sbt.KindPost, 1, inThread("C1", "1700000014.000100"))
}

func TestAlertsGoToTheAlertChannel(t *testing.T) {
	ws := sbt.New(t)
	cfg := testConfig(ws)
	cfg.AlertChannel = "CALERT"
	src := &sbt.Alerts{}
	s := start(t, ws, cfg, &sbt.Engine{}, src)
	testenv.Eventually(t, wait, func() string {
		if src.Subscribers() != 1 {
			return "the bot did not subscribe to alerts"
		}
		return ""
	})
	// The quiet start (1ms in testConfig) began before the bot subscribed;
	// events stamped after it are alerts, not the startup summary.
	time.Sleep(5 * cfg.AlertQuietStart)
	now := time.Now()
	src.Emit(fleet.Alert{Kind: AlertOffline, Device: "pi-07", Detail: "lost", Time: now})
	src.Emit(fleet.Alert{Kind: AlertOffline, Device: "pi-07", Detail: "lost", Time: now}) // repeat: muted
	src.Emit(fleet.Alert{Kind: AlertProblem, Device: "pi-07", Detail: "under_voltage", Time: now})
	posts := waitPosts(t, ws, sbt.KindPost, 2, func(r sbt.Record) bool { return r.Channel == "CALERT" })
	if !strings.Contains(posts[0].Text, "pi-07 lost its connection") || !strings.Contains(posts[1].Text, "under-voltage") {
		t.Errorf("alerts = %q, %q", posts[0].Text, posts[1].Text)
	}
	s.stop(t)
	if src.Subscribers() != 0 {
		t.Errorf("still subscribed after Run returned")
	}
	if st := s.bot.Stats(); st.AlertsPosted != 2 || st.AlertsSuppressed != 1 {
		t.Errorf("alerts posted/suppressed = %d/%d, want 2/1", st.AlertsPosted, st.AlertsSuppressed)
	}
}

// TestAlertButtonsAskInTheAlertsThread: an alert's Where button asks for
// whoever presses it, in the alert's thread; the alert channel counts as
// one of the bot's channels (here the list names only C1).
func TestAlertButtonsAskInTheAlertsThread(t *testing.T) {
	ws := sbt.New(t)
	cfg := testConfig(ws)
	cfg.AlertChannel, cfg.Channels = "CALERT", []string{"C1"}
	src := &sbt.Alerts{}
	eng := &sbt.Engine{}
	start(t, ws, cfg, eng, src)
	testenv.Eventually(t, wait, func() string {
		if src.Subscribers() != 1 {
			return "the bot did not subscribe to alerts"
		}
		return ""
	})
	time.Sleep(5 * cfg.AlertQuietStart) // past the quiet start, as above
	src.Emit(fleet.Alert{Kind: AlertOffline, Device: "pi-07", Detail: "lost", Time: time.Now()})
	alert := waitPosts(t, ws, sbt.KindPost, 1, func(r sbt.Record) bool { return r.Channel == "CALERT" })[0]
	for _, want := range []string{`"value":"where pi-07"`, `"value":"health pi-07"`} {
		if !strings.Contains(string(alert.Blocks), want) {
			t.Fatalf("the alert has no button with %s: %s", want, alert.Blocks)
		}
	}
	ws.Click("U1", alert, ActionRun, "where pi-07")
	answer := waitPosts(t, ws, sbt.KindPost, 1, inThread("CALERT", alert.TS))[0]
	if !strings.Contains(answer.Text, "you said: where pi-07") {
		t.Errorf("the Where button's answer in the alert's thread = %q", answer.Text)
	}
	if got := eng.Asked(); len(got) != 1 || got[0].User != "U1" || got[0].Channel != "CALERT" {
		t.Errorf("engine asked %+v, want where pi-07 for U1 in CALERT", got)
	}
}

func TestRejectedTokens(t *testing.T) {
	ws := sbt.New(t)
	cfg := testConfig(ws)
	cfg.XBotToken = "xoxb-wrong-secret"
	bot, err := New(cfg, &sbt.Engine{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	err = bot.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "rejected the bot token") || strings.Contains(err.Error(), "wrong-secret") {
		t.Errorf("Run with a wrong bot token = %v, want a clear error without the token", err)
	}

	cfg = testConfig(ws)
	cfg.XAppToken = "xapp-wrong-secret"
	bot, err = New(cfg, &sbt.Engine{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = bot.Run(ctx)
	if err == nil || strings.Contains(err.Error(), "wrong-secret") || ctx.Err() != nil {
		t.Errorf("Run with a wrong app token = %v (ctx %v), want an error without the token", err, ctx.Err())
	}
}

func testLogger(w *testenv.SyncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestTooSlowAnswerSaysSo(t *testing.T) {
	ws := sbt.New(t)
	cfg := testConfig(ws)
	cfg.PlaceholderAfter = 50 * time.Millisecond
	cfg.AskTimeout = 2 * time.Second // the placeholder is posted well before (the engine takes a minute)
	s := start(t, ws, cfg, &sbt.Engine{Delay: time.Minute}, nil)
	ws.Mention("Ev15", "U1", "C1", "1700000015.000100", "aws s3 sync")
	placeholder := waitPosts(t, ws, sbt.KindPost, 1, inThread("C1", "1700000015.000100"))[0]
	testenv.Eventually(t, wait, func() string {
		if len(ws.Find(sbt.KindUpdate, func(r sbt.Record) bool {
			return r.TS == placeholder.TS && strings.Contains(r.Text, "took longer than 2s")
		})) != 1 {
			return "the placeholder does not say the command took too long: " + dump(ws.Records())
		}
		return ""
	})
	s.stop(t)
	if e := s.auditEntries(t); len(e) != 1 || e[0].Outcome != OutcomeFailed || !strings.Contains(e[0].Detail, "deadline exceeded") {
		t.Errorf("audit = %+v, want one failed entry", e)
	}
}

func TestAPanickingEngineDoesNotTakeTheHubDown(t *testing.T) {
	ws := sbt.New(t)
	s := start(t, ws, testConfig(ws), panicky{}, nil)
	ws.Mention("Ev16", "U1", "C1", "1700000016.000100", "fleet")
	testenv.Eventually(t, wait, func() string {
		if s.bot.Stats().Failed != 1 {
			return "the panic was not counted as a failure"
		}
		return ""
	})
	if !strings.Contains(s.logs.String(), "engine bug") {
		t.Errorf("the panic was not logged:\n%s", s.logs)
	}
	post := waitPosts(t, ws, sbt.KindPost, 1, inThread("C1", "1700000016.000100"))[0]
	if !strings.Contains(post.Text, "failed inside the hub") {
		t.Errorf("answer = %q, want an apology", post.Text)
	}
}

func TestAlertsDuringTheQuietStartAreSummarised(t *testing.T) {
	ws := sbt.New(t)
	cfg := testConfig(ws)
	cfg.AlertChannel = "CALERT"
	cfg.AlertQuietStart = 5 * time.Second
	src := &sbt.Alerts{}
	// Stamped before the bot starts, so inside its quiet start however slow
	// the start is.
	before := time.Now()
	start(t, ws, cfg, &sbt.Engine{}, src)
	testenv.Eventually(t, wait, func() string {
		if src.Subscribers() != 1 {
			return "the bot did not subscribe to alerts"
		}
		return ""
	})
	src.Emit(fleet.Alert{Kind: AlertOffline, Device: "pi-07", Detail: "lost", Time: before})
	src.Emit(fleet.Alert{Kind: AlertProblem, Device: "pi-08", Detail: "hot", Time: before})
	posts := waitPosts(t, ws, sbt.KindPost, 1, func(r sbt.Record) bool { return r.Channel == "CALERT" })
	if want := "Hub started: 1 offline: pi-07; 1 with problems: pi-08 (running hot)"; len(posts) != 1 || posts[0].Text != want {
		t.Errorf("alerts = %s, want one %q", dump(posts), want)
	}
}

// Several hubs on one fleet each decide alerts; only the one holding the
// alerts lease posts them. Two bots on one workspace, one the leader: each
// alert is posted once; when the lease moves, the other bot posts.
func TestAlertsOnlyFromTheLeader(t *testing.T) {
	ws := sbt.New(t)
	var leader atomic.Value
	leader.Store("a")
	bots := map[string]*session{}
	srcs := map[string]*sbt.Alerts{}
	for _, id := range []string{"a", "b"} {
		cfg := testConfig(ws)
		cfg.AlertChannel = "CALERT"
		cfg.AlertLeader = func() bool { return leader.Load() == id }
		srcs[id] = &sbt.Alerts{}
		bots[id] = start(t, ws, cfg, &sbt.Engine{}, srcs[id])
	}
	time.Sleep(5 * testConfig(ws).AlertQuietStart)
	emit := func(dev string) {
		for id, src := range srcs {
			testenv.Eventually(t, wait, func() string {
				if src.Subscribers() != 1 {
					return "bot " + id + " did not subscribe to alerts"
				}
				return ""
			})
			src.Emit(fleet.Alert{Kind: AlertOffline, Device: dev, Detail: "lost", Time: time.Now()})
		}
	}
	// handled waits until both bots decided on n events: one posted, one
	// stood by.
	handled := func(n uint64) {
		testenv.Eventually(t, wait, func() string {
			a, b := bots["a"].bot.Stats(), bots["b"].bot.Stats()
			if a.AlertsPosted+a.AlertsStandby != n || b.AlertsPosted+b.AlertsStandby != n {
				return fmt.Sprintf("a %+v, b %+v: not both at %d alerts", a, b, n)
			}
			return ""
		})
	}
	emit("pi-01")
	handled(1)
	leader.Store("b") // the lease moved
	emit("pi-02")
	handled(2)
	posts := waitPosts(t, ws, sbt.KindPost, 2, func(r sbt.Record) bool { return r.Channel == "CALERT" })
	if !strings.Contains(posts[0].Text, "pi-01") || !strings.Contains(posts[1].Text, "pi-02") {
		t.Errorf("alerts = %q, %q; want pi-01 then pi-02, once each", posts[0].Text, posts[1].Text)
	}
	for _, id := range []string{"a", "b"} {
		bots[id].stop(t)
	}
	if all := ws.Find(sbt.KindPost, func(r sbt.Record) bool { return r.Channel == "CALERT" }); len(all) != 2 {
		t.Errorf("%d alerts posted, want 2 (one per event, from the leader alone): %s", len(all), dump(all))
	}
	a, b := bots["a"].bot.Stats(), bots["b"].bot.Stats()
	if a.AlertsPosted != 1 || a.AlertsStandby != 1 || b.AlertsPosted != 1 || b.AlertsStandby != 1 {
		t.Errorf("a posted/standby %d/%d, b %d/%d; want 1/1 each", a.AlertsPosted, a.AlertsStandby, b.AlertsPosted, b.AlertsStandby)
	}
}

// The refusal names whom to ask (Config.Admin), never a setting.
func TestRefusalNamesTheAdmin(t *testing.T) {
	a := newAuthorizer(Config{Users: []string{"U1"}, Admin: "<@UADMIN>"}, nil)
	got, err := a.refusal(context.Background(), "U9", "C1")
	if err != nil || !strings.Contains(got, "Ask <@UADMIN> to add you") || !strings.Contains(got, "`U9`") || strings.Contains(got, "PIFLEET_") {
		t.Errorf("refusal = %q, %v; want it to send U9 to <@UADMIN>", got, err)
	}
	if got, _ := a.refusal(context.Background(), "U1", "C1"); got != "" {
		t.Errorf("allowed user refused: %q", got)
	}
}

// TestRunButtonAsksForWhoeverClicks: a chat.Action's button (a Pi's
// Where, a "did you mean") asks its command for the person who pressed
// it, with the checks of a typed command, in the message's thread, once
// even when Slack sends the click again; an outsider's click is refused.
func TestRunButtonAsksForWhoeverClicks(t *testing.T) {
	ws := sbt.New(t)
	ws.SetAckTimeout(time.Second, sbt.MaxRetries) // a retry a second after a lost ack
	eng := &sbt.Engine{Answer: func(r chat.Request) chat.Reply {
		if r.Text == "where pi-1" {
			return chat.Reply{Title: "pi-1 is online", Text: "pi-1 is online"}
		}
		return chat.Reply{Text: `no device "pi-l"; did you mean "pi-1"?`, Problem: true, Actions: []chat.Action{{Label: "where pi-1", Command: "where pi-1"}}}
	}}
	s := start(t, ws, testConfig(ws), eng, nil)
	ws.Mention("EvRun", "U1", "C1", "1700000300.000100", "where pi-l")
	typo := waitPosts(t, ws, sbt.KindPost, 1, inThread("C1", "1700000300.000100"))[0]
	if !strings.Contains(string(typo.Blocks), `"action_id":"`+ActionRun+`","value":"where pi-1"`) {
		t.Fatalf("no run button in %s", typo.Blocks)
	}

	ws.Click("U666", typo, ActionRun, "where pi-1")
	refusal := waitPosts(t, ws, sbt.KindEphemeral, 1, inThread("C1", "1700000300.000100"))[0]
	if !strings.Contains(refusal.Text, "not on pifleet's list") || refusal.User != "U666" {
		t.Errorf("outsider's click: %q to %q, want a refusal only U666 sees", refusal.Text, refusal.User)
	}

	ws.LoseAcks(1) // Slack sends the click again: it runs once
	ws.Click("U1", typo, ActionRun, "where pi-1")
	answer := waitPosts(t, ws, sbt.KindPost, 2, inThread("C1", "1700000300.000100"))[1]
	if a := text(answer.Blocks); !strings.Contains(a, "pi-1 is online") || !strings.Contains(a, "<@U1> asked `where pi-1` with a button") {
		t.Errorf("the button's answer:\n%s", a)
	}
	testenv.Eventually(t, wait, func() string {
		if d := s.bot.Stats().Duplicates; d != 1 {
			return fmt.Sprintf("duplicates = %d, want 1: the retried click was not recognised", d)
		}
		return ""
	})
	s.stop(t)
	var runs []chat.Request
	for _, r := range eng.Asked() {
		if r.Text == "where pi-1" {
			runs = append(runs, r)
		}
	}
	if len(runs) != 1 || runs[0].User != "U1" || runs[0].Source != "slack" || runs[0].Thread != "1700000300.000100" {
		t.Errorf("the engine was asked %+v, want `where pi-1` once for U1 in the thread", runs)
	}
	if n := len(ws.Find(sbt.KindPost, inThread("C1", "1700000300.000100"))); n != 2 {
		t.Errorf("%d answers in the thread, want 2 (the typo's and the button's)", n)
	}
	var vias []string
	for _, e := range s.auditEntries(t) {
		vias = append(vias, e.Via+":"+e.Outcome+":"+e.Command)
	}
	slices.Sort(vias)
	if got, want := strings.Join(vias, ","), "button:answered:where pi-1,button:refused:where pi-1,mention:problem:where pi-l"; got != want {
		t.Errorf("audit = %s, want %s", got, want)
	}
}
