package slackbottest

import (
	"context"
	"sync"
	"time"

	"github.com/pifleet/pifleet/hub/internal/chat"
	"github.com/pifleet/pifleet/hub/internal/fleet"
)

// Engine is a fake command engine (a slackbot.Asker and ProgressAsker). It
// records what it was asked and answers with Answer (default: echo).
type Engine struct {
	// Answer makes the reply; nil echoes the request text.
	Answer func(chat.Request) chat.Reply
	// Delay makes every answer slow; Progress statuses are reported,
	// evenly spread, while it waits.
	Delay    time.Duration
	Progress []chat.Status
	// Gate, when set, holds every answer until it is closed: a test can
	// check what happened before the engine answered.
	Gate chan struct{}

	mu        sync.Mutex
	asked     []chat.Request
	confirmed [][2]string
}

// Ask implements slackbot.Asker.
func (e *Engine) Ask(ctx context.Context, r chat.Request) chat.Reply {
	return e.AskProgress(ctx, r, func(chat.Status) {})
}

// AskProgress implements slackbot.ProgressAsker.
func (e *Engine) AskProgress(ctx context.Context, r chat.Request, progress func(chat.Status)) chat.Reply {
	e.mu.Lock()
	e.asked = append(e.asked, r)
	e.mu.Unlock()
	if e.Gate != nil {
		select {
		case <-e.Gate:
		case <-ctx.Done():
			return chat.Reply{Text: "cancelled", Problem: true}
		}
	}
	if e.Delay > 0 {
		steps := len(e.Progress) + 1
		for i := 0; i < steps; i++ {
			select {
			case <-time.After(e.Delay / time.Duration(steps)):
			case <-ctx.Done():
				return chat.Reply{Text: "cancelled", Problem: true}
			}
			if i < len(e.Progress) {
				progress(e.Progress[i])
			}
		}
	}
	if e.Answer != nil {
		return e.Answer(r)
	}
	return chat.Reply{Text: "you said: " + r.Text}
}

// Confirm implements slackbot.Asker.
func (e *Engine) Confirm(_ context.Context, user, token string) chat.Reply {
	e.mu.Lock()
	e.confirmed = append(e.confirmed, [2]string{user, token})
	e.mu.Unlock()
	return chat.Reply{Title: "Done", Text: "confirmed " + token}
}

// Asked returns the requests so far.
func (e *Engine) Asked() []chat.Request {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]chat.Request(nil), e.asked...)
}

// Confirmed returns the (user, token) pairs confirmed so far.
func (e *Engine) Confirmed() [][2]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([][2]string(nil), e.confirmed...)
}

// Alerts is a fake slackbot.AlertSource (the hub's fleet is the real one).
type Alerts struct {
	mu   sync.Mutex
	next int
	fns  map[int]func(fleet.Alert)
}

// Subscribe implements slackbot.AlertSource.
func (a *Alerts) Subscribe(fn func(fleet.Alert)) (cancel func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fns == nil {
		a.fns = map[int]func(fleet.Alert){}
	}
	id := a.next
	a.next++
	a.fns[id] = fn
	return func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		delete(a.fns, id)
	}
}

// Subscribers is how many callbacks are subscribed.
func (a *Alerts) Subscribers() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.fns)
}

// Emit delivers al to every subscriber.
func (a *Alerts) Emit(al fleet.Alert) {
	a.mu.Lock()
	var fns []func(fleet.Alert)
	for _, fn := range a.fns {
		fns = append(fns, fn)
	}
	a.mu.Unlock()
	for _, fn := range fns {
		fn(al)
	}
}
