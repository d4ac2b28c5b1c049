package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pifleet/pifleet/agent/runnertest"
	"github.com/pifleet/pifleet/agent/testenv"
	"github.com/pifleet/pifleet/hub/internal/api"
)

// TestDockerCommandsThroughBinaries runs a cloud command the way an
// operator does, through the real binaries: `pifleet ask aws …` → the
// hub's dispatcher signs it → the real agent (trusting the hub's key)
// runs the AWS CLI in a container on the real Docker Engine → the answer.
// An agent without --hub-key is refused at once, and a denied verb never
// leaves the hub.
func TestDockerCommandsThroughBinaries(t *testing.T) {
	img := runnertest.AWSCLI(t) // built locally from Debian's awscli; fails clearly without Docker
	dir := t.TempDir()
	pol := filepath.Join(dir, "policy.json")
	b, _ := json.Marshal(map[string]any{"tools": map[string]any{"aws": map[string]any{"image": img}}})
	if err := os.WriteFile(pol, b, 0o644); err != nil {
		t.Fatal(err)
	}
	e := &fleetEnv{t: t, pifleet: binPifleet(t), agentBin: binAgent(t), httpPort: testenv.FreePort(t), mqttPort: testenv.FreePort(t)}
	e.brokerURL = fmt.Sprintf("mqtt://127.0.0.1:%d", e.mqttPort)
	state := filepath.Join(dir, "hub")
	e.hub = start(t, "hub", e.pifleet, "hub", "--mqtt-listen", fmt.Sprintf("127.0.0.1:%d", e.mqttPort),
		"--http-listen", fmt.Sprintf("127.0.0.1:%d", e.httpPort), "--state-dir", state, "--policy", pol)
	testenv.WaitTCP(t, fmt.Sprintf("127.0.0.1:%d", e.httpPort), 15*time.Second, e.hub.out)
	pub := filepath.Join(state, "hub.key.pub")
	if _, err := os.Stat(pub); err != nil {
		t.Fatalf("the hub did not create its signing key: %v\n%s", err, e.hub.out.String())
	}
	os.MkdirAll(filepath.Join(dir, "agent"), 0o750)
	e.startAgent("pi-cmd", "--hub-key", pub, "--policy", pol, "--data-dir", filepath.Join(dir, "agent"),
		"--docker-network", "none")
	e.startAgent("pi-nocmd")
	for _, id := range []string{"pi-cmd", "pi-nocmd"} {
		e.waitDevice(id, 30*time.Second, "online", func(d api.Device) bool { return d.Online })
	}

	var out string
	var code int
	testenv.Eventually(t, 60*time.Second, func() string {
		out, code = e.run("ask", "aws", "pi-cmd", "--version")
		if code == 0 && strings.Contains(out, "aws-cli/2") && strings.Contains(out, "exit 0") {
			return ""
		}
		return fmt.Sprintf("pifleet ask aws pi-cmd --version (exit %d):\n%s", code, out)
	})

	out, _ = e.run("ask", "aws", "pi-nocmd", "--version")
	if !strings.Contains(out, "does not run aws") {
		t.Errorf("an agent without --hub-key: got\n%s\nwant a refusal saying it does not run aws", out)
	}
	out, code = e.run("ask", "aws", "pi-cmd", "iam", "list-users")
	if code == 0 || !strings.Contains(out, "Refused") {
		t.Errorf("a denied verb (exit %d):\n%s\nwant a refusal", code, out)
	}
}
