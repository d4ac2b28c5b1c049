package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pifleet/pifleet/internal/enrol"
	"github.com/pifleet/pifleet/internal/transport/pki"
)

// fakeEnrolHub is a hub's enrolment listener as far as join sees it: TLS
// with a fleet CA's chain, answering every join with a password login.
func fakeEnrolHub(t *testing.T) (addr, token string) {
	t.Helper()
	now := time.Now()
	ca, _, err := pki.NewCA("test fleet CA", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := ca.Issue(pki.Server, "hub", []string{"127.0.0.1"}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(append(cert, ca.CertPEM...), key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req enrol.JoinRequest
		if r.URL.Path != enrol.JoinPath || json.NewDecoder(r.Body).Decode(&req) != nil {
			http.Error(w, `{"error":"bad request"}`, http.StatusBadRequest)
			return
		}
		_ = json.NewEncoder(w).Encode(enrol.JoinAnswer{V: enrol.JoinVersion, ID: req.ID, MQTTPort: 8883,
			CAPEM: string(ca.CertPEM), HubKey: "KEY", Password: "pw-" + req.ID})
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	tok, err := enrol.NewToken(enrol.PinOf(ca.Cert.Raw))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(srv.URL, "https://"), tok.String()
}

// TestJoinRootIsTheSDCard: join --root DIR prepares an SD card: the
// secrets get the group pifleet of DIR/etc/group (not this machine's),
// and this machine's unit is not restarted unless --restart says so.
func TestJoinRootIsTheSDCard(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test checks file groups, which needs root (the test suite runs as root)")
	}
	addr, token := fakeEnrolHub(t)
	dir := t.TempDir()
	calls := filepath.Join(dir, "systemctl.log")
	systemctl := filepath.Join(dir, "systemctl")
	if err := os.WriteFile(systemctl, []byte("#!/bin/sh\necho \"$@\" >> "+calls+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	join := func(root string, extra ...string) string {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		// A gid this machine does not give pifleet (it may have no such group at all).
		if err := os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\npifleet:x:4242:\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		var out, errb bytes.Buffer
		args := append([]string{"join", "--root", root, "--systemctl", systemctl, "--id", "pi-sd"}, extra...)
		err := Run(context.Background(), Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}, append(args, addr, token))
		if err != nil {
			t.Fatalf("join %v: %v\n%s%s", extra, err, out.String(), errb.String())
		}
		return out.String()
	}

	root := filepath.Join(dir, "sd")
	out := join(root)
	fi, err := os.Stat(filepath.Join(root, "etc/pifleet/device.password"))
	if err != nil {
		t.Fatal(err)
	}
	if gid := fi.Sys().(*syscall.Stat_t).Gid; gid != 4242 {
		t.Errorf("device.password has gid %d; want 4242, the SD card's group pifleet", gid)
	}
	if b, err := os.ReadFile(calls); err == nil {
		t.Errorf("join --root %s restarted this machine's unit (systemctl %q)", root, b)
	}
	if strings.Contains(out, "restarted") {
		t.Errorf("join --root says it restarted the unit:\n%s", out)
	}

	join(filepath.Join(dir, "sd2"), "--restart")
	if b, _ := os.ReadFile(calls); string(b) != "restart -- "+enrol.AgentUnit+"\n" {
		t.Errorf("join --root --restart: systemctl called with %q; want one restart", b)
	}
}
