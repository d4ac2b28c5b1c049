package health

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/wire"
)

// TestPingDocker checks the three answers against real unix sockets: an
// HTTP server answering /_ping, a socket file nobody listens on, no socket.
// DOCKER_HOST is unset so the socket under Root is the one asked.
func TestPingDocker(t *testing.T) {
	t.Setenv("DOCKER_HOST", "")
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
	t.Setenv("DOCKER_HOST", "") // the default socket
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

// TestDockerHostFollowed checks the probe asks the engine DOCKER_HOST
// names, as the runner does, and not the socket under Root: Root here has
// none, which without DOCKER_HOST would be "absent".
func TestDockerHostFollowed(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///var/run/docker.sock")
	c := New(Options{Root: t.TempDir()})
	testenv.Eventually(t, 30*time.Second, func() string {
		if got := c.pingDocker(context.Background()); got != DockerReachable {
			return fmt.Sprintf("DOCKER_HOST=unix:///var/run/docker.sock: got %q, want reachable", got)
		}
		return ""
	})
}

// TestDockerHostUnreachable points DOCKER_HOST at a socket that does not
// exist while the real engine listens on the default one: commands would
// fail, so health must say Docker is unreachable (a problem), not absent
// and not fine.
func TestDockerHostUnreachable(t *testing.T) {
	if _, err := os.Stat("/var/run/docker.sock"); err != nil {
		t.Fatalf("the Docker Engine is required for this test (no /var/run/docker.sock): %v", err)
	}
	t.Setenv("DOCKER_HOST", "unix:///nonexistent.sock")
	c := New(Options{})
	if got := c.pingDocker(context.Background()); got != DockerUnreachable {
		t.Errorf("pingDocker: got %q, want unreachable", got)
	}
	h := c.Collect(context.Background())
	if h.Docker != DockerUnreachable || h.Probes["docker"] != wire.ProbeOK {
		t.Errorf("Collect: got docker %q, probe %q; want unreachable, ok", h.Docker, h.Probes["docker"])
	}
	if got := c.Problems(); !slices.Contains(got, wire.ProblemDockerDown) {
		t.Errorf("problems: got %v, want %s among them", got, wire.ProblemDockerDown)
	}
	// A DOCKER_HOST the client cannot parse is unreachable too.
	t.Setenv("DOCKER_HOST", "no-such-scheme://x")
	if got := c.pingDocker(context.Background()); got != DockerUnreachable {
		t.Errorf("unparsable DOCKER_HOST: got %q, want unreachable", got)
	}
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
