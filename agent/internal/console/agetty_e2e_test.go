package console_test

// End-to-end tests of the console path with real parts: a real agetty
// (util-linux) on one end of a cable made of two PTYs bridged like socat,
// the agent's banner as its issue file, and the real `pifleet console`
// binary on the other end. They need agetty, root and a native build of
// ./hub, so the ARMv7 qemu run skips them by name: -skip '^TestAgetty'.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/pifleet/pifleet/agent/internal/console"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/wire"
)

// TestMain doubles as the test login program that agetty -l runs, so the
// scripted login needs no real user: see fakeLogin.
func TestMain(m *testing.M) {
	if os.Getenv("PIFLEET_TEST_FAKE_LOGIN") == "1" {
		os.Exit(fakeLogin())
	}
	os.Exit(m.Run())
}

// Documentation addresses the fake Pi answers `hostname -I` with.
const fakeHostnameI = "192.0.2.77 2001:db8::77 "

// fakeLogin behaves like login(1) + a shell as far as pifleet console
// --find-ip cares: Password: without echo, "Login incorrect", a prompt,
// `hostname -I`, `exit`.
func fakeLogin() int {
	user := os.Args[len(os.Args)-1]
	in := bufio.NewScanner(os.Stdin)
	// Like login(1): echo goes off before the prompt is shown.
	tio, err := unix.IoctlGetTermios(0, unix.TCGETS)
	if err != nil {
		fmt.Printf("fake login: %v\n", err)
		return 1
	}
	noEcho := *tio
	noEcho.Lflag &^= unix.ECHO
	unix.IoctlSetTermios(0, unix.TCSETS, &noEcho)
	fmt.Print("Password: ")
	ok := in.Scan()
	unix.IoctlSetTermios(0, unix.TCSETS, tio)
	fmt.Print("\n")
	if !ok || user != os.Getenv("PIFLEET_TEST_USER") || in.Text() != os.Getenv("PIFLEET_TEST_PASSWORD") {
		time.Sleep(300 * time.Millisecond) // PAM's fail delay, shortened
		fmt.Print("\nLogin incorrect\n")
		return 1
	}
	fmt.Print("Last login: Tue Nov 24 21:05:42 2026 on ttyS0\nThe programs included with the Debian GNU/Linux system are free software.\n")
	for {
		fmt.Printf("\x1b[?2004h\x1b[01;32m%s@fakepi\x1b[00m:\x1b[01;34m~ $\x1b[00m ", user)
		if !in.Scan() {
			return 0
		}
		fmt.Print("\x1b[?2004l")
		switch cmd := strings.TrimSpace(in.Text()); cmd {
		case "hostname -I":
			fmt.Println(fakeHostnameI)
		case "exit", "logout":
			fmt.Println("logout")
			return 0
		case "":
		default:
			fmt.Printf("-bash: %s: command not found\n", cmd)
		}
	}
}

// cable is two PTYs whose masters are bridged (what socat pty,raw,echo=0
// pty,raw,echo=0 does): Pi is the tty agetty runs on, Laptop the one
// pifleet console opens.
type cable struct {
	Pi, Laptop string
}

func newCable(t *testing.T) cable {
	t.Helper()
	m1, s1, err := pty.Open()
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	m2, s2, err := pty.Open()
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	// Both slaves stay open and raw so that nothing echoes on the line
	// while no program has an end open (a real cable does not echo).
	for _, s := range []*os.File{s1, s2} {
		if _, err := term.MakeRaw(int(s.Fd())); err != nil {
			t.Fatalf("raw %s: %v", s.Name(), err)
		}
	}
	go io.Copy(m2, m1)
	go io.Copy(m1, m2)
	t.Cleanup(func() {
		for _, f := range []*os.File{s1, s2, m1, m2} {
			f.Close()
		}
	})
	return cable{Pi: s1.Name(), Laptop: s2.Name()}
}

// getty runs agetty on tty and restarts it whenever it exits, as systemd's
// Restart=always does for serial-getty@.service.
type getty struct {
	log  *testenv.SyncBuffer
	mu   sync.Mutex
	cmd  *exec.Cmd
	runs int
}

