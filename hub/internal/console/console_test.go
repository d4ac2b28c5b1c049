package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.bug.st/serial"

	"github.com/pifleet/pifleet/internal/testenv"
)

// A banner as pifleet-agent renders it (agent/internal/console
// testdata/banner.golden), the way agetty sends it: CRLF line ends.
const agentBanner = "\r\n=== pifleet pi3-kitchen ===\r\nip     wlan0    198.51.100.7/24\r\nip     eth0     192.0.2.10/24 2001:db8::10/64\r\nhub    connected\r\nhealth clock_unsynced under_voltage\r\n=== end pifleet ===\r\n\r\npi3-kitchen login: "

func TestParseBanner(t *testing.T) {
	b, ok := ParseBanner("\x1b[H\x1b[2J" + agentBanner)
	if !ok {
		t.Fatal("got no banner, want one")
	}
	var got []string
	for _, a := range b.Addresses {
		got = append(got, fmt.Sprintf("%s/%d %s", a.Addr, a.Prefix, a.Interface))
	}
	want := "198.51.100.7/24 wlan0,192.0.2.10/24 eth0,2001:db8::10/64 eth0"
	if strings.Join(got, ",") != want || b.Hostname != "pi3-kitchen" || !b.HubConnected || strings.Join(b.Health, " ") != "clock_unsynced under_voltage" {
		t.Errorf("got %+v (%s), want pi3-kitchen, %s, hub connected, two problems", b, strings.Join(got, ","), want)
	}
}

func TestParseBannerCases(t *testing.T) {
	for _, tt := range []struct {
		name, text string
		ok         bool
		addrs      int
		host       string
	}{
		{"none", "\r\nDebian GNU/Linux 12 raspberrypi ttyS0\r\n\r\nraspberrypi login: ", false, 0, ""},
		{"cut off", "=== pifleet pi ===\r\nip     eth0     192.0.2.1/24\r\n", false, 0, ""},
		{"no address", "=== pifleet pi3-shed ===\nip     none (no usable address)\nhub    NOT connected\nhealth ok\n=== end pifleet ===\n", true, 0, "pi3-shed"},
		{"last wins", strings.Replace(agentBanner, "pi3-kitchen", "old", 1) + agentBanner, true, 3, "pi3-kitchen"},
		{"garbage addresses", "=== pifleet x ===\nip eth0 999.1.1.1/24 not/an/ip 192.0.2.5/24\n=== end pifleet ===\n", true, 1, "x"},
	} {
		b, ok := ParseBanner(tt.text)
		if ok != tt.ok || len(b.Addresses) != tt.addrs || b.Hostname != tt.host {
			t.Errorf("%s: got ok=%v %d addresses host %q, want %v %d %q", tt.name, ok, len(b.Addresses), b.Hostname, tt.ok, tt.addrs, tt.host)
		}
	}
}

func TestEscaper(t *testing.T) {
	for _, tt := range []struct {
		in, send   string
		quit, help bool
	}{
		{"~.", "", true, false},                    // at the start
		{"ls\r~.", "ls\r", true, false},            // after Enter
		{"a~.", "a~.", false, false},               // not after Enter
		{"\r~~x", "\r~x", false, false},            // ~~ sends one ~
		{"\r~?", "\r", false, true},                // help
		{"\r~x", "\r~x", false, false},             // other: both sent
		{"\n~.rest", "\n", true, false},            // bytes after quit dropped
		{"\x03\x04\r", "\x03\x04\r", false, false}, // Ctrl-C/D go to the Pi
	} {
		e := &escaper{lineStart: true}
		send, quit, help := e.filter([]byte(tt.in))
		if string(send) != tt.send || quit != tt.quit || help != tt.help {
			t.Errorf("%q: got send=%q quit=%v help=%v, want %q %v %v", tt.in, send, quit, help, tt.send, tt.quit, tt.help)
		}
	}
	// Split across reads.
	e := &escaper{lineStart: true}
	e.filter([]byte("x\r"))
	e.filter([]byte("~"))
	if _, quit, _ := e.filter([]byte(".")); !quit {
		t.Error("~ and . in separate reads: got no quit")
	}
}

