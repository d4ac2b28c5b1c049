package report

import "time"

// Debouncer coalesces a burst of events into one action. It fires Quiet
// after the last event of a burst, but never later than Max after the
// first, so a stream of events that never pauses is still acted on.
type Debouncer struct {
	Quiet time.Duration // default 150 ms
	Max   time.Duration // default 1 s

	armed       bool
	first, last time.Time
}

func (d *Debouncer) quiet() time.Duration {
	if d.Quiet <= 0 {
		return 150 * time.Millisecond
	}
	return d.Quiet
}

func (d *Debouncer) max() time.Duration {
	if d.Max <= 0 {
		return time.Second
	}
	if d.Max < d.quiet() {
		return d.quiet()
	}
	return d.Max
}

// Event records an event at now and returns when the burst should fire.
func (d *Debouncer) Event(now time.Time) time.Time {
	if !d.armed {
		d.armed, d.first = true, now
	}
	d.last = now
	return d.Deadline()
}

// Armed reports whether events are waiting.
func (d *Debouncer) Armed() bool { return d.armed }

// Deadline is when the pending burst fires (zero when none is pending).
func (d *Debouncer) Deadline() time.Time {
	if !d.armed {
		return time.Time{}
	}
	t := d.last.Add(d.quiet())
	if cap := d.first.Add(d.max()); cap.Before(t) {
		t = cap
	}
	return t
}

// Fire reports whether the burst is due at now; when it is, the
// Debouncer disarms, ready for the next burst.
func (d *Debouncer) Fire(now time.Time) bool {
	if !d.armed || now.Before(d.Deadline()) {
		return false
	}
	d.armed = false
	return true
}
