package health

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pifleet/pifleet/internal/testenv"
)

// TestPingDocker checks the three answers against real unix sockets: an
// HTTP server answering /_ping, a socket file nobody listens on, no socket.
func TestPingDocker(t *testing.T) {
	root := t.TempDir()
	sock := filepath.Join(root, "var/run/docker.sock")
	if err := os.MkdirAll(filepath.Dir(sock), 0o755); err != nil {
		t.Fatal(err)
	}
	c := New(Options{Root: root})
	if got := c.pingDocker(context.Background()); got != DockerAbsent {
		t.Errorf("no socket: got %q, want absent", got)
	}

	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_ping" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("OK"))
	})}
	go srv.Serve(l)
	if got := c.pingDocker(context.Background()); got != DockerReachable {
		t.Errorf("answering socket: got %q, want reachable", got)
	}
	srv.Close()
	// A stale socket file (daemon died): connection refused.
	if _, err := os.Stat(sock); err != nil {
		l2, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		l2.(*net.UnixListener).SetUnlinkOnClose(false)
		l2.Close()
	}
	if got := c.pingDocker(context.Background()); got != DockerUnreachable {
		t.Errorf("stale socket: got %q, want unreachable", got)
	}

	// A regular file where the socket should be is not Docker.
	os.Remove(sock)
	os.WriteFile(sock, []byte("x"), 0o644)
	if got := c.pingDocker(context.Background()); got != DockerAbsent {
		t.Errorf("regular file: got %q, want absent", got)
	}
}

// TestDockerEngine pings the machine's real Docker Engine (the test
// machine has one; install-test-deps sets it up). Excluded under qemu.
func TestDockerEngine(t *testing.T) {
	if _, err := os.Stat("/var/run/docker.sock"); err != nil {
		t.Fatalf("the Docker Engine is required for this test (no /var/run/docker.sock): %v", err)
	}
	c := New(Options{})
	// The ping gives the engine one second (a health probe must not hang);
	// a dockerd busy with other tests' containers may miss one.
	testenv.Eventually(t, 30*time.Second, func() string {
		if got := c.pingDocker(context.Background()); got != DockerReachable {
			return fmt.Sprintf("real Docker Engine: got %q, want reachable", got)
		}
		return ""
	})
}

// TestRealSyscalls runs statfs and adjtimex for real (no assertion on the
// clock's state: only that the kernel answers).
func TestRealSyscalls(t *testing.T) {
	st, err := statfs("/")
	if err != nil || st.Total == 0 || st.Avail > st.Total {
		t.Errorf("statfs /: got %+v, %v", st, err)
	}
	if _, err := adjtimexSynced(); err != nil {
		t.Errorf("adjtimex: %v", err)
	}
}

// TestCollectThisMachine runs every probe on the real system: nothing may
// panic or fail outright (absent is fine on a PC).
func TestCollectThisMachine(t *testing.T) {
	h := New(Options{}).Collect(context.Background())
	for name, st := range h.Probes {
		if st == "failed" {
			t.Errorf("probe %s failed on this machine (Probes %v)", name, h.Probes)
		}
	}
	if h.MemTotalB == nil || h.UptimeS == nil || h.RootReadOnly == nil {
		t.Errorf("meminfo, uptime, mounts missing on a Linux machine: %+v", h)
	}
}
