package cli

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSimFlagParsing(t *testing.T) {
	addrs, err := parseAddrs("127.0.0.2-127.0.0.5, 127.0.0.9")
	if err != nil || len(addrs) != 5 || addrs[0].String() != "127.0.0.2" || addrs[3].String() != "127.0.0.5" || addrs[4].String() != "127.0.0.9" {
		t.Errorf("parseAddrs = %v, %v", addrs, err)
	}
	for _, bad := range []string{"127.0.0.5-127.0.0.2", "localhost", "127.0.0.1-::1", "10.0.0.0-10.0.255.255"} {
		if _, err := parseAddrs(bad); err == nil || !strings.Contains(err.Error(), "--source-addrs") {
			t.Errorf("parseAddrs(%q) = %v, want a --source-addrs error", bad, err)
		}
	}
	if i, n, err := parseShard("1/4"); err != nil || i != 1 || n != 4 {
		t.Errorf("parseShard(1/4) = %d, %d, %v", i, n, err)
	}
	for _, bad := range []string{"4/4", "-1/2", "1", "a/b", "0/0"} {
		if _, _, err := parseShard(bad); err == nil {
			t.Errorf("parseShard(%q) accepted", bad)
		}
	}
}

// TestSimLoginsFromProvisionBundles: --secrets reads the password each
// simulated device's bundle holds (the layout scripts/provision writes:
// devices/<id>.tar with device.password), and names the missing one.
func TestSimLoginsFromProvisionBundles(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "devices"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"sim-00000", "sim-00001"} {
		writeTar(t, filepath.Join(dir, "devices", id+".tar"), map[string]string{
			"etc/pifleet/ca.pem": "x", "etc/pifleet/device.password": "pw-" + id + "\n"})
	}
	logins, err := readLogins(dir, "sim-", 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	if logins["sim-00001"].password != "pw-sim-00001" || len(logins) != 2 {
		t.Errorf("logins = %+v", logins)
	}
	if _, err := readLogins(dir, "sim-", 0, 3); err == nil || !strings.Contains(err.Error(), "sim-00002") {
		t.Errorf("a missing bundle: %v, want an error naming sim-00002", err)
	}
}

func writeTar(t *testing.T, path string, files map[string]string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}
