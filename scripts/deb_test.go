package scripts

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/pifleet/pifleet/internal/testenv"
)

const testVersion = "1.2.3"

var (
	debOnce sync.Once
	debDir  string
	debErr  error
)

// debs builds both packages for amd64 once per test run, with a stand-in
// binary: these tests are about the packaging, and building the real
// binaries is `make deb`'s job.
func debs(t *testing.T) (agent, hub string) {
	t.Helper()
	testenv.RequireCommand(t, "dpkg-deb", "dpkg")
	testenv.RequireCommand(t, "go", "golang")
	debOnce.Do(func() {
		debDir, debErr = os.MkdirTemp("", "pifleet-deb-")
		if debErr != nil {
			return
		}
		bin := filepath.Join(debDir, "fake-binary")
		if debErr = os.WriteFile(bin, []byte("#!/bin/sh\necho pifleet stand-in\n"), 0o755); debErr != nil {
			return
		}
		cmd := exec.Command("./build-deb.sh", "amd64")
		cmd.Env = append(os.Environ(),
			"VERSION="+testVersion,
			"OUT_DIR="+filepath.Join(debDir, "dist"),
			"BUILD_DIR="+filepath.Join(debDir, "build"),
			"PIFLEET_AGENT_BIN="+bin,
			"PIFLEET_HUB_BIN="+bin,
		)
		if out, err := cmd.CombinedOutput(); err != nil {
			debErr = fmt.Errorf("scripts/build-deb.sh amd64: %v\n%s", err, out)
		}
	})
	if debErr != nil {
		t.Fatal(debErr)
	}
	return filepath.Join(debDir, "dist", "pifleet-agent_"+testVersion+"_amd64.deb"),
		filepath.Join(debDir, "dist", "pifleet_"+testVersion+"_amd64.deb")
}

func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestDebControlFields(t *testing.T) {
	agent, hub := debs(t)
	for _, tc := range []struct {
		deb, field, want string
	}{
		{agent, "Package", "pifleet-agent"},
		{agent, "Version", testVersion},
		{agent, "Architecture", "amd64"},
		{hub, "Package", "pifleet"},
		{hub, "Architecture", "amd64"},
	} {
		got := strings.TrimSpace(run(t, nil, "dpkg-deb", "-f", tc.deb, tc.field))
		if got != tc.want {
			t.Errorf("%s %s: got %q, want %q", filepath.Base(tc.deb), tc.field, got, tc.want)
		}
	}
	for deb, want := range map[string]string{agent: "/etc/default/pifleet-agent", hub: "/etc/default/pifleet-hub"} {
		dir := t.TempDir()
		run(t, nil, "dpkg-deb", "-e", deb, dir)
		b, err := os.ReadFile(filepath.Join(dir, "conffiles"))
		if err != nil || strings.TrimSpace(string(b)) != want {
			t.Errorf("%s conffiles: got %q (%v), want %s: an upgrade must keep the operator's settings", filepath.Base(deb), b, err, want)
		}
		for _, s := range []string{"postinst", "prerm", "postrm"} {
			fi, err := os.Stat(filepath.Join(dir, s))
			if err != nil || fi.Mode().Perm() != 0o755 {
				t.Errorf("%s %s: %v, mode %v; want an executable maintainer script", filepath.Base(deb), s, err, fi.Mode())
			}
		}
	}
}

