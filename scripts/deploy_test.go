package scripts

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pifleet/pifleet/internal/testenv"
)

// fleet is a real sshd on 127.0.0.1 started for one test, standing in for
// several Pis. Every login runs a forced command that puts fake dpkg,
// dpkg-query and systemctl first on PATH, so nothing on this machine is
// really installed; the ssh_config names hosts pi-a, pi-b … which reach
// the same sshd and tell it which Pi they are with SetEnv FAKE_HOST.
type fleet struct {
	t      *testing.T
	dir    string
	state  string // per-host fake state: state/<host>/{arch,version,unit-state,commands.log}
	config string // ssh_config
	dist   string
}

const fakeDpkg = `#!/bin/sh
S="$STATE/$FAKE_HOST"
case "$1" in
--print-architecture)
	if [ -e "$STATE/barrier/need" ]; then
		# Proves hosts are handled in parallel: wait for all of them.
		touch "$STATE/barrier/$FAKE_HOST"
		n=0
		while [ "$(ls "$STATE/barrier" | grep -vc need)" -lt "$(cat "$STATE/barrier/need")" ]; do
			n=$((n + 1)); [ $n -lt 400 ] || { echo "barrier: other hosts never came (deploy is sequential?)" >&2; exit 1; }
			sleep 0.05
		done
	fi
	cat "$S/arch" ;;
--force-confold)
	# deploy.sh keeps the operator's (provisioned) conffiles: dpkg --force-confold --force-confdef -i FILE
	[ "$2" = --force-confdef ] && [ "$3" = -i ] || { echo "fake dpkg: unexpected $*" >&2; exit 2; }
	cp "$4" "$S/installed.deb"
	dpkg-deb -f "$4" Version >"$S/version"
	echo "Setting up $(dpkg-deb -f "$4" Package) ($(cat "$S/version")) ..." ;;
*) echo "fake dpkg: unexpected $*" >&2; exit 2 ;;
esac
`

const fakeDpkgQuery = `#!/bin/sh
S="$STATE/$FAKE_HOST"
if [ -e "$S/version" ]; then printf 'install ok installed %s' "$(cat "$S/version")"; exit 0; fi
echo "dpkg-query: no packages found matching pifleet-agent" >&2
exit 1
`

const fakeSystemctl = `#!/bin/sh
S="$STATE/$FAKE_HOST"
case "$1" in
restart)
	if [ -e "$S/fail-restart" ]; then echo "Job for $2 failed because the control process exited with error code." >&2; exit 1; fi
	echo active >"$S/unit-state" ;;
is-active)
	st=$(cat "$S/unit-state" 2>/dev/null || echo inactive); echo "$st"; [ "$st" = active ] ;;
*) echo "fake systemctl: unexpected $*" >&2; exit 2 ;;
esac
`

