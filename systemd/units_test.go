package systemd

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/pifleet/pifleet/internal/testenv"
)

// units are the service files shipped in the packages, with the binaries
// their ExecStart names.
var units = []struct {
	file    string
	binary  string
	envFile string
}{
	{"pifleet-agent.service", "/usr/bin/pifleet-agent", "pifleet-agent.default"},
	{"pifleet-hub.service", "/usr/bin/pifleet", "pifleet-hub.default"},
}

// verify runs systemd-analyze verify on unit (a path) with extra
// environment and returns its stderr and exit error. systemd-analyze prints
// some mistakes (an unknown Type=) only as a warning with exit status 0,
// so callers check both.
func verify(t *testing.T, unit string, env ...string) (string, error) {
	t.Helper()
	bin := testenv.RequireCommand(t, "systemd-analyze", "systemd")
	cmd := exec.Command(bin, "verify", unit)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	err := cmd.Run()
	return stderr.String(), err
}

// stage copies the unit into a temp dir and points its ExecStart at a fake
// executable there: verify checks that ExecStart binaries exist and this
// machine has none installed.
func stage(t *testing.T, file, binary string, edit func(string) string) string {
	t.Helper()
	dir := t.TempDir()
	fake := filepath.Join(dir, filepath.Base(binary))
	if err := os.WriteFile(fake, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "ExecStart="+binary+" ", "ExecStart="+fake+" ")
	if !strings.Contains(text, "ExecStart="+fake) {
		t.Fatalf("%s: ExecStart does not run %s", file, binary)
	}
	if edit != nil {
		text = edit(text)
	}
	out := filepath.Join(dir, file)
	if err := os.WriteFile(out, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestUnitsVerify(t *testing.T) {
	for _, u := range units {
		t.Run(u.file, func(t *testing.T) {
			stderr, err := verify(t, stage(t, u.file, u.binary, nil))
			if err != nil || stderr != "" {
				t.Errorf("systemd-analyze verify %s: %v, output:\n%s\nwant exit 0 and no output", u.file, err, stderr)
			}
		})
	}
}

// TestVerifyCatchesWarnings proves the check above would see a mistake
// that systemd-analyze only warns about.
func TestVerifyCatchesWarnings(t *testing.T) {
	bad := stage(t, units[0].file, units[0].binary, func(s string) string {
		return strings.Replace(s, "Type=notify", "Type=notifyy", 1)
	})
	stderr, err := verify(t, bad)
	if !strings.Contains(stderr, "notifyy") {
		t.Errorf("verify of a unit with Type=notifyy: err %v, output %q; want a warning naming notifyy", err, stderr)
	}
}

func TestGettyDropInVerifies(t *testing.T) {
	dir := t.TempDir()
	dropDir := filepath.Join(dir, "serial-getty@.service.d")
	if err := os.MkdirAll(dropDir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("serial-getty@.service.d/pifleet.conf")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dropDir, "pifleet.conf"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/lib/systemd/system/serial-getty@.service"); err != nil {
		t.Fatalf("serial-getty@.service is missing (%v): install the Debian package \"systemd\"", err)
	}
	// A trailing colon appends the built-in unit path, so the stock
	// serial-getty@.service is found and our drop-in is merged into it.
	stderr, err := verify(t, "serial-getty@ttyS0.service", "SYSTEMD_UNIT_PATH="+dir+":")
	if err != nil || stderr != "" {
		t.Errorf("verify serial-getty@ttyS0.service with the drop-in: %v, output:\n%s", err, stderr)
	}
	// And the drop-in is really read: a bad value in it must be reported.
	if err := os.WriteFile(filepath.Join(dropDir, "pifleet.conf"), append(b, "Restart=sometimes\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	stderr, _ = verify(t, "serial-getty@ttyS0.service", "SYSTEMD_UNIT_PATH="+dir+":")
	if !strings.Contains(stderr, "sometimes") {
		t.Errorf("a bad Restart= in the drop-in was not reported; output %q", stderr)
	}
}

// directives parses a unit or env file into "Section/Key" -> values.
func directives(t *testing.T, file string) map[string][]string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: line %q is not Key=Value", file, line)
			}
			key := k
			if section != "" {
				key = section + "/" + k
			}
			out[key] = append(out[key], v)
		}
	}
	return out
}