func TestDebContents(t *testing.T) {
	agent, hub := debs(t)
	for _, tc := range []struct {
		deb  string
		want map[string]string // path -> mode string as dpkg-deb -c prints it
	}{
		{agent, map[string]string{
			"./usr/bin/pifleet-agent":                                                     "-rwxr-xr-x",
			"./lib/systemd/system/pifleet-agent.service":                                  "-rw-r--r--",
			"./etc/default/pifleet-agent":                                                 "-rw-r--r--",
			"./usr/lib/tmpfiles.d/pifleet-agent.conf":                                     "-rw-r--r--",
			"./usr/share/polkit-1/rules.d/50-pifleet-agent.rules":                         "-rw-r--r--",
			"./usr/share/doc/pifleet-agent/examples/serial-getty@.service.d/pifleet.conf": "-rw-r--r--",
			"./usr/share/pifleet-agent/build-tool-image":                                  "-rwxr-xr-x",
			"./usr/share/pifleet-agent/Dockerfile.awscli":                                 "-rw-r--r--",
		}},
		{hub, map[string]string{
			"./usr/bin/pifleet":                        "-rwxr-xr-x",
			"./lib/systemd/system/pifleet-hub.service": "-rw-r--r--",
			"./etc/default/pifleet-hub":                "-rw-r--r--",
		}},
	} {
		if tc.deb == agent {
			// pifleet-agent doctor's advice names these files on the Pi.
			notes, err := filepath.Glob("../firmware-notes/*")
			if err != nil || len(notes) == 0 {
				t.Fatalf("firmware-notes/: %v, %d files", err, len(notes))
			}
			for _, n := range notes {
				tc.want["./usr/share/doc/pifleet-agent/firmware-notes/"+filepath.Base(n)] = "-rw-r--r--"
			}
		}
		got := map[string]string{}
		for _, line := range strings.Split(run(t, nil, "dpkg-deb", "-c", tc.deb), "\n") {
			f := strings.Fields(line)
			if len(f) < 6 {
				continue
			}
			if f[1] != "root/root" {
				t.Errorf("%s: %s owned by %s, want root/root", filepath.Base(tc.deb), f[5], f[1])
			}
			got[f[5]] = f[0]
		}
		for p, mode := range tc.want {
			if got[p] != mode {
				t.Errorf("%s: %s mode %q, want %q", filepath.Base(tc.deb), p, got[p], mode)
			}
		}
	}
}

// fakeRoot is a throwaway root file system with just what dpkg and the
// shadow tools need; nothing outside it changes.
type fakeRoot struct {
	t   *testing.T
	dir string
}

func newRoot(t *testing.T, group string) *fakeRoot {
	t.Helper()
	testenv.RequireCommand(t, "dpkg", "dpkg")
	testenv.RequireCommand(t, "useradd", "passwd")
	testenv.RequireCommand(t, "deb-systemd-helper", "init-system-helpers")
	r := &fakeRoot{t, t.TempDir()}
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "etc"} {
		r.mkdir(d)
	}
	r.write("var/lib/dpkg/status", "", 0o644)
	r.write("var/lib/dpkg/available", "", 0o644)
	r.write("etc/passwd", "root:x:0:0:root:/root:/bin/bash\n", 0o644)
	r.write("etc/group", "root:x:0:\n"+group, 0o644)
	r.write("etc/shadow", "root:*:19000:0:99999:7:::\n", 0o640)
	r.write("etc/gshadow", "root:*::\n", 0o640)
	return r
}

func (r *fakeRoot) mkdir(p string) {
	if err := os.MkdirAll(filepath.Join(r.dir, p), 0o755); err != nil {
		r.t.Fatal(err)
	}
}

func (r *fakeRoot) write(p, s string, mode os.FileMode) {
	if err := os.WriteFile(filepath.Join(r.dir, p), []byte(s), mode); err != nil {
		r.t.Fatal(err)
	}
}

func (r *fakeRoot) read(p string) string {
	b, err := os.ReadFile(filepath.Join(r.dir, p))
	if err != nil {
		r.t.Fatal(err)
	}
	return string(b)
}

func (r *fakeRoot) exists(p string) bool {
	_, err := os.Lstat(filepath.Join(r.dir, p))
	return err == nil
}

// dpkg runs dpkg on the root. --force-script-chrootless runs the
// maintainer scripts here with DPKG_ROOT set, which they honour.
func (r *fakeRoot) dpkg(args ...string) string {
	r.t.Helper()
	return run(r.t, nil, "dpkg", append([]string{"--root=" + r.dir, "--force-script-chrootless", "--log=/dev/null"}, args...)...)
}