func startGetty(t *testing.T, tty string, env []string, args ...string) *getty {
	t.Helper()
	bin := testenv.RequireCommand(t, "agetty", "util-linux")
	// As another user agetty prints nothing: it must own the tty.
	testenv.RequireRoot(t, "agetty (it makes the PTY its controlling terminal and changes its owner)")
	g := &getty{log: &testenv.SyncBuffer{}}
	done := make(chan struct{})
	exited := make(chan struct{})
	rel := strings.TrimPrefix(tty, "/dev/")
	argv := append(append([]string{"-L"}, args...), "115200", rel, "vt100")
	go func() {
		defer close(exited)
		for {
			cmd := exec.Command(bin, argv...)
			cmd.Env = append(os.Environ(), env...)
			cmd.Stdout, cmd.Stderr = g.log, g.log
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
			if err := cmd.Start(); err != nil {
				fmt.Fprintf(g.log, "start agetty: %v\n", err)
				return
			}
			g.mu.Lock()
			g.cmd, g.runs = cmd, g.runs+1
			g.mu.Unlock()
			cmd.Wait()
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() {
		close(done)
		g.mu.Lock()
		if g.cmd != nil && g.cmd.Process != nil {
			g.cmd.Process.Kill()
		}
		g.mu.Unlock()
		<-exited
		if t.Failed() {
			t.Logf("agetty output:\n%s", g.log.String())
		}
	})
	return g
}

func (g *getty) starts() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.runs
}

