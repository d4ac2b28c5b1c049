package wire

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestDecodeStatusCleansDeviceWords: a status's strings, however deep,
// lose terminal escapes, newlines, bidirectional overrides and the hub's
// private-use mark characters; ordinary text and non-ASCII names stay.
func TestDecodeStatusCleansDeviceWords(t *testing.T) {
	bad := "a\x1b[31mred\nline\u202egnp.exe\ue000bX\ue001\U000f0001"
	b, err := json.Marshal(map[string]any{
		"v": 1, "id": "pi-1", "hostname": bad, "agent_version": "1.0", "boot_time": "2026-01-01T00:00:00Z",
		"ts": "2026-01-01T00:00:00Z", "labels": []string{bad, "küche"},
		"interfaces": []map[string]any{{"name": "wlan0", "up": true, "ssid": bad}},
		"addresses":  []map[string]any{{"address": "192.0.2.1", "prefix": 24, "family": "ipv4", "interface": bad}},
		"health":     map[string]any{"model": bad, "probes": map[string]string{bad: "ok"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := DecodeStatus(b)
	if err != nil {
		t.Fatal(err)
	}
	want := "a\ufffd[31mred\ufffdline\ufffdgnp.exe\ufffdbX\ufffd\ufffd"
	got := []string{st.Hostname, st.Labels[0], st.Interfaces[0].SSID, st.Addresses[0].Interface, st.Health.Model}
	for k := range st.Health.Probes {
		got = append(got, k)
	}
	for i, g := range got {
		if g != want {
			t.Errorf("string %d = %q, want %q", i, g, want)
		}
	}
	if st.Labels[1] != "küche" || st.Interfaces[0].Name != "wlan0" || st.AgentVersion != "1.0" {
		t.Errorf("clean strings changed: %q %q %q", st.Labels[1], st.Interfaces[0].Name, st.AgentVersion)
	}
	if Clean("pi-kitchen 192.0.2.7") != "pi-kitchen 192.0.2.7" || strings.ContainsRune(Clean("\u2066x"), '\u2066') {
		t.Error("Clean")
	}
}

func BenchmarkDecodeStatus(b *testing.B) {
	raw, err := json.Marshal(map[string]any{
		"v": 1, "id": "pi-1", "hostname": "pi-1", "agent_version": "1.0", "boot_time": "2026-01-01T00:00:00Z",
		"ts": "2026-01-01T00:00:00Z", "labels": []string{"lab"},
		"interfaces": []map[string]any{{"name": "eth0", "up": true}, {"name": "wlan0", "up": true, "ssid": "home"}},
		"addresses":  []map[string]any{{"address": "192.0.2.1", "prefix": 24, "family": "ipv4", "interface": "eth0"}},
		"health":     map[string]any{"model": "Raspberry Pi 3 Model B Rev 1.2", "probes": map[string]string{"thermal": "ok", "disk": "ok"}},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeStatus(raw); err != nil {
			b.Fatal(err)
		}
	}
}