func groupLine(t *testing.T, groups, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^`+name+`:.*$`).FindAllString(groups, -1)
	if len(m) != 1 {
		t.Fatalf("group %s: %d lines in /etc/group, want 1:\n%s", name, len(m), groups)
	}
	return m[0]
}

// hostFiles snapshots the real machine's account files: a maintainer
// script that ignored DPKG_ROOT would change them.
func hostFiles(t *testing.T) string {
	var b bytes.Buffer
	for _, f := range []string{"/etc/passwd", "/etc/group"} {
		c, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(c)
	}
	return b.String()
}

func TestDebInstallAgentIntoThrowawayRoot(t *testing.T) {
	agent, _ := debs(t)
	host := hostFiles(t)
	r := newRoot(t, "docker:x:500:alice\n")
	r.dpkg("-i", agent)

	// Files.
	for p, mode := range map[string]os.FileMode{
		"usr/bin/pifleet-agent":                             0o755,
		"lib/systemd/system/pifleet-agent.service":          0o644,
		"etc/default/pifleet-agent":                         0o644,
		"usr/lib/tmpfiles.d/pifleet-agent.conf":             0o644,
		"usr/share/polkit-1/rules.d/50-pifleet-agent.rules": 0o644,
		"usr/share/pifleet-agent/build-tool-image":          0o755,
		"usr/share/pifleet-agent/Dockerfile.awscli":         0o644,
	} {
		fi, err := os.Stat(filepath.Join(r.dir, p))
		if err != nil {
			t.Errorf("installed %s: %v", p, err)
			continue
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("installed %s: mode %v, want %v", p, fi.Mode().Perm(), mode)
		}
	}

	// The user: a system account that cannot log in.
	m := regexp.MustCompile(`(?m)^pifleet:x:(\d+):(\d+):[^:]*:([^:]*):(.*)$`).FindStringSubmatch(r.read("etc/passwd"))
	if m == nil {
		t.Fatalf("no pifleet user in the root's /etc/passwd:\n%s", r.read("etc/passwd"))
	}
	if m[4] != "/usr/sbin/nologin" {
		t.Errorf("pifleet shell: got %s, want /usr/sbin/nologin", m[4])
	}
	var uid int
	fmt.Sscan(m[1], &uid)
	if uid >= 1000 || uid == 0 {
		t.Errorf("pifleet uid: got %d, want a system uid (1..999)", uid)
	}
	groups := r.read("etc/group")
	if got := groupLine(t, groups, "docker"); got != "docker:x:500:alice,pifleet" {
		t.Errorf("docker group: got %q, want docker:x:500:alice,pifleet (existing members kept)", got)
	}
	pifleetGID := strings.Split(groupLine(t, groups, "pifleet"), ":")[2]
	if pifleetGID != m[2] {
		t.Errorf("pifleet primary gid %s, group pifleet has %s", m[2], pifleetGID)
	}
	fi, err := os.Stat(filepath.Join(r.dir, "etc/pifleet"))
	if err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("/etc/pifleet: %v mode %v, want a 0750 directory", err, fi.Mode())
	} else if st, ok := fi.Sys().(*syscall.Stat_t); !ok || st.Uid != 0 || fmt.Sprint(st.Gid) != pifleetGID {
		t.Errorf("/etc/pifleet owner: got %v, want root:pifleet (gid %s)", fi.Sys(), pifleetGID)
	}

	// Enabled: the wants symlink deb-systemd-helper makes, as systemctl enable would.
	link := "etc/systemd/system/multi-user.target.wants/pifleet-agent.service"
	if target, err := os.Readlink(filepath.Join(r.dir, link)); err != nil || target != "/lib/systemd/system/pifleet-agent.service" {
		t.Errorf("enable symlink %s: %q, %v", link, target, err)
	}

	// Idempotent: reinstalling (postinst configure <old-version>) and
	// running postinst once more change no account file.
	before := r.read("etc/passwd") + r.read("etc/group") + r.read("etc/shadow")
	r.dpkg("-i", agent)
	run(t, []string{"DPKG_ROOT=" + r.dir}, filepath.Join(r.dir, "var/lib/dpkg/info/pifleet-agent.postinst"), "configure", testVersion)
	if after := r.read("etc/passwd") + r.read("etc/group") + r.read("etc/shadow"); after != before {
		t.Errorf("postinst is not idempotent: account files changed on the second run:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// Remove keeps the conffile and disables; purge removes everything.
	r.dpkg("-r", "pifleet-agent")
	if r.exists("usr/bin/pifleet-agent") {
		t.Errorf("after dpkg -r: the binary is still there")
	}
	if !r.exists("etc/default/pifleet-agent") {
		t.Errorf("after dpkg -r: the conffile /etc/default/pifleet-agent is gone; only purge removes it")
	}
	r.dpkg("-P", "pifleet-agent")
	// Like dh_installsystemd: the enable symlink goes on purge.
	for _, p := range []string{"etc/default/pifleet-agent", link, "etc/systemd/system/pifleet-agent.service", "var/lib/systemd/deb-systemd-helper-enabled/pifleet-agent.service.dsh-also"} {
		if r.exists(p) {
			t.Errorf("after purge: %s still there", p)
		}
	}
	if got := hostFiles(t); got != host {
		t.Errorf("the maintainer scripts changed this machine's /etc/passwd or /etc/group: they must honour DPKG_ROOT")
	}
}

func TestDebInstallHubIntoThrowawayRoot(t *testing.T) {
	_, hub := debs(t)
	r := newRoot(t, "")
	out := r.dpkg("-i", hub)
	if !strings.Contains(r.read("etc/passwd"), "pifleet:x:") {
		t.Errorf("hub postinst created no pifleet user")
	}
	if strings.Contains(r.read("etc/group"), "docker:") {
		t.Errorf("hub postinst created a docker group; only the agent needs it")
	}
	link := "etc/systemd/system/multi-user.target.wants/pifleet-hub.service"
	if !r.exists(link) {
		t.Errorf("pifleet-hub.service not enabled (no %s); dpkg said:\n%s", link, out)
	}
}

// TestAgentPostinstCreatesDockerGroup: without Docker installed, the group
// must exist anyway or SupplementaryGroups=docker stops the unit.
func TestAgentPostinstCreatesDockerGroup(t *testing.T) {
	agent, _ := debs(t)
	r := newRoot(t, "")
	r.dpkg("-i", agent)
	if got := groupLine(t, r.read("etc/group"), "docker"); !strings.HasSuffix(got, ":pifleet") {
		t.Errorf("docker group: got %q, want it created with member pifleet", got)
	}
}

// TestDebRealAgentBinary builds the real agent into its package (amd64
// only, to stay fast; make deb builds armhf and arm64 the same way) and
// runs the packaged binary: the version stamped by build-deb.sh must show.
func TestDebRealAgentBinary(t *testing.T) {
	testenv.RequireCommand(t, "dpkg-deb", "dpkg")
	dir := t.TempDir()
	cmd := exec.Command("./build-deb.sh", "amd64")
	cmd.Env = append(os.Environ(), "VERSION=9.8.7", "PACKAGES=agent",
		"OUT_DIR="+filepath.Join(dir, "dist"), "BUILD_DIR="+filepath.Join(dir, "build"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build-deb.sh: %v\n%s", err, out)
	}
	root := filepath.Join(dir, "root")
	run(t, nil, "dpkg-deb", "-x", filepath.Join(dir, "dist", "pifleet-agent_9.8.7_amd64.deb"), root)
	out := run(t, nil, filepath.Join(root, "usr/bin/pifleet-agent"), "version")
	if !strings.Contains(out, "9.8.7") {
		t.Errorf("packaged agent says %q, want version 9.8.7 stamped by build-deb.sh", out)
	}
}

// TestDebToolImageBuilder: the builder the agent package ships works on
// its own, outside the repository, as on a Pi without it: on 32-bit
// Raspberry Pi OS it plans an armhf build from the Pi's own mirror.
func TestDebToolImageBuilder(t *testing.T) {
	agent, _ := debs(t)
	testenv.RequireCommand(t, "mmdebstrap", "mmdebstrap")
	root := t.TempDir()
	run(t, nil, "dpkg-deb", "-x", agent, root)
	osRelease, err := filepath.Abs("testdata/os-release/raspios-bookworm-armhf")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(root, "usr/share/pifleet-agent/build-tool-image"), "-n")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "OS_RELEASE="+osRelease, "HOST_ARCH=armhf")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("packaged build-tool-image -n: %v\n%s", err, out)
	}
	for _, want := range []string{"'--architectures=armhf'", "http://raspbian.raspberrypi.com/raspbian/", `"architecture":"arm","variant":"v7"`, "docker load (tag pifleet/awscli:latest)"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("packaged build-tool-image -n: want %s in:\n%s", want, out)
		}
	}
	shipped, err := os.ReadFile(filepath.Join(root, "usr/share/pifleet-agent/Dockerfile.awscli"))
	if err != nil {
		t.Fatal(err)
	}
	repo, err := os.ReadFile("../agent/Dockerfile.awscli")
	if err != nil || !bytes.Equal(shipped, repo) {
		t.Errorf("packaged Dockerfile.awscli differs from agent/Dockerfile.awscli (%v)", err)
	}
}