// runPifleet runs the real pifleet binary and returns stdout, stderr and
// its error.
func runPifleet(t *testing.T, env []string, args ...string) (string, string, error) {
	t.Helper()
	bin := testenv.Binary(t, "./hub", "pifleet")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("pifleet %s: %v", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	return stdout.String(), stderr.String(), err
}

var piInfo = console.BannerInfo{
	Hostname: "pi3-kitchen",
	Addresses: []wire.Address{
		{Address: "127.0.0.1", Prefix: 8, Family: wire.IPv4, Interface: "lo", Loopback: true},
		{Address: "192.0.2.10", Prefix: 24, Family: wire.IPv4, Interface: "eth0", Primary: true},
		{Address: "2001:db8::10", Prefix: 64, Family: wire.IPv6, Interface: "eth0"},
		{Address: "fe80::1", Prefix: 64, Family: wire.IPv6, Interface: "eth0", LinkLocal: true},
		{Address: "198.51.100.7", Prefix: 24, Family: wire.IPv4, Interface: "wlan0"},
	},
	HubConnected: true,
}

// TestAgettyBannerFindIP: the agent writes its banner, a real agetty
// prints it, `pifleet console --find-ip` prints the agent's addresses;
// after an address change the agent's `agetty --reload` reprints it.
func TestAgettyBannerFindIP(t *testing.T) {
	issueDir := filepath.Join(t.TempDir(), "issue.d")
	b := &console.Banner{Path: filepath.Join(issueDir, "pifleet.issue")} // real ReloadAgetty
	ctx := context.Background()
	if _, err := b.Update(ctx, piInfo); err != nil {
		t.Fatal(err)
	}
	c := newCable(t)
	g := startGetty(t, c.Pi, nil, "--issue-file", issueDir)

	out, stderr, err := runPifleet(t, nil, "console", "--find-ip", "--port", c.Laptop, "--timeout", "20s")
	if err != nil {
		t.Fatalf("pifleet console --find-ip: %v\n%s", err, stderr)
	}
	want := "192.0.2.10\teth0\n2001:db8::10\teth0\n198.51.100.7\twlan0\n"
	if out != want {
		t.Errorf("got stdout\n%s\nwant\n%s\nstderr: %s", out, want, stderr)
	}
	if !strings.Contains(stderr, "pi3-kitchen") {
		t.Errorf("stderr lacks the hostname: %s", stderr)
	}

	// The Pi moves: the banner changes and agetty --reload makes the
	// waiting prompt reprint it. Watch the line directly.
	got := watchPrompt(t, c)
	moved := piInfo
	moved.Addresses = []wire.Address{{Address: "203.0.113.5", Prefix: 24, Family: wire.IPv4, Interface: "wlan0", Primary: true}}
	moved.HubConnected = false
	changed, err := b.Update(ctx, moved)
	if err != nil || !changed {
		t.Fatalf("banner update: changed=%v err=%v", changed, err)
	}
	// agetty watches for reloads only once it waits at its prompt; a
	// reload that came a moment too early is repeated, as the agent would
	// on its next change.
	lastReload := time.Now()
	testenv.Eventually(t, 20*time.Second, func() string {
		if strings.Contains(got.String(), "ip     wlan0    203.0.113.5/24") && strings.Contains(got.String(), "hub    NOT connected") {
			return ""
		}
		if time.Since(lastReload) > 3*time.Second {
			lastReload = time.Now()
			if err := console.ReloadAgetty(ctx); err != nil {
				t.Logf("agetty --reload: %v", err)
			}
		}
		return fmt.Sprintf("agetty did not reprint the new banner after agetty --reload; line shows %q (getty starts: %d)", got.String(), g.starts())
	})
}

// TestAgettyFindIPLogin: no banner, so pifleet logs in with the
// credentials from the environment, runs hostname -I and logs out.
func TestAgettyFindIPLogin(t *testing.T) {
	c := newCable(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	emptyIssue := t.TempDir()
	startGetty(t, c.Pi, []string{"PIFLEET_TEST_FAKE_LOGIN=1", "PIFLEET_TEST_USER=pi", "PIFLEET_TEST_PASSWORD=correct horse"},
		"--issue-file", emptyIssue, "-l", self)
	transcript := filepath.Join(t.TempDir(), "transcript.txt")
	out, stderr, err := runPifleet(t, []string{"PIFLEET_CONSOLE_USER=pi", "PIFLEET_CONSOLE_PASSWORD=correct horse"},
		"console", "--find-ip", "--port", c.Laptop, "--timeout", "20s", "--transcript", transcript)
	if err != nil {
		t.Fatalf("pifleet console --find-ip: %v\n%s", err, stderr)
	}
	if want := "192.0.2.77\n2001:db8::77\n"; out != want {
		t.Errorf("got stdout %q, want %q; stderr: %s", out, want, stderr)
	}
	tr, err := os.ReadFile(transcript)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(tr), "correct horse") || strings.Contains(stderr, "correct horse") {
		t.Error("the password appears in the transcript or on stderr")
	}
	for _, want := range []string{"login:", "Password:", "hostname -I", "logout"} {
		if !strings.Contains(string(tr), want) {
			t.Errorf("transcript lacks %q:\n%s", want, tr)
		}
	}
}

func TestAgettyFindIPWrongPassword(t *testing.T) {
	c := newCable(t)
	self, _ := os.Executable()
	startGetty(t, c.Pi, []string{"PIFLEET_TEST_FAKE_LOGIN=1", "PIFLEET_TEST_USER=pi", "PIFLEET_TEST_PASSWORD=right"},
		"--issue-file", t.TempDir(), "-l", self)
	out, stderr, err := runPifleet(t, []string{"PIFLEET_CONSOLE_USER=pi", "PIFLEET_CONSOLE_PASSWORD=wrong"},
		"console", "--find-ip", "--port", c.Laptop, "--timeout", "20s")
	if err == nil || !strings.Contains(stderr, "login incorrect") || out != "" {
		t.Errorf("got err=%v stdout=%q stderr=%q, want a Login incorrect failure", err, out, stderr)
	}
}

func TestAgettyFindIPNoBannerNoCredentials(t *testing.T) {
	c := newCable(t)
	startGetty(t, c.Pi, nil, "--issue-file", t.TempDir())
	_, stderr, err := runPifleet(t, []string{"PIFLEET_CONSOLE_USER=", "PIFLEET_CONSOLE_PASSWORD="},
		"console", "--find-ip", "--port", c.Laptop, "--timeout", "20s")
	if err == nil || !strings.Contains(stderr, "no pifleet banner") || !strings.Contains(stderr, "PIFLEET_CONSOLE_USER") {
		t.Errorf("got err=%v stderr=%q, want 'no pifleet banner' with the credentials hint", err, stderr)
	}
}

// TestAgettyFindIPNoPrompt: nothing answers on the line.
func TestAgettyFindIPNoPrompt(t *testing.T) {
	c := newCable(t)
	_, stderr, err := runPifleet(t, nil, "console", "--find-ip", "--port", c.Laptop, "--timeout", "2s")
	if err == nil || !strings.Contains(stderr, "no login prompt within 2s") || !strings.Contains(stderr, "GPIO14") {
		t.Errorf("got err=%v stderr=%q, want the no-prompt error with the wiring hint", err, stderr)
	}
	_, stderr, err = runPifleet(t, nil, "console", "--find-ip", "--port", "/dev/nonexistent-ttyUSB9")
	if err == nil || !strings.Contains(stderr, "does not exist: is the cable plugged in?") {
		t.Errorf("missing port: got err=%v stderr=%q", err, stderr)
	}
}

// TestAgettyInteractive runs pifleet console in a terminal (a third PTY),
// types Enter to get agetty's prompt, quits with Enter ~. and checks that
// the terminal's modes are restored; then again, ending with SIGTERM.
func TestAgettyInteractive(t *testing.T) {
	c := newCable(t)
	startGetty(t, c.Pi, nil, "--issue-file", t.TempDir())
	bin := testenv.Binary(t, "./hub", "pifleet")
	for _, quit := range []string{"escape", "sigterm"} {
		t.Run(quit, func(t *testing.T) {
			tm, ts, err := pty.Open()
			if err != nil {
				t.Fatal(err)
			}
			defer tm.Close()
			defer ts.Close()
			before, err := unix.IoctlGetTermios(int(ts.Fd()), unix.TCGETS)
			if err != nil {
				t.Fatal(err)
			}
			screen := &testenv.SyncBuffer{}
			go io.Copy(screen, tm)
			cmd := exec.Command(bin, "console", "--port", c.Laptop)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = ts, ts, ts
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			testenv.Eventually(t, 10*time.Second, func() string {
				if strings.Contains(screen.String(), "connected to") {
					return ""
				}
				return "no 'connected to' on the terminal: " + screen.String()
			})
			testenv.Eventually(t, 15*time.Second, func() string {
				tm.Write([]byte("\r"))
				time.Sleep(200 * time.Millisecond)
				if strings.Contains(screen.String(), "login:") {
					return ""
				}
				return "no login prompt on the terminal: " + screen.String()
			})
			raw, _ := unix.IoctlGetTermios(int(ts.Fd()), unix.TCGETS)
			if raw.Lflag&unix.ICANON != 0 {
				t.Error("terminal is not raw during the session")
			}
			if quit == "escape" {
				tm.Write([]byte("\r~."))
			} else {
				cmd.Process.Signal(syscall.SIGTERM)
			}
			errc := make(chan error, 1)
			go func() { errc <- cmd.Wait() }()
			select {
			case err := <-errc:
				if err != nil {
					t.Errorf("pifleet console exited with %v; screen: %q", err, screen.String())
				}
			case <-time.After(15 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("pifleet console did not exit; screen: %q", screen.String())
			}
			after, err := unix.IoctlGetTermios(int(ts.Fd()), unix.TCGETS)
			if err != nil {
				t.Fatal(err)
			}
			if after.Lflag != before.Lflag || after.Iflag != before.Iflag || after.Oflag != before.Oflag {
				t.Errorf("terminal not restored: got lflag=%#x iflag=%#x oflag=%#x, want %#x %#x %#x",
					after.Lflag, after.Iflag, after.Oflag, before.Lflag, before.Iflag, before.Oflag)
			}
		})
	}
}

// watchPrompt opens the laptop end of the cable, records what the Pi
// sends from now on, and waits until a getty prompts (find-ip may have
// made systemd's stand-in restart it): Enter reprints login:.
func watchPrompt(t *testing.T, c cable) *testenv.SyncBuffer {
	t.Helper()
	line, err := os.OpenFile(c.Laptop, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { line.Close() })
	got := &testenv.SyncBuffer{}
	go io.Copy(got, line)
	if _, err := line.Write([]byte("\r")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 15*time.Second, func() string {
		if !strings.Contains(got.String(), "login:") {
			return fmt.Sprintf("no login: prompt on the line after Enter; line shows %q", got.String())
		}
		return ""
	})
	return got
}
