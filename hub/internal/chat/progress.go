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
