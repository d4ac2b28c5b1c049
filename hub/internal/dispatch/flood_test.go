package dispatch

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/pifleet/pifleet/hub/internal/chat"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/wire"
)

// A flood of unexpected, forged and malformed result messages is counted
// in Stats and logged a few times, not once each; the results of commands
// the hub knows still arrive.
func TestResultFloodIsCountedAndQuiet(t *testing.T) {
	p := &pub{}
	logs := &testenv.SyncBuffer{}
	var mu sync.Mutex
	var late []Result
	d, _ := newTestDispatcher(t, p, staticFleet{"pi1": true}, func(o *Options) {
		o.Wait = 1 // the command stays in flight with nobody waiting
		o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		o.OnLateResult = func(r Result) { mu.Lock(); late = append(late, r); mu.Unlock() }
	})
	d.Handle(context.Background(), chat.Request{User: "U2", Text: "aws pi1 s3 ls"}, []string{"pi1", "s3", "ls"})
	real := p.commands()[0].ID
	before := len(logs.Lines())

	const n = 300
	raw := func(topic, payload string) { d.HandleResult(topic, []byte(payload)) }
	for i := range n {
		id := fmt.Sprintf("f%d", i)
		raw("garbage/"+id, "x")                       // bad topic
		raw(wire.ResultTopic("pi1", "hub1", id), "{") // bad JSON
		send(d, "pi1", id,
			final("pi2", id, 1, 0, ""),   // mismatched final
			notice("pi2", id),            // mismatched notice
			chunk("pi1", id+"x", 1, "x"), // mismatched chunk
			final("pi1", id, 1, 0, ""),   // unknown final (a forged command's rejection)
			chunk("pi1", id, 1, "x"),     // unknown chunk
			notice("pi1", id),            // stray duplicate
			wire.Notice{V: 1, Kind: wire.KindNotice, ID: id, Device: "pi1", Reason: "from-the-future"})
	}
	want := Stats{BadRecords: 2 * n, Mismatched: 3 * n, Unknown: 2 * n, OtherNotices: n, StrayDuplicates: n}
	if st := d.Stats(); st != want {
		t.Errorf("Stats %+v, want %+v", st, want)
	}
	got := logs.Lines()[before:]
	if len(got) > 20 {
		t.Errorf("%d log lines for %d bad result messages, want at most 20:\n%s", len(got), 9*n, strings.Join(got, "\n"))
	}
	if last := got[len(got)-1]; !strings.Contains(last, "muted for a minute") {
		t.Errorf("the last line does not say that more are muted: %s", last)
	}
	mu.Lock()
	unknown := len(late)
	mu.Unlock()
	if unknown > 20 {
		t.Errorf("%d unknown finals reached OnLateResult, want at most 20 (it can only log them)", unknown)
	}

	// The real command's result still arrives, with its request.
	b, _ := json.Marshal(final("pi1", real, 1, 0, "bucket\n"))
	d.HandleResult(wire.ResultTopic("pi1", "hub1", real), b)
	mu.Lock()
	defer mu.Unlock()
	if len(late) != unknown+1 || late[unknown].ID != real || late[unknown].Request.User != "U2" || late[unknown].Output != "bucket\n" {
		t.Errorf("late results %+v, want the real command's last", late[unknown:])
	}
}
