package slackbot

import (
	"crypto/ed25519"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/chat"
	"github.com/pifleet/pifleet/hub/internal/dispatch"
	"github.com/pifleet/pifleet/hub/internal/fleet"
	sbt "github.com/pifleet/pifleet/hub/internal/slackbot/slackbottest"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/wire"
)

// twoPis is the hub's real command path without a broker: the command
// engine with the dispatcher behind `aws`, and two online Pis whose
// commands the test answers through the dispatcher's result intake.
type twoPis struct {
	d    *dispatch.Dispatcher
	cmds chan wire.Command
}

func (twoPis) Resolve(target string) ([]string, error) { return strings.Split(target, ","), nil }
func (twoPis) Online(string) bool                      { return true }

// Publish takes the dispatcher's commands (and its clears of retained
// finals) as the broker would.
func (p *twoPis) Publish(topic string, _ byte, _ bool, payload []byte) error {
	if strings.HasSuffix(topic, "/cmd") {
		c, err := wire.DecodeCommand(payload)
		if err != nil {
			return err
		}
		select {
		case p.cmds <- c:
		default: // a re-send
		}
	}
	return nil
}

func newTwoPis(t *testing.T) (*twoPis, *chat.Engine) {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(nil)
	p := &twoPis{cmds: make(chan wire.Command, 16)}
	d, err := dispatch.New(dispatch.Options{Hub: "hub1", Key: key, Fleet: p, Publisher: p, Wait: time.Minute,
		Resend: []time.Duration{time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	p.d = d
	eng := chat.New(fleet.New(nil), nil)
	eng.Handle("aws", "run aws on Pis", d)
	return p, eng
}

// commands waits for one command per device.
func (p *twoPis) commands(t *testing.T, devs ...string) map[string]string {
	t.Helper()
	ids := map[string]string{}
	deadline := time.After(wait)
	for len(ids) < len(devs) {
		select {
		case c := <-p.cmds:
			ids[c.Device] = c.ID
		case <-deadline:
			t.Fatalf("commands sent to %v, want %v", ids, devs)
		}
	}
	return ids
}

// finish answers the command id on dev as its agent would: output in a
// chunk (a JSON document whose last line is "}"), then the final.
func (p *twoPis) finish(dev, id string, took time.Duration) {
	out := "{\n    \"Buckets\": []\n}\n"
	for _, rec := range []any{
		wire.Chunk{V: 1, Kind: wire.KindChunk, ID: id, Device: dev, Seq: 1, Stream: wire.Stdout, Data: out},
		wire.Final{V: 1, Kind: wire.KindFinal, ID: id, Device: dev, Seq: 2, Outcome: wire.OutcomeExited, DurationMS: took.Milliseconds(), Bytes: int64(len(out))},
	} {
		b, _ := json.Marshal(rec)
		p.d.HandleResult(wire.ResultTopic(dev, "hub1", id), b)
	}
}

// working are the placeholder's states: its post and its edits before
// the answer.
func working(ws *sbt.Workspace, placeholder sbt.Record) []sbt.Record {
	var out []sbt.Record
	for _, r := range ws.Records() {
		if (r.Kind == sbt.KindPost || r.Kind == sbt.KindUpdate) && r.TS == placeholder.TS && strings.HasPrefix(r.Text, "Working on") {
			out = append(out, r)
		}
	}
	return out
}

// shows waits until the placeholder shows want.
func shows(t *testing.T, ws *sbt.Workspace, placeholder sbt.Record, want string) {
	t.Helper()
	testenv.Eventually(t, wait, func() string {
		states := working(ws, placeholder)
		if last := states[len(states)-1]; !strings.Contains(text(last.Blocks), want) {
			return "the placeholder does not show " + want + ": " + dump(states)
		}
		return ""
	})
}

// TestPlaceholderShowsEachPi: the placeholder of a cloud command on two
// Pis says which Pi is done, in how long, and which still runs — never a
// line of their output — and turns into the answer.
func TestPlaceholderShowsEachPi(t *testing.T) {
	ws := sbt.New(t)
	cfg := testConfig(ws)
	cfg.PlaceholderAfter = 50 * time.Millisecond
	cfg.UpdateInterval = 10 * time.Millisecond
	pis, eng := newTwoPis(t)
	start(t, ws, cfg, eng, nil)

	ws.Mention("EvP1", "U1", "C1", "1700000301.000100", "aws pi-kitchen,pi-garage s3 ls")
	ids := pis.commands(t, "pi-kitchen", "pi-garage")
	placeholder := waitPosts(t, ws, sbt.KindPost, 1, inThread("C1", "1700000301.000100"))[0]
	shows(t, ws, placeholder, "pi-garage ⏳ running · pi-kitchen ⏳ running")
	pis.finish("pi-kitchen", ids["pi-kitchen"], 2700*time.Millisecond)
	shows(t, ws, placeholder, "pi-garage ⏳ running · pi-kitchen ✅ 2.7 s")
	pis.finish("pi-garage", ids["pi-garage"], 4*time.Second)
	answer := waitPosts(t, ws, sbt.KindUpdate, 1, func(r sbt.Record) bool {
		return r.TS == placeholder.TS && !strings.HasPrefix(r.Text, "Working on")
	})[0]
	if !strings.Contains(text(answer.Blocks), "pi-kitchen") || !strings.Contains(text(answer.Blocks), "Buckets") {
		t.Errorf("the answer does not hold the output:\n%s", text(answer.Blocks))
	}
	for _, r := range working(ws, placeholder) {
		var blocks []struct {
			Text struct{ Text string } `json:"text"`
		}
		if err := json.Unmarshal(r.Blocks, &blocks); err != nil || len(blocks) != 1 {
			t.Fatalf("placeholder blocks %s: %v, want one section", r.Blocks, err)
		}
		if b := blocks[0].Text.Text; strings.Contains(b, "}") || strings.Contains(b, "Buckets") {
			t.Errorf("the placeholder showed raw output: %q", b)
		}
	}
}

// TestAnswerDoesNotWaitForEditSpacing: progress edits are spaced (here by
// an hour), the answer is not. When the last Pi finishes with a progress
// edit still waiting for its turn, that edit is dropped and the answer
// replaces the placeholder at once: the placeholder gets exactly one
// progress edit, then the answer.
func TestAnswerDoesNotWaitForEditSpacing(t *testing.T) {
	ws := sbt.New(t)
	cfg := testConfig(ws)
	cfg.PlaceholderAfter = 50 * time.Millisecond
	cfg.UpdateInterval = time.Hour
	pis, eng := newTwoPis(t)
	start(t, ws, cfg, eng, nil)

	ws.Mention("EvP2", "U1", "C1", "1700000302.000100", "aws pi-kitchen,pi-garage s3 ls")
	ids := pis.commands(t, "pi-kitchen", "pi-garage")
	placeholder := waitPosts(t, ws, sbt.KindPost, 1, inThread("C1", "1700000302.000100"))[0]
	onPlaceholder := func(r sbt.Record) bool { return r.TS == placeholder.TS }
	// The first edit goes at once (the running Pis, if the placeholder
	// did not show them, or pi-kitchen done); every later one would wait
	// an hour.
	shows(t, ws, placeholder, "pi-garage ⏳ running · pi-kitchen ⏳ running")
	pis.finish("pi-kitchen", ids["pi-kitchen"], 2700*time.Millisecond)
	waitPosts(t, ws, sbt.KindUpdate, 1, onPlaceholder)
	finished := time.Now()
	pis.finish("pi-garage", ids["pi-garage"], 4*time.Second)
	answer := waitPosts(t, ws, sbt.KindUpdate, 1, func(r sbt.Record) bool { return onPlaceholder(r) && !strings.HasPrefix(r.Text, "Working on") })[0]
	t.Logf("the answer reached Slack %v after the last Pi's final (progress edits spaced by %v)", answer.At.Sub(finished), cfg.UpdateInterval)
	ups := ws.Find(sbt.KindUpdate, onPlaceholder)
	if len(ups) != 2 || !strings.HasPrefix(ups[0].Text, "Working on") || strings.HasPrefix(ups[1].Text, "Working on") {
		t.Errorf("edits of the placeholder: %s\nwant one progress edit, then the answer", dump(ups))
	}
}
