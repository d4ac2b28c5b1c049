package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pifleet/pifleet/hub/internal/api"
)

// TestCLIDevicesPages: `pifleet devices` walks the hub's pages (here one
// device a page) and shows them as one table or one JSON array.
func TestCLIDevicesPages(t *testing.T) {
	old := devicesPage
	devicesPage = 1
	t.Cleanup(func() { devicesPage = old })
	hub := startTestHub(t, cliToken)
	env := map[string]string{"PIFLEET_HUB": hub.URL, "PIFLEET_HUB_TOKEN": cliToken}

	code, stdout, stderr := pifleet(t, env, "devices")
	r := rows(stdout)
	if code != 0 || stderr != "" || len(r) != 3 || r[1][0] != "pi1" || r[2][0] != "pi2" {
		t.Fatalf("devices in pages: exit %d, stderr %q:\n%s", code, stderr, stdout)
	}
	// The hub names a next page only when one follows, so the second
	// (full) page is the last request.
	want := []string{
		"GET /api/devices?limit=1 Bearer " + cliToken,
		"GET /api/devices?after=pi1&limit=1 Bearer " + cliToken,
	}
	if got := hub.requests(); !reflect.DeepEqual(got, want) {
		t.Errorf("hub saw %q, want %q", got, want)
	}

	code, stdout, _ = pifleet(t, env, "devices", "--json", "--filter", "problems")
	var devs []api.Device
	if err := json.Unmarshal([]byte(stdout), &devs); err != nil || code != 0 || len(devs) != 1 || devs[0].ID != "pi2" {
		t.Errorf("devices --json --filter problems: exit %d, %v:\n%s", code, err, stdout)
	}
	code, stdout, _ = pifleet(t, env, "devices", "--json", "--filter", "label:none")
	if code != 0 || strings.TrimSpace(stdout) != "[]" {
		t.Errorf("devices --json for nothing: exit %d: %q, want []", code, stdout)
	}
}

// A hub from before paging ignores limit and answers with everything and
// no cursor: one request, every device. A hub whose cursor does not move
// is one clear error, not an endless loop.
func TestCLIDevicesOldAndBrokenHubs(t *testing.T) {
	all := `[{"id":"pi1","online":true,"state":"online","epoch":1,"addresses":[],"interfaces":[],"health":null,"problems":[],"last_seen":null},` +
		`{"id":"pi2","online":false,"state":"lost","epoch":1,"addresses":[],"interfaces":[],"health":null,"problems":[],"last_seen":null}]`
	var asked atomic.Int32
	oldHub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(all))
	}))
	defer oldHub.Close()
	code, stdout, stderr := pifleet(t, map[string]string{"PIFLEET_HUB": oldHub.URL}, "devices")
	if r := rows(stdout); code != 0 || stderr != "" || len(r) != 3 || asked.Load() != 1 {
		t.Errorf("old hub: exit %d, %d requests, stderr %q:\n%s", code, asked.Load(), stderr, stdout)
	}

	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Next-After", "pi1")
		w.Write([]byte(all))
	}))
	defer stuck.Close()
	code, stdout, stderr = pifleet(t, map[string]string{"PIFLEET_HUB": stuck.URL}, "devices")
	wantOneErrorLine(t, "stuck cursor", code, stdout, stderr, `the hub's pages do not advance (next page after "pi1", then "pi1")`)
}
