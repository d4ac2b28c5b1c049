// Package runnertest provides the real Docker engine and the local test
// images that the runner, cmdexec and dispatch tests use. It fails a test
// clearly when the engine is unreachable or an image cannot be built; it
// never skips.
package runnertest

import (
	"context"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/pifleet/pifleet/internal/testenv"
)

// Images built by scripts/build-test-images.sh.
const (
	BusyboxImage = "pifleet-test/busybox:latest" // seconds to build
	AWSCLIImage  = "pifleet-test/awscli:deb"     // ~2 minutes once, then reused
)

// RequireDocker returns a client for the local engine or fails the test.
func RequireDocker(t testing.TB) *client.Client {
	t.Helper()
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatalf("docker client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Ping(ctx); err != nil {
		t.Fatalf("this test needs a running Docker Engine (install docker.io and start dockerd; DOCKER_HOST=%q): %v", c.DaemonHost(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var (
	mu    sync.Mutex
	ready = map[string]bool{}
)

// Busybox returns the busybox test image, building it if it is missing.
func Busybox(t testing.TB) string {
	t.Helper()
	ensure(t, BusyboxImage, "busybox", "busybox-static", "")
	return BusyboxImage
}

// AWSCLI returns the Debian awscli test image, building it if it is
// missing (slow the first time: mmdebstrap downloads Debian packages), or
// when it predates scripts/build-tool-image.sh (no org.pifleet.tool label:
// the machine kept an image of the older recipe).
func AWSCLI(t testing.TB) string {
	t.Helper()
	ensure(t, AWSCLIImage, "mmdebstrap", "mmdebstrap", "org.pifleet.tool")
	return AWSCLIImage
}

func ensure(t testing.TB, ref, cmd, pkg, label string) {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if ready[ref] {
		return
	}
	c := RequireDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	info, err := c.ImageInspect(ctx, ref)
	cancel()
	missing := err != nil
	if !missing && label != "" && (info.Config == nil || info.Config.Labels[label] == "") {
		// By id: another test process may have rebuilt the tag already.
		t.Logf("test image %s has no label %s: an older recipe's; rebuilding it", ref, label)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err = c.ImageRemove(ctx, info.ID, image.RemoveOptions{Force: true})
		cancel()
		if err != nil && !cerrdefs.IsNotFound(err) {
			t.Fatalf("remove the outdated test image %s: %v", ref, err)
		}
		missing = true
	}
	if missing {
		testenv.RequireCommand(t, cmd, pkg)
		testenv.RequireCommand(t, "docker", "docker.io")
		t.Logf("building test image %s with scripts/build-test-images.sh", ref)
		script := filepath.Join(testenv.ModuleRoot(t), "scripts", "build-test-images.sh")
		if out, err := exec.Command(script).CombinedOutput(); err != nil {
			t.Fatalf("build test images: %v\n%s", err, out)
		}
	}
	ready[ref] = true
}
