package chat

import "context"

type progressKey struct{}

// WithProgress returns a context through which long-running handlers
// report progress (Slack edits its placeholder message with it).
func WithProgress(ctx context.Context, fn func(string)) context.Context {
	return context.WithValue(ctx, progressKey{}, fn)
}

// Progress reports a one-line status to whoever asked, if anyone listens.
func Progress(ctx context.Context, status string) {
	if fn, ok := ctx.Value(progressKey{}).(func(string)); ok {
		fn(status)
	}
}

// AskProgress is Ask with a progress callback.
func (e *Engine) AskProgress(ctx context.Context, r Request, fn func(string)) Reply {
	return e.Ask(WithProgress(ctx, fn), r)
}

type threadKey struct{}

// WithThread says which thread a confirmed action's answer went to (Slack:
// the thread of the message with the buttons), so results that come later
// follow it there. Confirm has only a token; this carries the rest.
func WithThread(ctx context.Context, thread string) context.Context {
	return context.WithValue(ctx, threadKey{}, thread)
}

// ThreadFrom returns what WithThread set, or "".
func ThreadFrom(ctx context.Context) string {
	s, _ := ctx.Value(threadKey{}).(string)
	return s
}
