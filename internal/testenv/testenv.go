// Package testenv starts the real parts that pifleet's tests talk to
// (Mosquitto, the project's own binaries, free loopback ports) and fails a
// test with a clear message when a part is missing. It never skips: a
// missing component is a broken test machine, and CI must say so.
// scripts/install-test-deps.sh installs everything it needs.
package testenv

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RequireCommand returns the path of the named program or fails the test,
// naming the Debian package that provides it.
func RequireCommand(t testing.TB, name, debianPkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
			if _, serr := os.Stat(filepath.Join(dir, name)); serr == nil {
				return filepath.Join(dir, name)
			}
		}
		t.Fatalf("required test component %q is missing: install the Debian package %q (scripts/install-test-deps.sh does this)", name, debianPkg)
	}
	return p
}

// RequireRoot fails the test unless it runs as root (network namespaces).
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("this test needs root for %s; run the test command as root (CI does)", why)
	}
}

// FreePort returns a TCP port on 127.0.0.1 that is free now and stays
// free of the kernel's own choices: it is picked below the ephemeral range
// (ip_local_port_range), which bind(":0") and outgoing connections draw
// from, so another test's listener or client cannot take it between this
// call and the moment a process binds it. Ports are never handed out twice
// by one test binary.
func FreePort(t testing.TB) int {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	lo, hi := portWindow()
	for range 200 {
		p := lo + rand.IntN(hi-lo)
		if portsGiven[p] || !claimPort(p) {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		portsGiven[p] = true
		return p
	}
	// A machine whose ephemeral range leaves no room below it: take one
	// the kernel picks.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free loopback port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

var (
	portMu     sync.Mutex
	portsGiven = map[int]bool{}
)

// claimPort keeps other test binaries (go test runs packages in parallel)
// from picking the same port: an flock on a per-port file, held until
// this process exits. Without a lock directory, the bind check alone
// stands.
func claimPort(p int) bool {
	dir := filepath.Join(os.TempDir(), "pifleet-test-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return true
	}
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(p)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return true
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return false
	}
	heldPorts = append(heldPorts, f) // the lock lives as long as the process
	return true
}

var heldPorts []*os.File

// portWindow is the range FreePort picks from: up to 12,000 ports just
// below the kernel's ephemeral range (32768 on Linux by default).
func portWindow() (lo, hi int) {
	ephemeral := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				ephemeral = n
			}
		}
	}
	hi = ephemeral
	lo = max(hi-12000, 10000)
	if hi-lo < 1000 { // no room below: anything above the ephemeral range
		lo, hi = 61000, 65000
	}
	return lo, hi
}

// ModuleRoot returns the repository root (the directory holding go.mod).
func ModuleRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Dir(file)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("go.mod not found above %s", file)
		}
		dir = parent
	}
}

var (
	buildMu sync.Mutex
	built   = map[string]string{}
)

// Binary builds the main package at pkg (relative to the module root, e.g.
// "./agent") once per test process and returns the binary's path. The
// binary is built with -race when the test binary is, so races in the
// real processes are caught too.
//
// Binaries live in one fixed directory per checkout (under the temp dir),
// replaced atomically by each build, so test runs leave nothing behind to
// pile up; go's build cache keeps the rebuild to a link step.
func Binary(t testing.TB, pkg, name string) string {
	t.Helper()
	return binary(t, pkg, name, raceEnabled)
}

// PlainBinary is Binary without the race detector, for load tests: a
// race-instrumented process dies past 8,128 live goroutines, and one
// simulated Pi or broker connection takes several.
func PlainBinary(t testing.TB, pkg, name string) string {
	t.Helper()
	return binary(t, pkg, name, false)
}

func binary(t testing.TB, pkg, name string, race bool) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	flavour := "plain"
	if race {
		flavour = "race"
	}
	if p, ok := built[flavour+" "+pkg]; ok {
		return p
	}
	root := ModuleRoot(t)
	sum := sha256.Sum256([]byte(root))
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("pifleet-testbin-%x", sum[:6]), flavour)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("test binary dir: %v", err)
	}
	out := filepath.Join(dir, name)
	tmp, err := os.CreateTemp(dir, name+".build-*")
	if err != nil {
		t.Fatalf("test binary: %v", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	args := []string{"build", "-o", tmp.Name()}
	if race {
		args = append(args, "-race")
	}
	args = append(args, pkg)
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	// Another package's test may be running the previous binary: rename
	// swaps the name, the running one keeps its inode.
	if err := os.Rename(tmp.Name(), out); err != nil {
		t.Fatalf("test binary: %v", err)
	}
	built[flavour+" "+pkg] = out
	return out
}

// Mosquitto is a running mosquitto broker started for a test.
type Mosquitto struct {
	URL  string // mqtt://127.0.0.1:PORT
	Port int
	Cmd  *exec.Cmd
	Log  *SyncBuffer

	bin, conf string
}

// StartMosquitto starts a real Mosquitto broker on a free loopback port,
// with extraConf appended to its config file (listener and allow_anonymous
// are set unless extraConf sets a listener itself). It is stopped when the
// test ends. A missing mosquitto binary fails the test.
func StartMosquitto(t testing.TB, extraConf string) *Mosquitto {
	t.Helper()
	bin := RequireCommand(t, "mosquitto", "mosquitto")
	port := FreePort(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	var b strings.Builder
	b.WriteString("persistence false\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n")
	if !strings.Contains(extraConf, "listener ") {
		fmt.Fprintf(&b, "listener %d 127.0.0.1\nallow_anonymous true\n", port)
	}
	b.WriteString(strings.ReplaceAll(extraConf, "{{PORT}}", fmt.Sprint(port)))
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	m := &Mosquitto{URL: fmt.Sprintf("mqtt://127.0.0.1:%d", port), Port: port, Log: &SyncBuffer{}, bin: bin, conf: conf}
	m.start(t)
	t.Cleanup(m.Kill)
	return m
}

func (m *Mosquitto) start(t testing.TB) {
	t.Helper()
	m.Cmd = exec.Command(m.bin, "-c", m.conf)
	m.Cmd.Stdout = m.Log
	m.Cmd.Stderr = m.Log
	if err := m.Cmd.Start(); err != nil {
		t.Fatalf("start mosquitto: %v", err)
	}
	WaitTCP(t, fmt.Sprintf("127.0.0.1:%d", m.Port), 20*time.Second, m.Log)
}

// Kill stops the broker at once (SIGKILL): no will is published, retained
// messages are gone (persistence is off).
func (m *Mosquitto) Kill() {
	_ = m.Cmd.Process.Kill()
	_ = m.Cmd.Wait()
}

// Restart starts the killed broker again on the same port.
func (m *Mosquitto) Restart(t testing.TB) {
	t.Helper()
	m.start(t)
}

// WaitTCP waits until addr accepts TCP connections or fails the test,
// printing log (which may be nil) to explain why.
func WaitTCP(t testing.TB, addr string, within time.Duration, log fmt.Stringer) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			msg := ""
			if log != nil {
				msg = log.String()
			}
			t.Fatalf("%s did not accept connections within %v: %v\n%s", addr, within, err, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Eventually polls cond every 20ms until it returns "" (success) or the
// deadline passes, then fails with the last message. Use it for waiting on
// asynchronous effects; never assert on how long they took.
func Eventually(t testing.TB, within time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true within %v: %s", within, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SyncBuffer is a goroutine-safe bytes buffer for process output.
type SyncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Lines returns the buffer's lines.
func (s *SyncBuffer) Lines() []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s.String()))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}
