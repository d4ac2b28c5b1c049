package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/api"
	"github.com/pifleet/pifleet/internal/testenv"
)

// TestTLSFleetFromProvisioning follows the README from scripts/provision
// to a TLS-secured fleet with the real binaries: the hub's embedded broker
// speaks TLS with per-device logins and ACL, a provisioned agent (using
// only the files of its bundle) appears online; an agent with a wrong
// password, one without TLS and one claiming another device's id do not.
func TestTLSFleetFromProvisioning(t *testing.T) {
	root := testenv.ModuleRoot(t)
	tarBin := testenv.RequireCommand(t, "tar", "tar")
	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets")
	mqttPort, httpPort := testenv.FreePort(t), testenv.FreePort(t)
	brokerURL := fmt.Sprintf("mqtts://127.0.0.1:%d", mqttPort)
	for _, id := range []string{"pi-tls", "pi-other"} {
		cmd := exec.Command(filepath.Join(root, "scripts", "provision"), "--secrets", secrets, "--broker", brokerURL, "--hub-hosts", "localhost,127.0.0.1", id)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("scripts/provision %s: %v\n%s", id, err, out)
		} else if strings.Contains(string(out), "xoxb-") || !strings.Contains(string(out), "tar") {
			t.Fatalf("provision output should name the one command to run, and no secret:\n%s", out)
		}
	}
	// The Pi's side: only what its bundle holds.
	pi := filepath.Join(dir, "pi")
	os.MkdirAll(pi, 0o755)
	if out, err := exec.Command(tarBin, "-xf", filepath.Join(secrets, "devices", "pi-tls.tar"), "-C", pi, "--no-same-owner").CombinedOutput(); err != nil {
		t.Fatalf("unpack the bundle: %v\n%s", err, out)
	}
	s := func(name string) string { return filepath.Join(secrets, name) }
	e := &fleetEnv{t: t, pifleet: binPifleet(t), agentBin: binAgent(t), httpPort: httpPort, brokerURL: brokerURL}
	e.hub = start(t, "tls hub", e.pifleet, "hub",
		"--mqtt-listen", fmt.Sprintf("127.0.0.1:%d", mqttPort), "--http-listen", fmt.Sprintf("127.0.0.1:%d", httpPort),
		"--mqtt-tls-cert", s("broker.pem"), "--mqtt-tls-key", s("broker.key"), "--mqtt-credentials", s("credentials.json"),
		"--ca-file", s("ca.pem"), "--username", "hub", "--password-file", s("hub.password"),
		"--signing-key", s("hub-signing.key"), "--state-dir", filepath.Join(dir, "hubstate"), "--log-level", "debug")
	testenv.WaitTCP(t, fmt.Sprintf("127.0.0.1:%d", httpPort), 15*time.Second, e.hub.out)

	etc := filepath.Join(pi, "etc", "pifleet")
	agent := func(name, id, broker, password string, extra ...string) *proc {
		args := append([]string{"--broker", broker, "--id", id, "--keepalive", "10s", "--ca-file", filepath.Join(etc, "ca.pem"),
			"--password-file", password, "--hub-key", filepath.Join(etc, "hub-signing.pub"),
			"--data-dir", filepath.Join(dir, name), "--console-issue", "off", "--log-level", "debug"}, extra...)
		os.MkdirAll(filepath.Join(dir, name), 0o750)
		return start(t, name, e.agentBin, args...)
	}
	good := agent("good", "pi-tls", brokerURL, filepath.Join(etc, "device.password"))
	d := e.waitDevice("pi-tls", 30*time.Second, "online over TLS", func(d api.Device) bool { return d.Online && hasAddress(d) })
	if d.State != "online" {
		t.Errorf("pi-tls state %q", d.State)
	}

	wrongPW := filepath.Join(dir, "wrong.password")
	os.WriteFile(wrongPW, []byte("not-the-password\n"), 0o600)
	bad := agent("wrongpw", "pi-other", brokerURL, wrongPW)
	plain := agent("plain", "pi-other", fmt.Sprintf("mqtt://127.0.0.1:%d", mqttPort), filepath.Join(etc, "device.password"), "--ca-file", "")
	// pi-tls's password does not log in as pi-other.
	thief := agent("thief", "pi-other", brokerURL, filepath.Join(etc, "device.password"))
	testenv.Eventually(t, 30*time.Second, func() string {
		for p, why := range map[*proc]string{bad: "not Authorized", thief: "not Authorized", plain: "connect failed"} {
			if !strings.Contains(lastMatching(p.out.String(), "connect failed"), why) {
				return p.name + " has not been refused (" + why + ") yet:\n" + p.out.String()
			}
		}
		return ""
	})
	for _, p := range []*proc{bad, plain, thief} {
		t.Logf("%s: %s", p.name, lastMatching(p.out.String(), "connect failed"))
	}
	if _, ok, _ := e.device("pi-other"); ok {
		t.Errorf("pi-other appeared in the fleet although none of its agents had its credentials")
	}
	if !good.alive() {
		t.Errorf("the provisioned agent died:\n%s", good.out.String())
	}
	// A Pi provisioned while the hub runs logs in after `systemctl reload`
	// (SIGHUP re-reads the credentials file).
	cmd := exec.Command(filepath.Join(root, "scripts", "provision"), "--secrets", secrets, "--broker", brokerURL, "pi-late")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/provision pi-late: %v\n%s", err, out)
	}
	late := filepath.Join(dir, "late")
	os.MkdirAll(late, 0o755)
	if out, err := exec.Command(tarBin, "-xf", filepath.Join(secrets, "devices", "pi-late.tar"), "-C", late, "--no-same-owner").CombinedOutput(); err != nil {
		t.Fatalf("unpack the bundle: %v\n%s", err, out)
	}
	e.hub.kill(syscall.SIGHUP)
	testenv.Eventually(t, 10*time.Second, func() string {
		if strings.Contains(e.hub.out.String(), "credentials reloaded") {
			return ""
		}
		return "the hub did not reload its credentials on SIGHUP"
	})
	agent("late", "pi-late", brokerURL, filepath.Join(late, "etc", "pifleet", "device.password"))
	e.waitDevice("pi-late", 30*time.Second, "online after the reload", func(d api.Device) bool { return d.Online })

	for _, p := range []*proc{good, bad, plain, thief} {
		for _, secret := range []string{readTrim(t, filepath.Join(etc, "device.password")), "not-the-password"} {
			if strings.Contains(p.out.String(), secret) {
				t.Errorf("%s logged a password", p.name)
			}
		}
	}
}

func readTrim(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func lastMatching(s, sub string) string {
	lines := strings.Split(s, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], sub) {
			return lines[i]
		}
	}
	return ""
}
