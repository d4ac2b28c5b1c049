// Package sdnotifytest is a fake sdnotify.Notifier that records what it
// was told, for tests of code that notifies systemd.
package sdnotifytest

import (
	"slices"
	"sync"
	"time"

	"github.com/pifleet/pifleet/internal/sdnotify"
)

// Recorder records notifications as the strings systemd would receive
// ("READY=1", "STATUS=…", "WATCHDOG=1", "STOPPING=1"). Interval is what
// WatchdogInterval returns. Err, when set, is returned by every send.
type Recorder struct {
	Interval time.Duration

	mu   sync.Mutex
	msgs []string
	err  error
}

var _ sdnotify.Notifier = (*Recorder)(nil)

// SetErr makes later sends fail with err.
func (r *Recorder) SetErr(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = err
}

func (r *Recorder) add(m ...string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.msgs = append(r.msgs, m...)
	return nil
}

// Ready implements sdnotify.Notifier.
func (r *Recorder) Ready(status string) error {
	return r.add("READY=1", "STATUS="+sdnotify.OneLine(status))
}

// Status implements sdnotify.Notifier.
func (r *Recorder) Status(line string) error { return r.add("STATUS=" + sdnotify.OneLine(line)) }

// Watchdog implements sdnotify.Notifier.
func (r *Recorder) Watchdog() error { return r.add("WATCHDOG=1") }

// Stopping implements sdnotify.Notifier.
func (r *Recorder) Stopping() error { return r.add("STOPPING=1") }

// WatchdogInterval implements sdnotify.Notifier.
func (r *Recorder) WatchdogInterval() time.Duration { return r.Interval }

// Messages returns a copy of what was sent so far.
func (r *Recorder) Messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

// Count returns how many times msg was sent.
func (r *Recorder) Count(msg string) int {
	n := 0
	for _, m := range r.Messages() {
		if m == msg {
			n++
		}
	}
	return n
}
