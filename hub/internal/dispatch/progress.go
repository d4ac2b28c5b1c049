package dispatch

import (
	"context"
	"sync"
	"time"

	"github.com/pifleet/pifleet/hub/internal/chat"
	"github.com/pifleet/pifleet/internal/wire"
)

// tracker follows one run's Pis from send to final and reports each
// change as a chat.Status (chat.Progress): the asker sees which Pis are
// done, how long they took and which still run, never raw output.
type tracker struct {
	ctx context.Context
	now func() time.Time

	mu      sync.Mutex
	pis     []chat.PiStatus
	index   map[string]int // device → pis
	sent    map[string]time.Time
	started bool // the first report is out: every send is done
	closed  bool
}

func newTracker(ctx context.Context, now func() time.Time) *tracker {
	return &tracker{ctx: ctx, now: now, index: map[string]int{}, sent: map[string]time.Time{}}
}

// add counts dev as running from now (not reported until report).
func (t *tracker) add(dev string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.index[dev] = len(t.pis)
	t.pis = append(t.pis, chat.PiStatus{Device: dev, State: chat.PiRunning})
	t.sent[dev] = t.now()
}

// report sends the current status, the first one once every command is
// sent (finals before it are in it), unless the run has ended.
func (t *tracker) report() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.started = true
	t.reportLocked()
}

func (t *tracker) reportLocked() {
	if !t.started || t.closed || len(t.pis) == 0 {
		return
	}
	chat.Progress(t.ctx, chat.Status{Pis: append([]chat.PiStatus(nil), t.pis...)})
}

// final records dev's final and reports. It is called under the
// dispatcher's lock, before the run's wait sees the result, so no report
// follows the answer; chat.Progress's callback never blocks.
func (t *tracker) final(dev string, fin wire.Final) {
	t.mu.Lock()
	defer t.mu.Unlock()
	i, ok := t.index[dev]
	if !ok {
		return
	}
	took := time.Duration(fin.DurationMS) * time.Millisecond
	if took <= 0 {
		took = t.now().Sub(t.sent[dev])
	}
	t.pis[i].State, t.pis[i].Took = stateOf(fin), took
	t.reportLocked()
}

// close ends the reports: the answer is on its way.
func (t *tracker) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
}

// stateOf is a final as a progress state.
func stateOf(fin wire.Final) chat.PiState {
	switch {
	case fin.Outcome == wire.OutcomeTimeout:
		return chat.PiTimedOut
	case fin.Outcome == wire.OutcomeExited && fin.ExitCode == 0:
		return chat.PiOK
	}
	return chat.PiFailed
}
