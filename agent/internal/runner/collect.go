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
// capped output. Each stream is redacted on its own text, whole lines at
// a time, so a secret split across writes, or around a write on the other
// stream, is still found; a line whose end may begin a secret (Redactor.
// MayContinue) is held until the next line, so a secret broken over two
// lines is found too. A partial line waits for its line break (or
// maxPartial, or the end): lines of one stream keep their order, and
// whole lines of the two streams appear in the order they were completed.
// StdCopy calls it from one goroutine, so it needs no lock.
type collector struct {
	red       *Redactor
	emit      Emit
	limit     int
	partial   map[wire.Stream]*strings.Builder
	held      map[wire.Stream]string // complete lines, already redacted, waiting for the next line
	out       strings.Builder
	bytes     int64
	truncated bool
}

func newCollector(red *Redactor, emit Emit, limit int) *collector {
	return &collector{red: red, emit: emit, limit: limit,
		partial: map[wire.Stream]*strings.Builder{wire.Stdout: {}, wire.Stderr: {}},
		held:    map[wire.Stream]string{}}
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
	b := c.partial[s]
	b.Write(p)
	buf := b.String()
	if i := strings.LastIndexByte(buf, '\n'); i >= 0 {
		text := c.red.Redact(c.held[s] + buf[:i+1])
		c.held[s] = ""
		if c.red.MayContinue(text) {
			// Hold the last line: the next one may finish a secret.
			j := strings.LastIndexByte(text[:len(text)-1], '\n') + 1
			text, c.held[s] = text[:j], text[j:]
		}
		c.send(s, text)
		b.Reset()
		b.WriteString(buf[i+1:])
	}
	if b.Len() > maxPartial {
		c.flushStream(s)
	}
}

// flushStream lets out what stream s holds: held lines and a partial one.
func (c *collector) flushStream(s wire.Stream) {
	text := c.held[s] + c.partial[s].String()
	c.held[s] = ""
	c.partial[s].Reset()
	c.send(s, c.red.Redact(text))
}

func (c *collector) flush() {
	c.flushStream(wire.Stdout)
	c.flushStream(wire.Stderr)
}

func (c *collector) send(s wire.Stream, text string) {
	if c.truncated || text == "" {
		return
	}
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
