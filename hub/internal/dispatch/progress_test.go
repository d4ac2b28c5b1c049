package dispatch

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/chat"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/wire"
)

// progressLog records the status lines a run reports.
type progressLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *progressLog) ctx() context.Context {
	return chat.WithProgress(context.Background(), func(s chat.Status) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, s.Line())
	})
}

func (l *progressLog) got() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// TestProgressIsPerPiNotRawOutput: the asker sees each Pi running, then
// done with its time or timed out, never a line of output; the last
// report comes before the answer, and none after it.
func TestProgressIsPerPiNotRawOutput(t *testing.T) {
	p := &pub{}
	d, _ := newTestDispatcher(t, p, staticFleet{"pi1": true, "pi2": true, "pi3": false}, nil)
	cmds := make(chan wire.Command, 2)
	p.onCmd = func(c wire.Command) { cmds <- c }
	var log progressLog
	answer := make(chan chat.Reply, 1)
	go func() {
		answer <- d.Handle(log.ctx(), chat.Request{User: "U2"}, []string{"pi1,pi2,pi3", "s3", "ls"})
	}()
	ids := map[string]string{}
	for len(ids) < 2 {
		select {
		case c := <-cmds:
			ids[c.Device] = c.ID
		case <-time.After(10 * time.Second):
			t.Fatalf("commands sent to %v, want pi1 and pi2", ids)
		}
	}
	// The first report comes once both are sent.
	testenv.Eventually(t, 10*time.Second, func() string {
		if len(log.got()) == 0 {
			return "no progress reported after both commands were sent"
		}
		return ""
	})
	send(d, "pi1", ids["pi1"], chunk("pi1", ids["pi1"], 1, "{\n  \"Buckets\": []\n}\n"), final("pi1", ids["pi1"], 2, 0, ""))
	timedOut := final("pi2", ids["pi2"], 1, -1, "")
	timedOut.Outcome, timedOut.DurationMS = wire.OutcomeTimeout, 30000
	send(d, "pi2", ids["pi2"], timedOut)
	var r chat.Reply
	select {
	case r = <-answer:
	case <-time.After(10 * time.Second):
		t.Fatal("no answer after both finals")
	}
	want := []string{
		"pi1 ⏳ running · pi2 ⏳ running",
		"pi1 ✅ 1.2 s · pi2 ⏳ running",
		"pi1 ✅ 1.2 s · pi2 ⏰ timed out",
	}
	if got := log.got(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("progress:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(r.Text, "pi3") {
		t.Errorf("the answer does not name pi3, which was not sent to:\n%s", r.Text)
	}
}

func TestNoProgressAfterTheAnswer(t *testing.T) {
	p := &pub{}
	d, _ := newTestDispatcher(t, p, staticFleet{"pi1": true}, func(o *Options) { o.Wait = 50 * time.Millisecond })
	var log progressLog
	r := d.Handle(log.ctx(), chat.Request{User: "U2"}, []string{"pi1", "s3", "ls"})
	if !strings.Contains(r.Text, "no result within") {
		t.Fatalf("answer = %q, want no result in time", r.Text)
	}
	before := log.got()
	if len(before) != 1 || before[0] != "pi1 ⏳ running" {
		t.Errorf("progress before the answer = %q, want only pi1 running", before)
	}
	id := p.commands()[0].ID
	send(d, "pi1", id, final("pi1", id, 1, 0, "late\n"))
	if got := log.got(); len(got) != len(before) {
		t.Errorf("progress after the answer: %q", got[len(before):])
	}
}