// TestUnitPolicy pins the choices issue 8 asks for, so an edit that drops
// one fails here with the reason rather than on a Pi.
func TestUnitPolicy(t *testing.T) {
	want := map[string]string{
		"Service/Type":            "notify",
		"Service/Restart":         "on-failure",
		"Service/ProtectSystem":   "strict",
		"Service/ProtectHome":     "yes",
		"Service/PrivateTmp":      "yes",
		"Service/NoNewPrivileges": "yes",
		"Service/User":            "pifleet",
		"Unit/Wants":              "network-online.target",
	}
	for _, u := range units {
		d := directives(t, u.file)
		for k, v := range want {
			if got := d[k]; len(got) != 1 || got[0] != v {
				t.Errorf("%s: %s = %q, want %q", u.file, k, got, v)
			}
		}
		if got := d["Service/EnvironmentFile"]; len(got) != 1 || !strings.HasPrefix(got[0], "-/etc/default/") {
			t.Errorf("%s: EnvironmentFile = %q, want one optional (-) file in /etc/default", u.file, got)
		}
		if len(d["Service/WatchdogSec"]) != 1 {
			t.Errorf("%s: no WatchdogSec=", u.file)
		}
		if r := d["Unit/Requires"]; len(r) != 0 {
			t.Errorf("%s: Requires=%q: a missing network or clock must delay, never block, the service", u.file, r)
		}
		for _, a := range []string{"network-online.target", "time-sync.target"} {
			if !strings.Contains(strings.Join(d["Unit/After"], " "), a) {
				t.Errorf("%s: After= lacks %s", u.file, a)
			}
		}
	}
	agent := directives(t, "pifleet-agent.service")
	if got := agent["Service/SupplementaryGroups"]; len(got) != 1 || got[0] != "docker" {
		t.Errorf("agent SupplementaryGroups = %q, want docker (the runner talks to the Docker socket)", got)
	}
	if got := agent["Service/StateDirectory"]; len(got) != 1 || got[0] != "pifleet-agent" {
		t.Errorf("agent StateDirectory = %q, want pifleet-agent (/var/lib/pifleet-agent, the command store)", got)
	}
	if got := agent["Service/ReadWritePaths"]; len(got) != 1 || got[0] != "-/run/issue.d -/run/agetty.reload" {
		t.Errorf("agent ReadWritePaths = %q, want only -/run/issue.d -/run/agetty.reload (the console banner and agetty --reload)", got)
	}
}

var envVarRef = regexp.MustCompile(`\$\{?([A-Z_][A-Z0-9_]*)`)

// TestDefaultEnvFiles checks that every variable a unit's ExecStart uses is
// defined in its default file and that the file is plain KEY=VALUE lines,
// which is all EnvironmentFile= understands.
func TestDefaultEnvFiles(t *testing.T) {
	line := regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=[^\s'"]*$`)
	for _, u := range units {
		b, err := os.ReadFile(u.envFile)
		if err != nil {
			t.Fatal(err)
		}
		defined := map[string]bool{}
		for _, l := range strings.Split(string(b), "\n") {
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			if !line.MatchString(l) {
				t.Errorf("%s: line %q: want KEY=VALUE without spaces or quotes", u.envFile, l)
				continue
			}
			k, _, _ := strings.Cut(l, "=")
			defined[k] = true
		}
		for _, exec := range directives(t, u.file)["Service/ExecStart"] {
			for _, m := range envVarRef.FindAllStringSubmatch(exec, -1) {
				if !defined[m[1]] {
					t.Errorf("%s uses $%s, which %s does not define", u.file, m[1], u.envFile)
				}
			}
		}
	}
}

// TestReadmeExplainsEveryDirective keeps systemd/README.md in step with
// the units: every directive used must be explained there.
func TestReadmeExplainsEveryDirective(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"pifleet-agent.service", "pifleet-hub.service", "serial-getty@.service.d/pifleet.conf"} {
		for k := range directives(t, f) {
			_, key, _ := strings.Cut(k, "/")
			if !bytes.Contains(readme, []byte("`"+key+"=")) {
				t.Errorf("README.md does not explain %s= (used in %s)", key, f)
			}
		}
	}
}

// TestTmpfilesSnippet applies the agent's tmpfiles snippet with the real
// systemd-tmpfiles to a throwaway root that has the pifleet user: the
// banner directory and agetty's reload file end up group pifleet and
// writable by it, even where an earlier `agetty --reload` by root left a
// root-only reload file.
func TestTmpfilesSnippet(t *testing.T) {
	bin := testenv.RequireCommand(t, "systemd-tmpfiles", "systemd")
	testenv.RequireRoot(t, "systemd-tmpfiles --root changes ownership")
	root := t.TempDir()
	for name, body := range map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\npifleet:x:990:990::/nonexistent:/usr/sbin/nologin\n",
		"etc/group":  "root:x:0:\npifleet:x:990:\n",
	} {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "run/agetty.reload"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	snippet, err := filepath.Abs("pifleet-agent.tmpfiles")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "--root="+root, "--create", snippet).CombinedOutput(); err != nil || len(out) != 0 {
		t.Fatalf("systemd-tmpfiles --create: %v\n%s", err, out)
	}
	for path, want := range map[string]os.FileMode{
		"run/issue.d":       os.ModeDir | 0o775,
		"run/agetty.reload": 0o660,
	} {
		fi, err := os.Stat(filepath.Join(root, path))
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode()&(os.ModeDir|os.ModePerm) != want || st.Uid != 0 || st.Gid != 990 {
			t.Errorf("/%s: mode %v uid %d gid %d, want %v root:pifleet (990)", path, fi.Mode(), st.Uid, st.Gid, want)
		}
	}
}
