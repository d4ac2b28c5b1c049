package scripts

import (
	"archive/tar"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pifleet/pifleet/internal/credentials"
	"github.com/pifleet/pifleet/internal/transport"
)

// provision runs scripts/provision with a secrets dir and returns its
// combined output.
func provision(t *testing.T, secrets string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("./provision", append([]string{"--secrets", secrets}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

type bundleEntry struct {
	mode  int64
	gname string
	body  string
}

func readBundle(t *testing.T, path string) map[string]bundleEntry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]bundleEntry{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out[h.Name] = bundleEntry{h.Mode, h.Gname, string(b)}
	}
}

func TestProvisionPassword(t *testing.T) {
	secrets := filepath.Join(t.TempDir(), "secrets")
	out, err := provision(t, secrets, "pi-1", "--broker", "mqtts://hub.example:8883")
	if err != nil {
		t.Fatalf("provision: %v\n%s", err, out)
	}
	b := readBundle(t, filepath.Join(secrets, "devices", "pi-1.tar"))
	want := map[string]struct {
		mode  int64
		gname string
	}{
		"etc/pifleet/":                {0o750, "pifleet"},
		"etc/pifleet/ca.pem":          {0o644, "root"},
		"etc/pifleet/hub-signing.pub": {0o644, "root"},
		"etc/pifleet/device.password": {0o640, "pifleet"},
		"etc/default/pifleet-agent":   {0o600, "root"},
	}
	for name, w := range want {
		got, ok := b[name]
		if !ok || got.mode != w.mode || got.gname != w.gname {
			t.Errorf("bundle %s: got %+v (present %v), want mode %o group %s", name, got, ok, w.mode, w.gname)
		}
	}
	if len(b) != len(want) {
		t.Errorf("bundle has %d entries, want %d: %v", len(b), len(want), b)
	}
	pw := strings.TrimSpace(b["etc/pifleet/device.password"].body)
	if len(pw) < 40 {
		t.Errorf("password %d characters, want >= 40 random ones", len(pw))
	}
	if strings.Contains(out, pw) {
		t.Errorf("provision printed the password")
	}
	env := b["etc/default/pifleet-agent"].body
	for _, line := range []string{"PIFLEET_AGENT_ID=pi-1", "PIFLEET_AGENT_BROKER=mqtts://hub.example:8883", "PIFLEET_AGENT_PASSWORD_FILE=/etc/pifleet/device.password", "PIFLEET_AGENT_USERNAME=pi-1", "PIFLEET_AGENT_CA_FILE=/etc/pifleet/ca.pem", "PIFLEET_AGENT_HUB_KEY=/etc/pifleet/hub-signing.pub"} {
		if !strings.Contains(env, line+"\n") {
			t.Errorf("env file lacks %q:\n%s", line, env)
		}
	}
	if strings.Contains(env, pw) {
		t.Errorf("env file contains the password itself; it names the file")
	}
	if !strings.Contains(out, "sudo tar -xpf pi-1.tar -C / --no-overwrite-dir && rm pi-1.tar && sudo systemctl restart pifleet-agent") {
		t.Errorf("output lacks the command to run on the Pi:\n%s", out)
	}

	// The hub side: hashes only, the device's password matches.
	creds, err := credentials.Load(filepath.Join(secrets, "credentials.json"))
	if err != nil {
		t.Fatal(err)
	}
	e, hub, ok := creds.Find("pi-1")
	if !ok || hub {
		t.Fatalf("credentials: pi-1 missing or a hub")
	}
	if ok, err := credentials.CheckPassword(e.PasswordHash, pw); !ok || err != nil {
		t.Errorf("stored hash does not match the bundle's password: %v %v", ok, err)
	}
	if _, hub, ok := creds.Find("hub"); !ok || !hub {
		t.Errorf("credentials: no hub identity")
	}
	for name, mode := range map[string]os.FileMode{"ca.key": 0o600, "broker.key": 0o600, "hub-signing.key": 0o600, "hub.password": 0o600, "credentials.json": 0o640, "devices/pi-1.tar": 0o600, ".": 0o700} {
		fi, err := os.Stat(filepath.Join(secrets, name))
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("secrets/%s: %v, mode %v, want %v", name, err, fi.Mode().Perm(), mode)
		}
	}

	// Again: refused without --rotate; --rotate issues a new password.
	if out, err := provision(t, secrets, "pi-1"); err == nil || !strings.Contains(out, "already provisioned") {
		t.Errorf("second provision without --rotate: %v\n%s", err, out)
	}
	if out, err := provision(t, secrets, "pi-1", "--rotate"); err != nil {
		t.Fatalf("--rotate: %v\n%s", err, out)
	}
	creds, _ = credentials.Load(filepath.Join(secrets, "credentials.json"))
	e, _, _ = creds.Find("pi-1")
	if ok, _ := credentials.CheckPassword(e.PasswordHash, pw); ok {
		t.Errorf("after --rotate the old password still works")
	}
}

func TestProvisionCertificate(t *testing.T) {
	secrets := filepath.Join(t.TempDir(), "secrets")
	if out, err := provision(t, secrets, "--auth", "cert", "pi-2"); err != nil {
		t.Fatalf("provision: %v\n%s", err, out)
	}
	b := readBundle(t, filepath.Join(secrets, "devices", "pi-2.tar"))
	blk, _ := pem.Decode([]byte(b["etc/pifleet/device.pem"].body))
	if blk == nil {
		t.Fatalf("no device certificate in the bundle: %v", b)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pool, _, err := transport.LoadCertPool(filepath.Join(secrets, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("device certificate does not verify against the fleet CA: %v", err)
	}
	if cert.Subject.CommonName != "pi-2" {
		t.Errorf("CN: got %q, want pi-2", cert.Subject.CommonName)
	}
	if k := b["etc/pifleet/device.key"]; k.mode != 0o640 || k.gname != "pifleet" {
		t.Errorf("device key: mode %o group %s, want 0640 pifleet", k.mode, k.gname)
	}
	creds, _ := credentials.Load(filepath.Join(secrets, "credentials.json"))
	if e, _, ok := creds.Find("pi-2"); !ok || e.PasswordHash != "" || e.CertSHA256 != credentials.CertSHA256(cert.Raw) {
		t.Errorf("pi-2 credentials: got %+v, want a certificate-only entry pinning sha256 %s", e, credentials.CertSHA256(cert.Raw))
	}
	if _, _, err := creds.Login("", "", cert); err != nil {
		t.Errorf("the bundle's certificate does not log in: %v", err)
	}
	// --rotate: a new certificate, and the old one no longer logs in.
	if out, err := provision(t, secrets, "--auth", "cert", "--rotate", "pi-2"); err != nil {
		t.Fatalf("--rotate: %v\n%s", err, out)
	}
	creds, _ = credentials.Load(filepath.Join(secrets, "credentials.json"))
	if _, _, err := creds.Login("", "", cert); err == nil {
		t.Errorf("after --rotate the old certificate still logs in")
	}
}

func TestProvisionRejectsBadInput(t *testing.T) {
	secrets := filepath.Join(t.TempDir(), "secrets")
	for _, args := range [][]string{{"bad/id"}, {"pi-1", "--broker", "mqtt://hub:1883"}, {"pi-1", "--auth", "magic"}, {}} {
		if out, err := provision(t, secrets, args...); err == nil {
			t.Errorf("provision %q succeeded, want an error\n%s", args, out)
		}
	}
}
