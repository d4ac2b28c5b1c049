package scripts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pifleet/pifleet/internal/runnertest"
	"github.com/pifleet/pifleet/internal/testenv"
)

// toolImage runs build-tool-image.sh with the given environment (on top
// of this one's) and returns its stdout, stderr and exit code.
func toolImage(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command("./build-tool-image.sh", args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("build-tool-image.sh: %v", err)
	}
	return o.String(), e.String(), code
}

// binfmtDir is a stand-in for /proc/sys/fs/binfmt_misc holding the given
// entries (name → content).
func binfmtDir(t *testing.T, entries map[string]string) string {
	dir := t.TempDir()
	for name, content := range entries {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const qemuEnabled = "enabled\ninterpreter /usr/libexec/qemu-binfmt/arm-binfmt-P\nflags: POF\noffset 0\n"

// TestToolImageArguments: what the builder would run (-n) on a Pi and on a
// laptop, from each machine's /etc/os-release (real ones in testdata), its
// dpkg architecture and its binfmt_misc registrations.
func TestToolImageArguments(t *testing.T) {
	testenv.RequireCommand(t, "mmdebstrap", "mmdebstrap") // its merged-/usr hooks
	rel := func(name string) string { return "testdata/os-release/" + name }
	const (
		raspbian = "'bookworm' 'WORK/layer.tar' 'http://raspbian.raspberrypi.com/raspbian/'"
		armhf    = `{"architecture":"arm","variant":"v7","os":"linux"`
		arm64    = `{"architecture":"arm64","os":"linux"`
		amd64    = `{"architecture":"amd64","os":"linux"`
	)
	noMirror := func(suite string) string { return "'" + suite + "' 'WORK/layer.tar' \n" }
	for _, tc := range []struct {
		name      string
		osRelease string
		hostArch  string
		binfmt    map[string]string
		args      []string
		code      int
		want      []string // in stdout (code 0) or stderr
		notWant   []string
	}{
		{name: "32-bit Raspberry Pi OS, native", osRelease: rel("raspios-bookworm-armhf"), hostArch: "armhf",
			want: []string{"'--architectures=armhf'", raspbian, "'--keyring=/usr/share/keyrings/raspbian-archive-keyring.gpg'",
				armhf, "then: docker load (tag pifleet/awscli:latest)"}},
		{name: "64-bit Raspberry Pi OS, armhf image runs natively", osRelease: rel("raspios-bookworm-arm64"), hostArch: "arm64",
			args:    []string{"-a", "armhf"},
			want:    []string{"'--architectures=armhf'", noMirror("bookworm"), armhf},
			notWant: []string{"raspbian", "--keyring"}},
		{name: "64-bit Raspberry Pi OS, native", osRelease: rel("raspios-bookworm-arm64"), hostArch: "arm64",
			want: []string{"'--architectures=arm64'", noMirror("bookworm"), arm64}},
		{name: "Ubuntu laptop, armhf without qemu", osRelease: rel("ubuntu-noble"), hostArch: "amd64",
			args: []string{"-a", "armhf"}, code: 1,
			want: []string{"armhf programs cannot run on this amd64 machine", "/qemu-arm missing or disabled",
				"apt-get install qemu-user-static binfmt-support arch-test", "mount -t binfmt_misc"}},
		{name: "Ubuntu laptop, armhf with qemu", osRelease: rel("ubuntu-noble"), hostArch: "amd64",
			binfmt: map[string]string{"qemu-arm": qemuEnabled}, args: []string{"-a", "armhf"},
			want:    []string{"'--architectures=armhf'", noMirror("bookworm"), armhf},
			notWant: []string{"noble"}},
		{name: "Debian laptop, arm64 with qemu disabled", osRelease: rel("debian-trixie"), hostArch: "amd64",
			binfmt: map[string]string{"qemu-aarch64": "disabled\n", "qemu-arm": qemuEnabled}, args: []string{"-a", "arm64"}, code: 1,
			want: []string{"/qemu-aarch64 missing or disabled"}},
		{name: "Debian laptop, everything given", osRelease: rel("debian-trixie"), hostArch: "amd64",
			binfmt: map[string]string{"qemu-aarch64": qemuEnabled},
			args: []string{"-a", "arm64", "-s", "bookworm", "-m", "http://192.0.2.1/debian", "-k", "/srv/mirror.gpg",
				"-t", "local/aws:1", "-o", "/srv/aws-arm64.tar"},
			want: []string{"'--architectures=arm64'", "'bookworm' 'WORK/layer.tar' 'http://192.0.2.1/debian'", "'--keyring=/srv/mirror.gpg'",
				arm64, "then: /srv/aws-arm64.tar (tag local/aws:1)", `"org.pifleet.source":"debian bookworm awscli"`},
			notWant: []string{"trixie"}},
		{name: "Debian trixie, suite from os-release", osRelease: rel("debian-trixie"), hostArch: "amd64",
			want: []string{"'--architectures=amd64'", noMirror("trixie"), amd64}},
		{name: "amd64 image on a Pi needs qemu too", osRelease: rel("raspios-bookworm-arm64"), hostArch: "arm64",
			args: []string{"-a", "amd64"}, code: 1, want: []string{"/qemu-x86_64 missing or disabled"}},
		{name: "no os-release", osRelease: "/nonexistent/os-release", hostArch: "amd64",
			want: []string{noMirror("bookworm")}},
		{name: "a tag that is no Docker reference", osRelease: rel("debian-trixie"), hostArch: "amd64",
			args: []string{"-t", `x"y`}, code: 1, want: []string{"bad TAG"}},
		{name: "a suite that is no code name", osRelease: rel("debian-trixie"), hostArch: "amd64",
			args: []string{"-s", `bookworm"`}, code: 1, want: []string{"bad SUITE"}},
		{name: "unknown architecture", osRelease: rel("debian-trixie"), hostArch: "amd64",
			args: []string{"-a", "i386"}, code: 1, want: []string{"unknown ARCH i386: want armhf, arm64 or amd64"}},
		{name: "stray argument", osRelease: rel("debian-trixie"), hostArch: "amd64",
			args: []string{"armhf"}, code: 2, want: []string{"usage: build-tool-image"}},
		{name: "unknown flag", osRelease: rel("debian-trixie"), hostArch: "amd64",
			args: []string{"-x"}, code: 2, want: []string{"usage: build-tool-image"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := []string{"OS_RELEASE=" + tc.osRelease, "HOST_ARCH=" + tc.hostArch, "BINFMT_MISC=" + binfmtDir(t, tc.binfmt)}
			stdout, stderr, code := toolImage(t, env, append([]string{"-n"}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout, stderr)
			}
			out := stdout
			if code != 0 {
				out = stderr
			} else {
				// Every build: Debian's awscli, trimmed, with the image
				// configuration of agent/Dockerfile.awscli.
				tc.want = append(tc.want, "mmdebstrap '--variant=essential'", "'--include=awscli,ca-certificates'",
					"'--dpkgopt=path-exclude=/usr/share/doc/*'", "'--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr'",
					`"Entrypoint":["aws"]`, `"User":"65534:65534"`, `"WorkingDir":"/tmp"`, `"HOME=/tmp"`, `"AWS_PAGER="`)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("want %s in:\n%s", w, out)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out, w) {
					t.Errorf("do not want %s in:\n%s", w, out)
				}
			}
		})
	}
}

// fakeMmdebstrap puts an mmdebstrap first in PATH that records its
// arguments, writes a tiny root file system as a tar to its target and
// exits with code: the builder's archive and docker load run for real, in
// seconds.
func fakeMmdebstrap(t *testing.T, code int) (env []string, argsFile string) {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "usr/bin/aws"), []byte("#!/usr/bin/python3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	argsFile = filepath.Join(dir, "args")
	script := fmt.Sprintf("#!/bin/sh\nprintf '%%s\\n' \"$@\" >%q\nfor a; do case $a in */layer.tar) out=$a ;; esac; done\ntar -C %q -cf \"$out\" .\nexit %d\n", argsFile, root, code)
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "mmdebstrap"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return []string{"PATH=" + bin + ":" + os.Getenv("PATH")}, argsFile
}

func testTag(t *testing.T, what string) string {
	tag := fmt.Sprintf("pifleet-test/toolimage-%s:%d", what, os.Getpid())
	t.Cleanup(func() { exec.Command("docker", "image", "rm", "-f", tag).Run() })
	return tag
}

// TestDockerToolImageForeignPlatform: an armhf build on this amd64
// machine, written to a file (-o: no Docker touched) and loaded from it
// as on an air-gapped Pi, is a linux/arm/v7 image (docker import would
// have said amd64) with the configuration the runner expects.
func TestDockerToolImageForeignPlatform(t *testing.T) {
	c := runnertest.RequireDocker(t)
	docker := testenv.RequireCommand(t, "docker", "docker.io")
	env, argsFile := fakeMmdebstrap(t, 0)
	env = append(env, "OS_RELEASE=testdata/os-release/ubuntu-noble", "HOST_ARCH=amd64",
		"BINFMT_MISC="+binfmtDir(t, map[string]string{"qemu-arm": qemuEnabled}))
	tag := testTag(t, "armhf")
	archive := filepath.Join(t.TempDir(), "awscli-armhf.tar")
	stdout, stderr, code := toolImage(t, env, "-a", "armhf", "-t", tag, "-o", archive)
	if code != 0 {
		t.Fatalf("build-tool-image -a armhf -o: exit %d\n%s%s", code, stdout, stderr)
	}
	args, err := os.ReadFile(argsFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(args), "--architectures=armhf\n") {
		t.Errorf("mmdebstrap got %q, want --architectures=armhf", args)
	}
	if !strings.Contains(stderr, archive+" ("+tag+", armhf,") {
		t.Errorf("no size report on stderr:\n%s", stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.ImageInspect(ctx, tag); err == nil {
		t.Fatalf("-o loaded %s into Docker; it must only write the file", tag)
	}
	if out, err := exec.Command(docker, "load", "-i", archive).CombinedOutput(); err != nil {
		t.Fatalf("docker load -i %s: %v\n%s", archive, err, out)
	}
	info, err := c.ImageInspect(ctx, tag)
	if err != nil {
		t.Fatalf("inspect %s after docker load: %v", tag, err)
	}
	if info.Architecture != "arm" || info.Variant != "v7" || info.Os != "linux" {
		t.Errorf("platform: got %s/%s/%s, want linux/arm/v7", info.Os, info.Architecture, info.Variant)
	}
	cfg := info.Config
	if got := []string(cfg.Entrypoint); !slices.Equal(got, []string{"aws"}) || len(cfg.Cmd) != 0 || cfg.User != "65534:65534" || cfg.WorkingDir != "/tmp" ||
		!slices.Contains(cfg.Env, "HOME=/tmp") || !slices.Contains(cfg.Env, "AWS_PAGER=") {
		t.Errorf("config: entrypoint %q cmd %q user %q workdir %q env %q; want [aws], none, 65534:65534, /tmp, HOME=/tmp and AWS_PAGER=",
			got, cfg.Cmd, cfg.User, cfg.WorkingDir, cfg.Env)
	}
}

// TestDockerToolImageFailedBuildKeepsTag: when mmdebstrap fails after it
// wrote part of the root file system, the image under the tag stays the
// one it was (a Pi keeps a working tool image).
func TestDockerToolImageFailedBuildKeepsTag(t *testing.T) {
	c := runnertest.RequireDocker(t)
	testenv.RequireCommand(t, "docker", "docker.io")
	tag := testTag(t, "fail")
	env, _ := fakeMmdebstrap(t, 0)
	env = append(env, "OS_RELEASE=testdata/os-release/debian-trixie", "HOST_ARCH=amd64")
	if stdout, stderr, code := toolImage(t, env, "-a", "amd64", "-t", tag); code != 0 {
		t.Fatalf("first build: exit %d\n%s%s", code, stdout, stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	before, err := c.ImageInspect(ctx, tag)
	if err != nil {
		t.Fatal(err)
	}

	env, _ = fakeMmdebstrap(t, 3)
	env = append(env, "OS_RELEASE=testdata/os-release/debian-trixie", "HOST_ARCH=amd64")
	_, stderr, code := toolImage(t, env, "-a", "amd64", "-t", tag)
	if code == 0 || !strings.Contains(stderr, "mmdebstrap failed (exit 3); "+tag+" is unchanged") {
		t.Errorf("failed build: exit %d, stderr %q; want a failure naming mmdebstrap's exit 3", code, stderr)
	}
	after, err := c.ImageInspect(ctx, tag)
	if err != nil || after.ID != before.ID {
		t.Errorf("after the failed build %s is %q (%v), want the earlier image %s", tag, after.ID, err, before.ID)
	}
}
