package console

import (
	"bytes"
	"io"
	"strings"
	"sync"
)

const redacted = "********"

// redactor writes to w with every occurrence of secret replaced, even
// when an occurrence is split across writes: it holds back the last
// len(secret)-1 bytes until more come or Flush is called. A Pi that echoes
// the password (a prompt shown before echo went off) must not put it into
// the transcript.
type redactor struct {
	mu      sync.Mutex
	w       io.Writer
	secret  []byte
	pending []byte
}

func (r *redactor) setSecret(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secret = []byte(s)
}

func (r *redactor) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending = append(r.pending, p...)
	if len(r.secret) == 0 {
		return len(p), r.flushLocked(len(r.pending))
	}
	r.pending = bytes.ReplaceAll(r.pending, r.secret, []byte(redacted))
	keep := len(r.secret) - 1
	if keep > len(r.pending) {
		keep = len(r.pending)
	}
	return len(p), r.flushLocked(len(r.pending) - keep)
}

func (r *redactor) flushLocked(n int) error {
	if n <= 0 {
		return nil
	}
	_, err := r.w.Write(r.pending[:n])
	r.pending = append(r.pending[:0], r.pending[n:]...)
	return err
}

// Flush writes what is held back.
func (r *redactor) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.flushLocked(len(r.pending))
}

// redactString replaces secret in s.
func redactString(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, redacted)
}