func newFleet(t *testing.T, hosts map[string]string) *fleet {
	t.Helper()
	sshd := testenv.RequireCommand(t, "sshd", "openssh-server")
	keygen := testenv.RequireCommand(t, "ssh-keygen", "openssh-client")
	testenv.RequireCommand(t, "ssh", "openssh-client")
	testenv.RequireCommand(t, "dpkg-deb", "dpkg")
	testenv.RequireRoot(t, "sshd (it logs in as root to a forced command)")
	dir, err := os.MkdirTemp("", "pfd") // short: ssh control paths and sockets
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := &fleet{t: t, dir: dir, state: filepath.Join(dir, "state"), config: filepath.Join(dir, "ssh_config"), dist: filepath.Join(dir, "dist")}
	for _, d := range []string{"fakebin", "state", "dist"} {
		f.mkdir(d)
	}
	for name, body := range map[string]string{"dpkg": fakeDpkg, "dpkg-query": fakeDpkgQuery, "systemctl": fakeSystemctl} {
		f.write("fakebin/"+name, body, 0o755)
	}
	f.write("wrapper", fmt.Sprintf(`#!/bin/sh
export STATE=%[1]s/state PATH=%[1]s/fakebin:/usr/bin:/bin
echo "$SSH_ORIGINAL_COMMAND" >>"$STATE/$FAKE_HOST/commands.log"
exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"
`, dir), 0o755)
	for h, arch := range hosts {
		f.mkdir("state/" + h)
		f.write("state/"+h+"/arch", arch+"\n", 0o644)
	}

	run(t, nil, keygen, "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "host_key"))
	run(t, nil, keygen, "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "client_key"))
	pub, _ := os.ReadFile(filepath.Join(dir, "client_key.pub"))
	f.write("authorized_keys", fmt.Sprintf("command=%q,no-pty,no-port-forwarding %s", filepath.Join(dir, "wrapper"), pub), 0o600)
	hostPub, _ := os.ReadFile(filepath.Join(dir, "host_key.pub"))

	// Each Pi gets its own loopback address (all of 127/8 is local), so
	// deploy.sh's shared connections (ControlMaster, keyed by address)
	// stay apart; one host key alias covers them all.
	port := testenv.FreePort(t)
	var listen, cfg strings.Builder
	n := 1
	for h := range hosts {
		n++
		fmt.Fprintf(&listen, "ListenAddress 127.0.0.%d\n", n)
		fmt.Fprintf(&cfg, "Host pi-%s\n  HostName 127.0.0.%d\n  SetEnv FAKE_HOST=%s\n", h, n, h)
	}
	f.write("sshd_config", fmt.Sprintf(`Port %d
%s
HostKey %[3]s/host_key
PidFile none
AuthorizedKeysFile %[3]s/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AcceptEnv FAKE_HOST
MaxStartups 50
LogLevel ERROR
`, port, listen.String(), dir), 0o600)
	f.write("known_hosts", fmt.Sprintf("pifleet-test-pi %s", hostPub), 0o644)
	fmt.Fprintf(&cfg, "Host pi-dead\n  HostName 127.0.0.1\n  Port %d\n", testenv.FreePort(t))
	fmt.Fprintf(&cfg, `Host pi-*
  Port %d
  User root
  IdentityFile %[2]s/client_key
  IdentitiesOnly yes
  UserKnownHostsFile %[2]s/known_hosts
  HostKeyAlias pifleet-test-pi
  StrictHostKeyChecking yes
  KexAlgorithms curve25519-sha256
  LogLevel ERROR
`, port, dir)
	f.write("ssh_config", cfg.String(), 0o644)

	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // privilege separation dir
		t.Fatal(err)
	}
	log := &testenv.SyncBuffer{}
	cmd := exec.Command(sshd, "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	// sshd runs every command through the login shell, and bash sources
	// ~/.bashrc when started by sshd. A heavy root .bashrc (pyenv init on
	// this machine) costs seconds per command, so sshd gets a private
	// mount namespace in which that file is empty. Nothing outside changes.
	if rc := "/root/.bashrc"; fileExists(rc) {
		unshare := testenv.RequireCommand(t, "unshare", "util-linux")
		f.write("empty", "", 0o644)
		cmd = exec.Command(unshare, "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
			`mount --bind "$1" "$2" && exec "$3" -D -e -f "$4"`, "sh",
			filepath.Join(dir, "empty"), rc, sshd, filepath.Join(dir, "sshd_config"))
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	testenv.WaitTCP(t, fmt.Sprintf("127.0.0.2:%d", port), 10*time.Second, log)
	return f
}

func (f *fleet) mkdir(p string) {
	if err := os.MkdirAll(filepath.Join(f.dir, p), 0o755); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fleet) write(p, s string, mode os.FileMode) {
	if err := os.WriteFile(filepath.Join(f.dir, p), []byte(s), mode); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fleet) read(p string) string {
	b, _ := os.ReadFile(filepath.Join(f.dir, p))
	return string(b)
}

// deb builds a minimal real package for arch into the fleet's dist dir.
func (f *fleet) deb(arch, version string) string {
	f.t.Helper()
	root := filepath.Join(f.dir, "pkg-"+arch)
	if err := os.MkdirAll(filepath.Join(root, "DEBIAN"), 0o755); err != nil {
		f.t.Fatal(err)
	}
	control := fmt.Sprintf("Package: pifleet-agent\nVersion: %s\nArchitecture: %s\nMaintainer: test <t@example.invalid>\nDescription: test package\n", version, arch)
	if err := os.WriteFile(filepath.Join(root, "DEBIAN/control"), []byte(control), 0o644); err != nil {
		f.t.Fatal(err)
	}
	out := filepath.Join(f.dist, fmt.Sprintf("pifleet-agent_%s_%s.deb", version, arch))
	run(f.t, nil, "dpkg-deb", "--root-owner-group", "-b", root, out)
	return out
}

// deploy runs scripts/deploy.sh and returns its output lines per host and
// its exit code.
func (f *fleet) deploy(args ...string) (map[string]string, int, string) {
	f.t.Helper()
	cmd := exec.Command("./deploy.sh", append([]string{"--dist", f.dist}, args...)...)
	cmd.Env = append(os.Environ(), "SSH=ssh -F "+f.config)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		f.t.Fatalf("run deploy.sh: %v", err)
	}
	res := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		h, r, _ := strings.Cut(line, " ")
		res[h] = r
	}
	return res, code, stdout.String() + stderr.String()
}

func TestDeployReportsPerHost(t *testing.T) {
	f := newFleet(t, map[string]string{"a": "armhf", "b": "arm64", "c": "mipsel", "e": "arm64"})
	armhf := f.deb("armhf", "1.2.3")
	f.deb("arm64", "1.2.3")
	f.write("state/e/fail-restart", "", 0o644)

	res, code, out := f.deploy("pi-a", "pi-b", "pi-c", "pi-dead", "pi-e")
	want := map[string]string{
		"pi-a":    "ok: installed pifleet-agent 1.2.3 (armhf), pifleet-agent.service active",
		"pi-b":    "ok: installed pifleet-agent 1.2.3 (arm64), pifleet-agent.service active",
		"pi-c":    "failed: architecture 'mipsel' is not built",
		"pi-dead": "failed: ssh/dpkg --print-architecture: ",
		"pi-e":    "failed: systemctl restart pifleet-agent.service: Job for pifleet-agent.service failed",
	}
	for h, w := range want {
		if !strings.HasPrefix(res[h], w) {
			t.Errorf("%s: got %q, want %q…", h, res[h], w)
		}
	}
	if !strings.Contains(res["pi-dead"], "refused") {
		t.Errorf("pi-dead: got %q, want the ssh reason (connection refused)", res["pi-dead"])
	}
	if code != 1 {
		t.Errorf("exit code: got %d, want 1 (some hosts failed)", code)
	}
	if got, _ := os.ReadFile(filepath.Join(f.state, "a", "installed.deb")); !bytes.Equal(got, mustRead(t, armhf)) {
		t.Errorf("pi-a did not receive the armhf package intact")
	}
	if strings.Contains(out, "PRIVATE KEY") {
		t.Errorf("output contains key material:\n%s", out)
	}

	// Idempotent: a second run changes nothing on hosts that are current.
	before := f.read("state/a/commands.log")
	res, code, _ = f.deploy("pi-a", "pi-b")
	if code != 0 || !strings.Contains(res["pi-a"], "already installed") || !strings.Contains(res["pi-b"], "already installed") {
		t.Errorf("second run: got %q (exit %d), want both already installed, exit 0", res, code)
	}
	if added := strings.TrimPrefix(f.read("state/a/commands.log"), before); strings.Contains(added, "dpkg --force-confold") || strings.Contains(added, "restart") {
		t.Errorf("second run installed or restarted again:\n%s", added)
	}

	// A newer package is installed over the old one.
	time.Sleep(10 * time.Millisecond) // newer mtime
	f.deb("armhf", "1.2.4")
	res, _, _ = f.deploy("pi-a")
	if !strings.HasPrefix(res["pi-a"], "ok: installed pifleet-agent 1.2.4") {
		t.Errorf("upgrade: got %q, want 1.2.4 installed", res["pi-a"])
	}
}

func TestDeployDryRunChangesNothing(t *testing.T) {
	f := newFleet(t, map[string]string{"a": "armhf"})
	f.deb("armhf", "1.2.3")
	res, code, _ := f.deploy("--dry-run", "pi-a")
	if code != 0 || !strings.HasPrefix(res["pi-a"], "ok: dry run: would install pifleet-agent_1.2.3_armhf.deb (installed: none") {
		t.Errorf("dry run: got %q (exit %d)", res["pi-a"], code)
	}
	log := f.read("state/a/commands.log")
	for _, forbidden := range []string{"cat >", "dpkg --force-confold", "restart"} {
		if strings.Contains(log, forbidden) {
			t.Errorf("dry run ran %q on the host:\n%s", forbidden, log)
		}
	}
}

// TestDeployRunsHostsInParallel: the fake dpkg on each host waits until
// every host has reached it, so a sequential deploy fails here rather than
// being merely slow.
func TestDeployRunsHostsInParallel(t *testing.T) {
	f := newFleet(t, map[string]string{"a": "armhf", "b": "arm64", "c": "armhf"})
	f.deb("armhf", "1.0.0")
	f.deb("arm64", "1.0.0")
	f.mkdir("state/barrier")
	f.write("state/barrier/need", "3\n", 0o644)
	res, code, out := f.deploy("pi-a", "pi-b", "pi-c")
	if code != 0 {
		t.Errorf("parallel deploy: got %q (exit %d), want all ok\n%s", res, code, out)
	}
}

func TestDeployUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"--package", "nope", "pi-a"}, {"--bogus", "pi-a"}} {
		cmd := exec.Command("./deploy.sh", args...)
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
			t.Errorf("deploy.sh %q: %v, want exit 2 with usage\n%s", args, err, out)
		}
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
