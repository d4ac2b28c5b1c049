package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/api"
	"github.com/pifleet/pifleet/internal/testenv"
)

// TestSimLogsInAsProvisionedDevices: `pifleet sim --secrets` against the
// hub's TLS broker with per-device logins and ACL: each simulated Pi logs
// in with the password from its scripts/provision bundle and is shown
// online; a simulated id that was never provisioned is one clear error
// before anything connects.
func TestSimLogsInAsProvisionedDevices(t *testing.T) {
	root := testenv.ModuleRoot(t)
	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets")
	mqttPort, httpPort := testenv.FreePort(t), testenv.FreePort(t)
	brokerURL := fmt.Sprintf("mqtts://127.0.0.1:%d", mqttPort)
	for i := 0; i < 3; i++ {
		cmd := exec.Command(filepath.Join(root, "scripts", "provision"), "--secrets", secrets, "--broker", brokerURL,
			"--hub-hosts", "localhost,127.0.0.1", fmt.Sprintf("tsim-%05d", i))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("scripts/provision: %v\n%s", err, out)
		}
	}
	s := func(name string) string { return filepath.Join(secrets, name) }
	e := &fleetEnv{t: t, pifleet: binPifleet(t), httpPort: httpPort, brokerURL: brokerURL}
	e.hub = start(t, "tls hub", e.pifleet, "hub",
		"--mqtt-listen", fmt.Sprintf("127.0.0.1:%d", mqttPort), "--http-listen", fmt.Sprintf("127.0.0.1:%d", httpPort),
		"--mqtt-tls-cert", s("broker.pem"), "--mqtt-tls-key", s("broker.key"), "--mqtt-credentials", s("credentials.json"),
		"--ca-file", s("ca.pem"), "--username", "hub", "--password-file", s("hub.password"),
		"--signing-key", s("hub-signing.key"), "--state-dir", filepath.Join(dir, "hubstate"))
	testenv.WaitTCP(t, fmt.Sprintf("127.0.0.1:%d", httpPort), 15*time.Second, e.hub.out)

	// One id too many: sim-00003 has no bundle.
	out, code := e.run("sim", "--agents", "4", "--prefix", "tsim-", "--secrets", secrets, "--broker", brokerURL, "--ca-file", s("ca.pem"))
	if code == 0 || !strings.Contains(out, "tsim-00003") || len(lines(out)) != 1 {
		t.Errorf("an unprovisioned id: exit %d, want one line naming tsim-00003:\n%s", code, out)
	}

	sim := start(t, "sim", e.pifleet, "sim", "--agents", "3", "--prefix", "tsim-", "--rate", "50",
		"--secrets", secrets, "--broker", brokerURL, "--ca-file", s("ca.pem"))
	for i := 0; i < 3; i++ {
		e.waitDevice(fmt.Sprintf("tsim-%05d", i), 30*time.Second, "online over TLS with its own login", func(d api.Device) bool { return d.Online })
	}
	tarBin := testenv.RequireCommand(t, "tar", "tar")
	for i := 0; i < 3; i++ {
		pi := filepath.Join(dir, fmt.Sprintf("pi%d", i))
		if out, err := exec.Command("mkdir", "-p", pi).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if out, err := exec.Command(tarBin, "-xf", filepath.Join(secrets, "devices", fmt.Sprintf("tsim-%05d.tar", i)), "-C", pi, "--no-same-owner").CombinedOutput(); err != nil {
			t.Fatalf("unpack the bundle: %v\n%s", err, out)
		}
		if pw := readTrim(t, filepath.Join(pi, "etc", "pifleet", "device.password")); strings.Contains(sim.out.String(), pw) {
			t.Errorf("the simulator logged tsim-%05d's password", i)
		}
	}
}
