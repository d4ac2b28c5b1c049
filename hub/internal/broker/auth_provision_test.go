package broker_test

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pifleet/pifleet/hub/internal/broker"
	"github.com/pifleet/pifleet/hub/internal/natsengine"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/transport"
	"github.com/pifleet/pifleet/internal/wire"
)

// TestProvisionedDeviceConnects follows the README: scripts/provision makes
// the secrets, the hub's embedded engine (nats-server) starts from them
// with the security flags, and the Pi connects over TLS with the files unpacked
// from its bundle — and a second Pi's bundle cannot be used for the first.
func TestProvisionedDeviceConnects(t *testing.T) {
	root := testenv.ModuleRoot(t)
	secrets := filepath.Join(t.TempDir(), "secrets")
	for _, id := range []string{"pi-1", "pi-2"} {
		cmd := exec.Command(filepath.Join(root, "scripts", "provision"), "--secrets", secrets, "--broker", "mqtts://127.0.0.1:8883", id)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("scripts/provision %s: %v\n%s", id, err, out)
		}
	}
	sec := broker.SecurityFlags{
		TLSCert: filepath.Join(secrets, "broker.pem"), TLSKey: filepath.Join(secrets, "broker.key"),
		ClientCA: filepath.Join(secrets, "ca.pem"), Credentials: filepath.Join(secrets, "credentials.json"),
	}
	eo, err := sec.Build()
	if err != nil {
		t.Fatal(err)
	}
	eo.MQTTListen, eo.NATSListen = "127.0.0.1:0", "127.0.0.1:0"
	e, err := natsengine.Start(t.Context(), eo)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	url := e.MQTTURL()

	pi := unpack(t, filepath.Join(secrets, "devices", "pi-1.tar"))
	env := pi["etc/default/pifleet-agent"]
	o := transport.Options{
		CAFile:       filepath.Join(pi["dir"], "etc/pifleet/ca.pem"),
		Username:     envValue(t, env, "PIFLEET_AGENT_USERNAME"),
		PasswordFile: filepath.Join(pi["dir"], "etc/pifleet/device.password"),
	}
	hub := mustConnect(t, url, transport.Options{CAFile: filepath.Join(secrets, "ca.pem"), Username: "hub", PasswordFile: filepath.Join(secrets, "hub.password")}, "pifleet-hub")
	hub.sub(t, wire.FilterAllStates)
	dev := mustConnect(t, url, o, "pifleet-agent-pi-1")
	dev.pub(t, wire.StateTopic("pi-1"), 1, "online")
	if m := hub.next(t); m.Topic() != wire.StateTopic("pi-1") {
		t.Errorf("hub got %s, want pi-1's state", m.Topic())
	}

	other := unpack(t, filepath.Join(secrets, "devices", "pi-2.tar"))
	o.PasswordFile = filepath.Join(other["dir"], "etc/pifleet/device.password")
	if c, err := connect(url, o, "pifleet-agent-pi-1", ""); err == nil {
		c.Disconnect(0)
		t.Errorf("pi-1 logged in with pi-2's password")
	}
}

// unpack extracts a bundle into a temp dir; the map holds file contents by
// name and the dir under "dir".
func unpack(t *testing.T, path string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{"dir": dir}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, h.Name)
		if h.Typeflag == tar.TypeDir {
			os.MkdirAll(p, 0o755)
			continue
		}
		b, _ := io.ReadAll(tr)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		out[h.Name] = string(b)
	}
}

func envValue(t *testing.T, env, key string) string {
	t.Helper()
	for _, l := range strings.Split(env, "\n") {
		if v, ok := strings.CutPrefix(l, key+"="); ok {
			return v
		}
	}
	t.Fatalf("env file has no %s:\n%s", key, env)
	return ""
}
