package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pifleet/pifleet/internal/testenv"
)

// TestEnrolWithThePackagedHubDefaults starts the hub as pifleet-hub.service
// does — /etc/default/pifleet-hub, unedited, as its environment and the
// unit's state directory — and a Pi joins it with add-pi's one line: the
// packaged hub enrols Pis out of the box, secured by its own fleet CA.
func TestEnrolWithThePackagedHubDefaults(t *testing.T) {
	r := newEnrolRig(t)
	b, err := os.ReadFile("../../../systemd/pifleet-hub.default")
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(r.dir, "var-lib-pifleet-hub")
	env := []string{"STATE_DIRECTORY=" + state}
	for _, l := range os.Environ() {
		if !strings.HasPrefix(l, "PIFLEET_") {
			env = append(env, l)
		}
	}
	for _, l := range strings.Split(string(b), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.Contains(l, "/etc/") {
			t.Errorf("the packaged defaults name %q: a fresh hub has no such file", l)
		}
		env = append(env, strings.ReplaceAll(l, "/var/lib/pifleet-hub", state))
	}
	if err := os.MkdirAll(state, 0o750); err != nil {
		t.Fatal(err)
	}
	cmd := r.hubNS.Command(r.pifleet, "hub") // ExecStart=/usr/bin/pifleet hub $PIFLEET_HUB_ARGS (empty)
	cmd.Env = env
	hub := startCmd(t, "packaged hub", cmd)
	testenv.Eventually(t, 30*time.Second, func() string {
		if !hub.alive() {
			t.Fatalf("the packaged hub exited:\n%s", hub.out.String())
		}
		if out, code := r.cli("devices"); code != 0 {
			return "hub not answering yet: " + out
		}
		if !strings.Contains(hub.out.String(), "enrolment listening") {
			return "no enrolment listener yet"
		}
		return ""
	})
	for _, f := range []string{"pki/ca.pem", "pki/ca.key", "pki/broker.pem", "pki/credentials.json", "hub.key"} {
		if _, err := os.Stat(filepath.Join(state, f)); err != nil {
			t.Errorf("the hub made no %s in its state directory: %v", f, err)
		}
	}
	if err := os.WriteFile(filepath.Join(r.dir, "systemctl"), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, token := r.addPi("pi-pkg") // checks the line names 192.0.2.1:8443
	root := filepath.Join(r.dir, "pi-root")
	if out, code := r.join(root, enrolAddr, token); code != 0 {
		t.Fatalf("join: exit %d:\n%s", code, out)
	}
	r.startUnit("agent pi-pkg", root)
	testenv.Eventually(t, 30*time.Second, func() string {
		if d, ok := r.device("pi-pkg"); !ok || !d.Online {
			return fmt.Sprintf("pi-pkg not online yet: %+v", d)
		}
		return ""
	})
}