func TestRedactor(t *testing.T) {
	var out bytes.Buffer
	r := &redactor{w: &out}
	r.Write([]byte("before "))
	r.setSecret("hunter2")
	for _, chunk := range []string{"Password: hun", "ter", "2\r\nok hunter2", "!"} {
		r.Write([]byte(chunk))
	}
	r.Flush()
	if got, want := out.String(), "before Password: ********\r\nok ********!"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestPickPort(t *testing.T) {
	pl := Port{Name: "/dev/ttyUSB0", USB: true, VID: "067b", PID: "2303", Chip: "PL2303"}
	cp := Port{Name: "/dev/ttyUSB1", USB: true, VID: "10c4", PID: "ea60", Chip: "CP210x"}
	other := Port{Name: "/dev/ttyACM0", USB: true, VID: "2341", PID: "0043"}
	builtin := Port{Name: "/dev/ttyS0"}
	if p, err := PickPort([]Port{builtin, other, pl}); err != nil || p.Name != pl.Name {
		t.Errorf("one cable: got %v, %v; want %s", p, err, pl.Name)
	}
	if _, err := PickPort([]Port{builtin, other}); !errors.Is(err, ErrNoCable) || !strings.Contains(err.Error(), "/dev/ttyACM0  2341:0043") {
		t.Errorf("no cable: got %v, want ErrNoCable listing the ports", err)
	}
	if _, err := PickPort(nil); !errors.Is(err, ErrNoCable) || !strings.Contains(err.Error(), "no serial ports") {
		t.Errorf("no ports: got %v", err)
	}
	if _, err := PickPort([]Port{pl, cp}); !errors.Is(err, ErrManyCables) || !strings.Contains(err.Error(), "--port") {
		t.Errorf("two cables: got %v, want ErrManyCables", err)
	}
}

func TestOpenErrors(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want error
		hint string
	}{
		{&serial.PortError{}, ErrPortBusy, "another program"}, // code 0 is PortBusy
		{fmt.Errorf("open: %w", syscall.EBUSY), ErrPortBusy, "another program"},
		{fs.ErrPermission, ErrPermission, "dialout"},
		{syscall.EACCES, ErrPermission, "dialout"},
		{syscall.ENOENT, ErrPortMissing, "plugged in"},
	} {
		err := openError("/dev/ttyUSB0", tt.err)
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.hint) {
			t.Errorf("%v: got %v, want %v with %q", tt.err, err, tt.want, tt.hint)
		}
	}
	if _, err := Open("/nonexistent/ttyUSB9", DefaultBaud); !errors.Is(err, ErrPortMissing) {
		t.Errorf("Open of a missing port: got %v, want ErrPortMissing", err)
	}
}

// fakePi is a scripted serial line: every line the laptop sends is
// answered by reply (in a goroutine, like a remote machine).
type fakePi struct {
	toPi   *io.PipeWriter
	fromPi *io.PipeReader
	mu     sync.Mutex
	sent   []string
}

func (f *fakePi) Read(p []byte) (int, error)  { return f.fromPi.Read(p) }
func (f *fakePi) Write(p []byte) (int, error) { return f.toPi.Write(p) }

func newFakePi(t *testing.T, reply func(in string) string) *fakePi {
	piIn, toPi := io.Pipe()
	fromPi, piOut := io.Pipe()
	f := &fakePi{toPi: toPi, fromPi: fromPi}
	go func() {
		b := make([]byte, 256)
		for {
			n, err := piIn.Read(b)
			if err != nil {
				return
			}
			in := string(b[:n])
			f.mu.Lock()
			f.sent = append(f.sent, in)
			f.mu.Unlock()
			if out := reply(in); out != "" {
				if _, err := piOut.Write([]byte(out)); err != nil {
					return
				}
			}
		}
	}()
	t.Cleanup(func() { toPi.Close(); piOut.Close() })
	return f
}

func (f *fakePi) inputs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.sent...)
}

