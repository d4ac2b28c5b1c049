package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sync"
	"time"
)

// session reads a serial line in the background and lets the dialogue
// wait for patterns ("expect").
type session struct {
	w          io.Writer
	mu         sync.Mutex
	buf        []byte // received since the last mark
	changed    chan struct{}
	readErr    error
	transcript *redactor // nil: no transcript
	secret     string    // redacted from transcript and error texts
}

func newSession(rw io.ReadWriter, transcript io.Writer) *session {
	s := &session{w: rw, changed: make(chan struct{}, 1)}
	if transcript != nil {
		s.transcript = &redactor{w: transcript}
	}
	go s.pump(rw)
	return s
}

func (s *session) pump(r io.Reader) {
	b := make([]byte, 4096)
	for {
		n, err := r.Read(b)
		s.mu.Lock()
		if n > 0 {
			s.buf = append(s.buf, b[:n]...)
			if s.transcript != nil {
				s.transcript.Write(b[:n])
			}
		}
		if err != nil {
			s.readErr = err
		}
		s.mu.Unlock()
		select {
		case s.changed <- struct{}{}:
		default:
		}
		if err != nil {
			return
		}
	}
}

// send writes to the line. Secrets go through it too: never log p.
func (s *session) send(p string) error {
	if _, err := io.WriteString(s.w, p); err != nil {
		return fmt.Errorf("write to the serial line: %w", err)
	}
	return nil
}

// setSecret makes the session redact secret from now on.
func (s *session) setSecret(secret string) {
	s.mu.Lock()
	s.secret = secret
	s.mu.Unlock()
	if s.transcript != nil {
		s.transcript.setSecret(secret)
	}
}

// close flushes the transcript.
func (s *session) close() {
	if s.transcript != nil {
		s.transcript.Flush()
	}
}

// mark forgets what was received so far.
func (s *session) mark() {
	s.mu.Lock()
	s.buf = nil
	s.mu.Unlock()
}

// text returns what was received since the last mark, cleaned and
// without the secret (it ends up in error messages).
func (s *session) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return redactString(cleanText(string(s.buf)), s.secret)
}

var errTimeout = errors.New("timeout")

// expect waits until one of res matches the received text (cleaned) and
// returns its index, or errTimeout after d.
func (s *session) expect(ctx context.Context, d time.Duration, res ...*regexp.Regexp) (int, error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		s.mu.Lock()
		text, rerr := cleanText(string(s.buf)), s.readErr
		s.mu.Unlock()
		for i, re := range res {
			if re.MatchString(text) {
				return i, nil
			}
		}
		if rerr != nil {
			return -1, fmt.Errorf("read from the serial line: %w", rerr)
		}
		select {
		case <-s.changed:
		case <-timer.C:
			return -1, errTimeout
		case <-ctx.Done():
			return -1, ctx.Err()
		}
	}
}
