package chat

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// PiState is where one Pi's part of a command is.
type PiState string

// PiState values.
const (
	PiRunning  PiState = "running"   // sent, no final yet
	PiOK       PiState = "ok"        // ran and exited 0
	PiFailed   PiState = "failed"    // exited non-zero, refused or could not run
	PiTimedOut PiState = "timed-out" // killed at its deadline on the Pi
)

// PiStatus is one Pi's part of a command in progress.
type PiStatus struct {
	Device string
	State  PiState
	Took   time.Duration // how long it ran (done states only)
}

// Status is the progress of a command across the Pis it was sent to: the
// one progress model every front end shows (Slack edits its placeholder
// with Line). Pis the command was not sent to (offline, refused) are not
// in it: the answer lists them.
type Status struct {
	Pis []PiStatus
}

// perPiUpTo is how many Pis Line names one by one; beyond, it counts.
const perPiUpTo = 6

// namedRunning is how many still-running Pis a counted Line names.
const namedRunning = 5

var stateMark = map[PiState]string{PiOK: "✅", PiFailed: "❌", PiTimedOut: "⏰", PiRunning: "⏳"}

// Line is the status as one short line of plain text, bounded whatever
// the number of Pis: "pi-kitchen ✅ 2.7 s · pi-garage ⏳ running" for a
// few Pis; "12 ✅ · 1 ❌ · 3 ⏳ running: pi-a, pi-b, pi-c" for many
// (at most five running Pis named, the rest counted).
func (s Status) Line() string {
	pis := append([]PiStatus(nil), s.Pis...)
	sort.Slice(pis, func(i, j int) bool { return pis[i].Device < pis[j].Device })
	if len(pis) <= perPiUpTo {
		parts := make([]string, 0, len(pis))
		for _, p := range pis {
			parts = append(parts, CutRunes(p.Device, 64)+" "+p.word())
		}
		return strings.Join(parts, " · ")
	}
	count := map[PiState]int{}
	var running []string
	for _, p := range pis {
		count[p.State]++
		if p.State == PiRunning && len(running) < namedRunning {
			running = append(running, CutRunes(p.Device, 64))
		}
	}
	var parts []string
	for _, st := range []PiState{PiOK, PiFailed, PiTimedOut} {
		if count[st] > 0 {
			parts = append(parts, strconv.Itoa(count[st])+" "+stateMark[st])
		}
	}
	if n := count[PiRunning]; n > 0 {
		still := strings.Join(running, ", ")
		if n > len(running) {
			still += fmt.Sprintf(" +%d more", n-len(running))
		}
		parts = append(parts, strconv.Itoa(n)+" ⏳ running: "+still)
	}
	return strings.Join(parts, " · ")
}

// word is one Pi's state in Line: a mark and how long it took.
func (p PiStatus) word() string {
	switch p.State {
	case PiRunning:
		return "⏳ running"
	case PiTimedOut:
		return "⏰ timed out"
	}
	mark, ok := stateMark[p.State]
	if !ok {
		mark = "❔"
	}
	if p.Took <= 0 {
		return mark
	}
	return mark + " " + Took(p.Took)
}

// Took renders a command's run time: tenths of a second below 10 s
// ("2.7 s"), whole seconds below a minute, minutes and seconds below an
// hour ("1 min 30 s"), then as Duration.
func Took(d time.Duration) string {
	r := d.Round(time.Second)
	switch {
	case d < 10*time.Second:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s"
	case r < time.Minute:
		return strconv.Itoa(int(r.Seconds())) + " s"
	case r < time.Hour && r%time.Minute != 0:
		return fmt.Sprintf("%d min %d s", int(r.Minutes()), int(r.Seconds())%60)
	}
	return Duration(d)
}

// CutRunes shortens s to at most n runes, the last of them "…".
func CutRunes(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

type progressKey struct{}

// WithProgress returns a context through which long-running handlers
// report progress (Slack edits its placeholder message with it). fn gets
// each new Status in order and must return at once: an adapter keeps the
// latest and shows it when it may.
func WithProgress(ctx context.Context, fn func(Status)) context.Context {
	return context.WithValue(ctx, progressKey{}, fn)
}

// Progress reports the command's status to whoever asked, if anyone
// listens.
func Progress(ctx context.Context, s Status) {
	if fn, ok := ctx.Value(progressKey{}).(func(Status)); ok {
		fn(s)
	}
}

// AskProgress is Ask with a progress callback.
func (e *Engine) AskProgress(ctx context.Context, r Request, fn func(Status)) Reply {
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
