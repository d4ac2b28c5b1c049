package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pifleet/pifleet/internal/testenv"
)

// holdLock takes a POSIX write lock on a new file, as dpkg and apt do.
func holdLock(t *testing.T) (path string, release func()) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "lock-frontend")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { f.Close() }) } // closing drops the lock
	t.Cleanup(release)
	return path, release
}

// TestWaitDpkgLock: make test waits for a held dpkg lock, saying who holds
// it, and goes on when it is released.
func TestWaitDpkgLock(t *testing.T) {
	path, release := holdLock(t)
	var out testenv.SyncBuffer
	cmd := exec.Command("./wait-dpkg-lock.sh", "120")
	cmd.Env = append(os.Environ(), "DPKG_LOCKS=/nonexistent/lock "+path)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	want := "waiting up to 120 s for the dpkg lock, held by " + strconv.Itoa(os.Getpid()) + " ("
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), want) {
		select {
		case err := <-done:
			t.Fatalf("exited (%v) while the lock is held; output:\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q within 30 s; output:\n%s", want, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("after the lock was released: %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("still waiting 30 s after the lock was released:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "the dpkg lock is free after") {
		t.Errorf("no message that the lock is free:\n%s", out.String())
	}
}

// TestWaitDpkgLockGivesUp: the wait is bounded and ends with one line that
// names the holder.
func TestWaitDpkgLockGivesUp(t *testing.T) {
	path, _ := holdLock(t)
	cmd := exec.Command("./wait-dpkg-lock.sh", "1")
	cmd.Env = append(os.Environ(), "DPKG_LOCKS="+path)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want status 1; output:\n%s", err, out)
	}
	want := "the dpkg lock is still held by " + strconv.Itoa(os.Getpid()) + " ("
	if !strings.Contains(string(out), want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
}

// TestWaitDpkgLockFree: a free lock (or none at all) costs nothing.
func TestWaitDpkgLockFree(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("./wait-dpkg-lock.sh", "5")
	cmd.Env = append(os.Environ(), "DPKG_LOCKS="+path+" /nonexistent/lock")
	if out, err := cmd.CombinedOutput(); err != nil || len(out) != 0 {
		t.Errorf("free lock: %v, output %q; want silence and success", err, out)
	}
}
