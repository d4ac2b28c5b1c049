package enrol_test

import (
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pifleet/pifleet/internal/enrol"
	"github.com/pifleet/pifleet/internal/transport/pki"
)

func TestTokenRoundTrip(t *testing.T) {
	pin := enrol.PinOf([]byte("a CA certificate"))
	tok, err := enrol.NewToken(pin)
	if err != nil {
		t.Fatal(err)
	}
	s := tok.String()
	if !strings.HasPrefix(s, "pft1_") || len(s) != 5+92 || strings.ContainsAny(s[5:], "_-+/=") {
		t.Fatalf("token %q: want pft1_ and 92 base32 characters", s)
	}
	for _, in := range []string{s, "  " + s + "\n", strings.ToUpper(s)} {
		got, err := enrol.ParseToken(in)
		if err != nil || got != tok {
			t.Errorf("ParseToken(%q) = %+v, %v; want %+v", in, got, err, tok)
		}
	}
	if len(tok.ID) != 10 {
		t.Errorf("token id %q: want 10 hex digits", tok.ID)
	}
	other, _ := enrol.NewToken(pin)
	if other.ID == tok.ID || other.Secret == tok.Secret {
		t.Errorf("two tokens share an id or secret")
	}
}

func TestParseTokenRefuses(t *testing.T) {
	good, _ := enrol.NewToken(enrol.Pin{})
	s := good.String()
	for _, tc := range []struct{ in, want string }{
		{"", "not a pifleet join token"},
		{"hello", "not a pifleet join token"},
		{s[:len(s)-1], "not a pifleet join token"},          // cut short
		{s + "a", "not a pifleet join token"},               // too long
		{s[:10] + "1" + s[11:], "not a pifleet join token"}, // 1 is not base32
		{"pft2_" + s[5:], "another format version"},
	} {
		_, err := enrol.ParseToken(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseToken(%.20q…): got %v, want an error with %q", tc.in, err, tc.want)
		}
	}
}

func TestSecretHash(t *testing.T) {
	tok, _ := enrol.NewToken(enrol.Pin{})
	h := tok.SecretHash()
	if len(h) != 64 || strings.Contains(tok.String(), h) {
		t.Fatalf("hash %q: want 64 hex digits, not part of the token", h)
	}
	if !tok.MatchesHash(h) {
		t.Errorf("token does not match its own hash")
	}
	wrong := tok
	wrong.Secret[0] ^= 1
	if wrong.MatchesHash(h) {
		t.Errorf("a token with another secret matches")
	}
}

// fleet is a CA and a server certificate it issued.
type fleet struct {
	ca     *pki.CA
	caCert *x509.Certificate
	leaf   *x509.Certificate
}

