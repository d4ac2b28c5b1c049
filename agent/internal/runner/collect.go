package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/pifleet/pifleet/internal/wire"
)

// maxPartial is the longest unterminated line held back for redaction
// before it is let out anyway.
const maxPartial = 8 << 10

// collector turns the demultiplexed streams into redacted, ordered,
// capped output. Redaction works on whole lines so a secret split across
// two writes is still found; a partial line is let out when the other
// stream writes (to keep the order) or when it grows past maxPartial.
// StdCopy calls it from one goroutine, so it needs no lock.
type collector struct {
	red       *Redactor
	emit      Emit
	limit     int
	partial   map[wire.Stream]*strings.Builder
	last      wire.Stream
	out       strings.Builder
	bytes     int64
	truncated bool
}

func newCollector(red *Redactor, emit Emit, limit int) *collector {
	return &collector{red: red, emit: emit, limit: limit,
		partial: map[wire.Stream]*strings.Builder{wire.Stdout: {}, wire.Stderr: {}}}
}

type streamWriter struct {
	c *collector
	s wire.Stream
}

func (w streamWriter) Write(p []byte) (int, error) {
	w.c.write(w.s, p)
	return len(p), nil
}

func (c *collector) writer(s wire.Stream) io.Writer { return streamWriter{c, s} }

func (c *collector) write(s wire.Stream, p []byte) {
	c.bytes += int64(len(p))
	if c.last != "" && c.last != s {
		c.flushStream(c.last)
	}
	c.last = s
	b := c.partial[s]
	b.Write(p)
	buf := b.String()
	if i := strings.LastIndexByte(buf, '\n'); i >= 0 {
		c.send(s, buf[:i+1])
		b.Reset()
		b.WriteString(buf[i+1:])
	}
	if b.Len() > maxPartial {
		c.flushStream(s)
	}
}

func (c *collector) flushStream(s wire.Stream) {
	if b := c.partial[s]; b.Len() > 0 {
		c.send(s, b.String())
		b.Reset()
	}
}

func (c *collector) flush() {
	c.flushStream(wire.Stdout)
	c.flushStream(wire.Stderr)
}

func (c *collector) send(s wire.Stream, text string) {
	if c.truncated {
		return
	}
	text = c.red.Redact(text)
	if room := c.limit - c.out.Len(); len(text) > room {
		text = text[:room]
		for len(text) > 0 && !utf8.ValidString(text) {
			text = text[:len(text)-1]
		}
		c.truncated = true
	}
	if text == "" {
		return
	}
	c.out.WriteString(text)
	c.emit(s, text)
}

func (c *collector) result() (string, int64, bool) {
	return c.out.String(), c.bytes, c.truncated
}

// pullProgress reads the engine's JSON progress stream, reporting each
// layer's status change (not every byte count) and returning the stream's
// error, if any.
func pullProgress(r io.Reader, report func(string)) error {
	dec := json.NewDecoder(r)
	seen := map[string]string{}
	for {
		var m struct {
			ID     string `json:"id"`
			Status string `json:"status"`
			Error  string `json:"error"`
		}
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("progress: %w", err)
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
		if seen[m.ID] != m.Status {
			seen[m.ID] = m.Status
			report(strings.TrimSpace(m.ID + " " + m.Status))
		}
	}
}
