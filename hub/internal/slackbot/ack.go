package slackbot

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ackWatch learns when slack-go has written an ack to the WebSocket.
//
// socketmode.Client.Ack only queues the ack for the connection's writer
// goroutine; nothing tells the caller when it went out. A quick answer (the
// engine answers in microseconds) could then reach Slack before its ack.
// The client's debug log says when each response was written, so the bot
// runs socketmode with debug on, reads that one line here and drops or
// demotes the rest. Should a library update change the line, handlers wait
// ackWaitMax instead, which is still "ack first, then work"; a test
// (TestAckIsWrittenBeforeTheWorkStarts) notices the change.
type ackWatch struct {
	log     *slog.Logger
	mu      sync.Mutex
	waiting map[string]chan struct{}
	seen    uint64 // acks confirmed written (for the test)
}

const (
	ackWrittenPrefix = "Finished sending Socket Mode response with envelope ID "
	ackWaitMax       = time.Second
)

func newAckWatch(log *slog.Logger) *ackWatch {
	return &ackWatch{log: log, waiting: map[string]chan struct{}{}}
}

// expect registers envelope before its ack is queued.
func (a *ackWatch) expect(envelope string) <-chan struct{} {
	ch := make(chan struct{})
	a.mu.Lock()
	a.waiting[envelope] = ch
	a.mu.Unlock()
	return ch
}

// forget drops an envelope whose ack could not be queued.
func (a *ackWatch) forget(envelope string) {
	a.mu.Lock()
	delete(a.waiting, envelope)
	a.mu.Unlock()
}

// wait blocks until the ack of envelope was written, for at most ackWaitMax.
func (a *ackWatch) wait(ctx context.Context, envelope string, ch <-chan struct{}) {
	t := time.NewTimer(ackWaitMax)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
		a.forget(envelope)
		a.log.Debug("slack: ack not confirmed written; carrying on", "envelope", envelope)
	case <-ctx.Done():
		a.forget(envelope)
	}
}

func (a *ackWatch) written() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seen
}

// Output receives socketmode's log lines (it is the client's logger).
func (a *ackWatch) Output(_ int, s string) error {
	s = strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(s, ackWrittenPrefix); ok {
		if id, err := strconv.Unquote(rest); err == nil {
			a.mu.Lock()
			if ch, ok := a.waiting[id]; ok {
				close(ch)
				delete(a.waiting, id)
			}
			a.seen++
			a.mu.Unlock()
		}
		return nil
	}
	// Debug chatter, some of it carrying message text: not worth a line.
	for _, noise := range []string{"Received WebSocket message", "Scheduling Socket Mode response", "Sending Socket Mode response",
		"Starting to receive message", "Finished to receive message", "WebSocket ping message received"} {
		if strings.HasPrefix(s, noise) {
			return nil
		}
	}
	a.log.Debug("slack-go: " + s)
	return nil
}
