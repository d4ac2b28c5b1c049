package console

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// EscapeHelp documents the escape sequences; like ssh, they are only
// recognised right after Enter (or at the start).
const EscapeHelp = "Escapes (after Enter): ~. quit   ~~ send ~   ~? this help"

// ErrQuit is returned by Passthrough when the user typed the escape.
var ErrQuit = errors.New("quit")

// escaper scans keyboard input for the escape sequence.
type escaper struct {
	lineStart bool
	tilde     bool
}

// filter returns what to send to the Pi for in, whether to quit, and
// whether to print the help. Bytes after a quit are dropped.
func (e *escaper) filter(in []byte) (out []byte, quit, help bool) {
	for _, c := range in {
		if e.tilde {
			e.tilde = false
			switch c {
			case '.':
				return out, true, help
			case '?':
				help = true
				continue
			case '~':
				out = append(out, '~')
				e.lineStart = false
				continue
			}
			out = append(out, '~')
		} else if c == '~' && e.lineStart {
			e.tilde = true
			continue
		}
		out = append(out, c)
		e.lineStart = c == '\r' || c == '\n'
	}
	return out, false, help
}

// Passthrough copies port → out and in → port until the user types the
// escape (nil), ctx ends, or the port fails (the cable was pulled). The
// caller puts the terminal into raw mode and restores it; Passthrough only
// moves bytes, so it works with any terminal, or none.
func Passthrough(ctx context.Context, port io.ReadWriter, in io.Reader, out io.Writer) error {
	errc := make(chan error, 2)
	go func() {
		_, err := io.Copy(out, port)
		if err == nil {
			err = io.EOF
		}
		errc <- fmt.Errorf("serial line closed: %w", err)
	}()
	go func() {
		e := &escaper{lineStart: true}
		b := make([]byte, 1024)
		for {
			n, err := in.Read(b)
			send, quit, help := e.filter(b[:n])
			if len(send) > 0 {
				if _, werr := port.Write(send); werr != nil {
					errc <- fmt.Errorf("write to the serial line: %w", werr)
					return
				}
			}
			if help {
				fmt.Fprintf(out, "\r\n[pifleet console] %s\r\n", EscapeHelp)
			}
			if quit {
				errc <- ErrQuit
				return
			}
			if err != nil {
				errc <- fmt.Errorf("keyboard input ended: %w", err)
				return
			}
		}
	}()
	select {
	case err := <-errc:
		if errors.Is(err, ErrQuit) {
			return nil
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
