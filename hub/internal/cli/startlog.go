package cli

import (
	"context"
	"log/slog"
	"sync"
)

// startLog holds the hub's records below WARN until it has started
// (release), so a hub that cannot start — a port in use, a bad file —
// shows its one error line, not the INFO lines of the steps that went
// well before it (discard). A warning lets out what is held first, in
// order: it belongs with them.
type startLog struct {
	h slog.Handler
	s *startState
}

type startState struct {
	mu       sync.Mutex
	held     []heldRecord
	released bool
}

type heldRecord struct {
	h slog.Handler
	r slog.Record
}

func newStartLog(h slog.Handler) *startLog { return &startLog{h: h, s: &startState{}} }

func (l *startLog) Enabled(ctx context.Context, lv slog.Level) bool { return l.h.Enabled(ctx, lv) }

func (l *startLog) WithAttrs(as []slog.Attr) slog.Handler {
	return &startLog{h: l.h.WithAttrs(as), s: l.s}
}

func (l *startLog) WithGroup(name string) slog.Handler {
	return &startLog{h: l.h.WithGroup(name), s: l.s}
}

func (l *startLog) Handle(ctx context.Context, r slog.Record) error {
	l.s.mu.Lock()
	if !l.s.released {
		if r.Level < slog.LevelWarn {
			l.s.held = append(l.s.held, heldRecord{l.h, r.Clone()})
			l.s.mu.Unlock()
			return nil
		}
		l.s.flushLocked(ctx)
	}
	l.s.mu.Unlock()
	return l.h.Handle(ctx, r)
}

// release writes what is held and lets every later record through.
func (l *startLog) release() {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	l.s.flushLocked(context.Background())
	l.s.released = true
}

// discard drops what is held: the hub did not start.
func (l *startLog) discard() {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	l.s.held = nil
	l.s.released = true
}

func (s *startState) flushLocked(ctx context.Context) {
	for _, e := range s.held {
		_ = e.h.Handle(ctx, e.r)
	}
	s.held = nil
}
