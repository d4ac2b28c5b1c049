package cmdexec

import (
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/pifleet/pifleet/internal/wire"
)

// chunker coalesces the runner's output into Chunks: a chunk ends when the
// stream changes, when it reaches max bytes, or flushEvery after its first
// byte, so output streams without one message per line. Seq starts at 1
// and has no gaps; publish is called in order, under the lock.
type chunker struct {
	mu      sync.Mutex
	max     int
	every   time.Duration
	publish func(wire.Chunk)
	stream  wire.Stream
	buf     strings.Builder
	seq     uint64
	timer   *time.Timer
	closed  bool
}

func newChunker(max int, every time.Duration, publish func(wire.Chunk)) *chunker {
	return &chunker{max: max, every: every, publish: publish}
}

func (c *chunker) add(s wire.Stream, data string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if s != c.stream {
		c.flushLocked()
		c.stream = s
	}
	for data != "" {
		room := c.max - c.buf.Len()
		part := data
		if len(part) > room {
			part = data[:room]
			for len(part) > 0 && !utf8.ValidString(part) {
				part = part[:len(part)-1]
			}
			if part == "" && c.buf.Len() == 0 { // a rune longer than max: impossible for max ≥ 4
				part = data[:room]
			}
		}
		c.buf.WriteString(part)
		data = data[len(part):]
		if c.buf.Len() >= c.max || data != "" {
			c.flushLocked()
		}
	}
	if c.buf.Len() > 0 && c.timer == nil {
		c.timer = time.AfterFunc(c.every, func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.timer = nil
			c.flushLocked()
		})
	}
}

func (c *chunker) flushLocked() {
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	if c.buf.Len() == 0 {
		return
	}
	c.seq++
	c.publish(wire.Chunk{Seq: c.seq, Stream: c.stream, Data: c.buf.String()})
	c.buf.Reset()
}

// close flushes and returns the last sequence number used.
func (c *chunker) close() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flushLocked()
	c.closed = true
	return c.seq
}
