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

// TestJoinTokenOutOfArgv: the token can come from the standard input
// ("-") or PIFLEET_JOIN_TOKEN instead of the command line, where ps and
// the shell history would show it.
func TestJoinTokenOutOfArgv(t *testing.T) {
	addr, token := fakeEnrolHub(t)
	dir := t.TempDir()
	run := func(name string, stdin string, env map[string]string, args ...string) (string, error) {
		var out, errb bytes.Buffer
		root := filepath.Join(dir, name)
		err := Run(context.Background(), Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb,
			Getenv: func(k string) string { return env[k] }},
			append([]string{"join", "--root", root, "--id", "pi-" + name}, args...))
		return out.String() + errb.String(), err
	}
	joined := func(name string, out string, err error) {
		t.Helper()
		if err != nil || !strings.Contains(out, "joined the fleet as pi-"+name) {
			t.Errorf("%s: %v\n%s", name, err, out)
			return
		}
		if pw, _ := os.ReadFile(filepath.Join(dir, name, "etc/pifleet/device.password")); string(pw) != "pw-pi-"+name+"\n" {
			t.Errorf("%s: device.password = %q", name, pw)
		}
	}
	out, err := run("stdin", token+"\n", nil, addr, "-")
	joined("stdin", out, err)
	out, err = run("env", "", map[string]string{"PIFLEET_JOIN_TOKEN": token}, addr)
	joined("env", out, err)
	out, err = run("argv", "", nil, addr, token) // the issue's form still works
	joined("argv", out, err)

	if out, err := run("none", "", nil, addr); err == nil || !strings.Contains(err.Error(), "PIFLEET_JOIN_TOKEN") {
		t.Errorf("no token anywhere: %v\n%s", err, out)
	}
	if out, err := run("empty-stdin", "", nil, addr, "-"); err == nil || !strings.Contains(err.Error(), "token") {
		t.Errorf("- with an empty standard input: %v\n%s", err, out)
	}
}