func TestFindIPBannerAfterCtrlD(t *testing.T) {
	pi := newFakePi(t, func(in string) string {
		switch in {
		case "\r":
			return "\r\r\npi3-kitchen login: "
		case "\x04": // agetty exits, a fresh one prints the issue
			return agentBanner
		}
		return ""
	})
	r, err := FindIP(context.Background(), pi, FindOptions{PromptTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.Source != "banner" || len(r.Addresses) != 3 || r.Addresses[0].Addr != netip.MustParseAddr("198.51.100.7") {
		t.Errorf("got %+v, want the banner's 3 addresses", r)
	}
	if got := strings.Join(pi.inputs(), ""); got != "\r\x04" {
		t.Errorf("sent %q, want Enter then Ctrl-D", got)
	}
}

func TestFindIPLoginDialogues(t *testing.T) {
	creds := func() (string, string, error) { return "pi", "s3cret", nil }
	for _, tt := range []struct {
		name     string
		hostname string // what the Pi prints for hostname -I
		password string // the right one
		want     string
		wantErr  error
		errText  string
	}{
		{name: "ok", hostname: "192.0.2.77 2001:db8::77 ", password: "s3cret", want: "192.0.2.77 2001:db8::77"},
		{name: "wrong password", password: "other", wantErr: ErrWrongPassword},
		{name: "busybox hostname", hostname: "hostname: invalid option -- 'I'", password: "s3cret", errText: "not addresses"},
		{name: "no address", hostname: "", password: "s3cret", wantErr: ErrNoAddress},
	} {
		t.Run(tt.name, func(t *testing.T) {
			state := "user"
			pi := newFakePi(t, func(in string) string {
				switch {
				case in == "\r" || in == "\x04":
					state = "user"
					return "\r\nraspberrypi login: "
				case state == "user":
					state = "pass"
					return in + "\nPassword: "
				case state == "pass" && in == tt.password+"\r":
					state = "shell"
					// echoing the password is the Pi's bug; we must still not leak it
					return "\r\nLinux raspberrypi 6.1.21-v7+ armv7l\r\n\x1b[?2004hpi@raspberrypi:~ $ "
				case state == "pass":
					return "\r\n\r\nLogin incorrect\r\nraspberrypi login: "
				case in == "hostname -I\r":
					return "\x1b[?2004l\rhostname -I\r\n" + tt.hostname + "\r\n\x1b[?2004hpi@raspberrypi:~ $ "
				case in == "exit\r":
					state = "user"
					return "\x1b[?2004l\rexit\r\nlogout\r\n\r\nraspberrypi login: "
				}
				return ""
			})
			var transcript bytes.Buffer
			r, err := FindIP(context.Background(), pi, FindOptions{PromptTimeout: 5 * time.Second, LoginTimeout: 5 * time.Second, Credentials: creds, Transcript: &transcript})
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("got %v, want %v", err, tt.wantErr)
				}
			case tt.errText != "":
				if err == nil || !strings.Contains(err.Error(), tt.errText) {
					t.Errorf("got %v, want an error with %q", err, tt.errText)
				}
			case err != nil:
				t.Fatal(err)
			default:
				var got []string
				for _, a := range r.Addresses {
					got = append(got, a.Addr.String())
				}
				if strings.Join(got, " ") != tt.want {
					t.Errorf("got %v, want %s", got, tt.want)
				}
			}
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error leaks the password: %v", err)
			}
			if strings.Contains(transcript.String(), "s3cret") {
				t.Errorf("transcript leaks the password: %q", transcript.String())
			}
		})
	}
}

func TestFindIPLoggedInShell(t *testing.T) {
	pi := newFakePi(t, func(in string) string { return "\r\npi@raspberrypi:~ $ " })
	_, err := FindIP(context.Background(), pi, FindOptions{PromptTimeout: 5 * time.Second})
	if !errors.Is(err, ErrLoggedIn) {
		t.Errorf("got %v, want ErrLoggedIn", err)
	}
}

func TestFindIPNoPrompt(t *testing.T) {
	pi := newFakePi(t, func(string) string { return "" })
	_, err := FindIP(context.Background(), pi, FindOptions{PromptTimeout: 300 * time.Millisecond})
	if !errors.Is(err, ErrNoPrompt) {
		t.Errorf("got %v, want ErrNoPrompt", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := FindIP(ctx, pi, FindOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: got %v, want context.Canceled", err)
	}
}

func TestPassthrough(t *testing.T) {
	pi := newFakePi(t, func(in string) string { return "echo:" + in })
	kbdR, kbdW := io.Pipe()
	var screen syncBuf
	done := make(chan error, 1)
	go func() { done <- Passthrough(context.Background(), pi, kbdR, &screen) }()
	kbdW.Write([]byte("hi\r"))
	testenv.Eventually(t, 5*time.Second, func() string {
		if s := screen.String(); !strings.Contains(s, "echo:hi\r") {
			return fmt.Sprintf("screen %q, want the Pi's echo:hi", s)
		}
		return ""
	})
	kbdW.Write([]byte("~."))
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("got %v, want nil after ~.", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Passthrough did not return after ~.")
	}
	if !strings.Contains(screen.String(), "echo:hi\r") {
		t.Errorf("screen shows %q, want the Pi's answer", screen.String())
	}
	if got := strings.Join(pi.inputs(), ""); got != "hi\r" {
		t.Errorf("Pi got %q, want %q (the escape is not sent)", got, "hi\r")
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestListPorts runs the real enumerator (sysfs on Linux): it must not
// fail on a machine without cables, and known cables sort first.
func TestListPorts(t *testing.T) {
	ports, err := ListPorts()
	if err != nil {
		t.Fatalf("ListPorts: %v", err)
	}
	seenUnknown := false
	for _, p := range ports {
		if !p.Known() {
			seenUnknown = true
		} else if seenUnknown {
			t.Errorf("known cable %s listed after an unknown port", p)
		}
	}
}
