package console

import (
	"context"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// TestFindIPOverARealPTY opens a real PTY through go.bug.st/serial
// exactly as a USB-TTL cable is opened (115200 8N1, input flushed), with a
// scripted Pi on the other end that answers Enter with the agent's banner.
// It needs no agetty and no root, so it also runs in the ARMv7 build under
// qemu (make test-arm): the serial ioctls are the ARM ones there.
func TestFindIPOverARealPTY(t *testing.T) {
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatalf("open a PTY: %v", err)
	}
	t.Cleanup(func() { master.Close(); slave.Close() })
	if _, err := term.MakeRaw(int(slave.Fd())); err != nil {
		t.Fatalf("raw %s: %v", slave.Name(), err)
	}
	// What the laptop had buffered before it opened the port: Open drops
	// it, or an old banner would pass for the current one.
	if _, err := master.Write([]byte(strings.ReplaceAll(agentBanner, "198.51.100.7", "203.0.113.250"))); err != nil {
		t.Fatal(err)
	}

	port, err := Open(slave.Name(), DefaultBaud)
	if err != nil {
		t.Fatalf("Open(%s): %v", slave.Name(), err)
	}
	t.Cleanup(func() { port.Close() })
	// The line settings as the kernel holds them: 115200 8N1.
	tio, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatalf("termios of the opened port: %v", err)
	}
	if speed := tio.Cflag & unix.CBAUD; speed != unix.B115200 {
		t.Errorf("speed bits %#o, want B115200 (%#o)", speed, unix.B115200)
	}
	if tio.Cflag&unix.CSIZE != unix.CS8 || tio.Cflag&unix.PARENB != 0 || tio.Cflag&unix.CSTOPB != 0 {
		t.Errorf("cflag %#o, want 8 data bits, no parity, one stop bit", tio.Cflag)
	}

	// The Pi: Enter gets the banner and a login prompt.
	sent := make(chan string, 16)
	go func() {
		b := make([]byte, 64)
		for {
			n, err := master.Read(b)
			if err != nil {
				return
			}
			select {
			case sent <- string(b[:n]):
			default:
			}
			if strings.Contains(string(b[:n]), "\r") {
				if _, err := io.WriteString(master, agentBanner); err != nil {
					return
				}
			}
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := FindIP(ctx, port, FindOptions{PromptTimeout: 15 * time.Second})
	if err != nil {
		t.Fatalf("FindIP over %s: %v", slave.Name(), err)
	}
	if r.Source != "banner" || len(r.Addresses) != 3 || r.Addresses[0].Addr != netip.MustParseAddr("198.51.100.7") {
		t.Errorf("got %+v, want the current banner's 3 addresses (not the stale one)", r)
	}
	select {
	case s := <-sent:
		if !strings.HasPrefix(s, "\r") {
			t.Errorf("first bytes on the line = %q, want Enter", s)
		}
	default:
		t.Error("nothing reached the Pi")
	}
}