func newFleet(t *testing.T) fleet {
	t.Helper()
	now := time.Now()
	ca, _, err := pki.NewCA("test CA", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, err := ca.Issue(pki.Server, "pifleet broker", []string{"pifleet-hub"}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := pki.ParseCertPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	return fleet{ca: ca, caCert: ca.Cert, leaf: leaf}
}

func TestVerifyPinned(t *testing.T) {
	a, b := newFleet(t), newFleet(t)
	clientPEM, _, err := a.ca.Issue(pki.Client, "pi-1", nil, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	client, _ := pki.ParseCertPEM(clientPEM)
	pinA := enrol.PinOf(a.caCert.Raw)
	for _, tc := range []struct {
		name  string
		chain []*x509.Certificate
		ok    bool
	}{
		{"leaf and pinned CA", []*x509.Certificate{a.leaf, a.caCert}, true},
		{"leaf without the CA", []*x509.Certificate{a.leaf}, false},
		{"another fleet's hub", []*x509.Certificate{b.leaf, b.caCert}, false},
		{"another hub's leaf sent with our CA", []*x509.Certificate{b.leaf, a.caCert}, false},
		{"a client certificate of our CA", []*x509.Certificate{client, a.caCert}, false},
		{"the CA alone", []*x509.Certificate{a.caCert}, false},
		{"nothing", nil, false},
	} {
		err := enrol.VerifyPinned(pinA, tc.chain)
		if tc.ok != (err == nil) {
			t.Errorf("%s: got %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, enrol.ErrPinMismatch) {
			t.Errorf("%s: %v is not ErrPinMismatch", tc.name, err)
		}
	}
}

func TestWriteFiles(t *testing.T) {
	root := filepath.Join(t.TempDir(), "sd") // made by WriteFiles
	c := enrol.PiConfig{ID: "pi-1", Broker: "mqtts://192.0.2.1:8883", ServerName: "pifleet-hub", CAPEM: []byte("CA\n"),
		HubKey: "KEY", Labels: []string{"lab", "shelf"}, Password: "pw", Origin: "a test"}
	files, err := c.Files()
	if err != nil {
		t.Fatal(err)
	}
	if err := enrol.WriteFiles(root, files, -1); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{
		"etc/pifleet":                 0o750,
		"etc/pifleet/ca.pem":          0o644,
		"etc/pifleet/hub-signing.pub": 0o644,
		"etc/pifleet/device.password": 0o640,
		"etc/default/pifleet-agent":   0o600,
	} {
		fi, err := os.Stat(filepath.Join(root, path))
		if err != nil {
			t.Errorf("%s: %v", path, err)
		} else if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), want)
		}
	}
	env, _ := os.ReadFile(filepath.Join(root, "etc/default/pifleet-agent"))
	for _, line := range []string{"PIFLEET_AGENT_ID=pi-1", "PIFLEET_AGENT_BROKER=mqtts://192.0.2.1:8883",
		"PIFLEET_AGENT_SERVER_NAME=pifleet-hub", "PIFLEET_AGENT_LABELS=lab,shelf", "PIFLEET_AGENT_USERNAME=pi-1",
		"PIFLEET_AGENT_PASSWORD_FILE=/etc/pifleet/device.password", "PIFLEET_AGENT_HUB_KEY=/etc/pifleet/hub-signing.pub"} {
		if !strings.Contains(string(env), line+"\n") {
			t.Errorf("env file lacks %q:\n%s", line, env)
		}
	}
	if pw, _ := os.ReadFile(filepath.Join(root, "etc/pifleet/device.password")); string(pw) != "pw\n" {
		t.Errorf("device.password = %q", pw)
	}
	if _, err := (enrol.PiConfig{ID: "x"}).Files(); err == nil {
		t.Errorf("a Pi without a login: no error")
	}
}

// TestWriteFilesRefusesLinks: preparing an SD card never writes through a
// symbolic link on it (one to the preparing machine's /etc, say): not for
// etc, etc/pifleet, etc/default, nor for a file itself.
func TestWriteFilesRefusesLinks(t *testing.T) {
	files, err := enrol.PiConfig{ID: "pi-1", Broker: "mqtts://192.0.2.1:8883", CAPEM: []byte("CA\n"), HubKey: "KEY",
		Password: "pw", Origin: "a test"}.Files()
	if err != nil {
		t.Fatal(err)
	}
	for _, link := range []string{"etc", "etc/pifleet", "etc/default", "etc/default/pifleet-agent", "etc/pifleet/device.password"} {
		t.Run(strings.ReplaceAll(link, "/", "_"), func(t *testing.T) {
			root, outside := t.TempDir(), t.TempDir()
			target := outside
			if strings.Count(link, "/") == 2 { // a file: the link points at a file outside
				target = filepath.Join(outside, "victim")
				if err := os.WriteFile(target, []byte("precious\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.MkdirAll(filepath.Join(root, filepath.Dir(link)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
				t.Fatal(err)
			}
			err := enrol.WriteFiles(root, files, -1)
			if err == nil || !strings.Contains(err.Error(), "symbolic link") {
				t.Errorf("WriteFiles with %s a symlink: %v; want a refusal naming the symbolic link", link, err)
			}
			if b, _ := os.ReadFile(filepath.Join(outside, "victim")); len(b) > 0 && string(b) != "precious\n" {
				t.Errorf("the file outside the root was changed: %q", b)
			}
			ents, _ := os.ReadDir(outside)
			for _, e := range ents {
				if e.Name() != "victim" {
					t.Errorf("WriteFiles wrote %s outside the root", e.Name())
				}
			}
		})
	}
}

// TestAgentGID: under a root other than /, the group comes from that
// root's etc/group, never this machine's.
func TestAgentGID(t *testing.T) {
	root := t.TempDir()
	if _, ok, err := enrol.AgentGID(filepath.Join(root, "not-yet")); ok || err != nil {
		t.Errorf("no root yet: ok=%v err=%v; want not found", ok, err)
	}
	if _, ok, err := enrol.AgentGID(root); ok || err != nil {
		t.Errorf("no etc/group: ok=%v err=%v; want not found", ok, err)
	}
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(s string) {
		if err := os.WriteFile(filepath.Join(root, "etc/group"), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("root:x:0:\npifleetx:x:7:\n")
	if _, ok, err := enrol.AgentGID(root); ok || err != nil {
		t.Errorf("no pifleet line: ok=%v err=%v", ok, err)
	}
	write("root:x:0:\npifleet:x:4242:pi\nusers:x:100:\n")
	if gid, ok, err := enrol.AgentGID(root); gid != 4242 || !ok || err != nil {
		t.Errorf("AgentGID = %d %v %v; want 4242", gid, ok, err)
	}
	write("pifleet:x:many:\n")
	if _, _, err := enrol.AgentGID(root); err == nil {
		t.Error("a bad gid: no error")
	}
	// A link out of the root is not read.
	outside := filepath.Join(t.TempDir(), "group")
	if err := os.WriteFile(outside, []byte("pifleet:x:4343:\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(root, "etc/group"))
	if err := os.Symlink(outside, filepath.Join(root, "etc/group")); err != nil {
		t.Fatal(err)
	}
	if gid, ok, _ := enrol.AgentGID(root); ok {
		t.Errorf("read the group %d through a link out of the root", gid)
	}
}

// A Pi whose clock is far off is told so, not that the hub is an impostor.
func TestVerifyPinnedClock(t *testing.T) {
	now := time.Now()
	ca, _, _ := pki.NewCA("test CA", now.Add(-48*time.Hour), time.Hour) // long expired
	certPEM, _, _ := ca.Issue(pki.Server, "pifleet broker", []string{"pifleet-hub"}, now.Add(-48*time.Hour), time.Hour)
	leaf, _ := pki.ParseCertPEM(certPEM)
	err := enrol.VerifyPinned(enrol.PinOf(ca.Cert.Raw), []*x509.Certificate{leaf, ca.Cert})
	if !errors.Is(err, enrol.ErrClock) || errors.Is(err, enrol.ErrPinMismatch) {
		t.Errorf("got %v; want an error about this machine's clock", err)
	}
}
