// Package loglimit bounds how often a daemon writes a kind of log record,
// so a flood of bad input (garbage, refused logins, a broken peer) cannot
// fill the disk or the journal: Burst records per period, the rest counted.
package loglimit

import (
	"sync"
	"time"
)

// Limit lets Burst records through per Per and counts the rest. The zero
// value lets nothing through; set both fields.
type Limit struct {
	Per   time.Duration
	Burst int

	mu    sync.Mutex
	start time.Time
	n     int
	muted int
}

// Allow reports whether a record at now may be written, and how many were
// muted in the period that just ended (to be reported once).
func (l *Limit) Allow(now time.Time) (ok bool, mutedBefore int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.start) >= l.Per {
		mutedBefore = l.muted
		l.start, l.n, l.muted = now, 0, 0
	}
	if l.n < l.Burst {
		l.n++
		return true, mutedBefore
	}
	l.muted++
	return false, mutedBefore
}

// Exhausted reports whether the current period's burst is used up.
func (l *Limit) Exhausted() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n >= l.Burst
}
