package api

import (
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pifleet/pifleet/agent/wire"
	"github.com/pifleet/pifleet/hub/internal/fleet"
)

// The encoder's cache holds one entry per device with a status, follows
// new reports, and lets go of devices the fleet forgot (at most a minute
// later, at the next list).
func TestDeviceEncoderCache(t *testing.T) {
	f := fleet.New(nil)
	for _, id := range []string{"pi1", "pi2", "pi3"} {
		b, _ := json.Marshal(wire.State{V: 1, State: wire.StateOnline, Epoch: 1})
		f.Apply(wire.StateTopic(id), b)
		b, _ = json.Marshal(wire.Status{V: 1, ID: id, Epoch: 1, Seq: 1, Hostname: id + "-host"})
		if err := f.Apply(wire.StatusTopic(id), b); err != nil {
			t.Fatal(err)
		}
	}
	s := &Server{Fleet: f}
	h := s.Handler()
	get := func(path string) {
		t.Helper()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != 200 {
			t.Fatalf("%s: %d %s", path, w.Code, w.Body)
		}
	}
	cached := func() int {
		s.enc.mu.Lock()
		defer s.enc.mu.Unlock()
		return len(s.enc.cache)
	}
	get("/api/devices")
	if n := cached(); n != 3 {
		t.Fatalf("%d cached, want 3", n)
	}
	pi1, _ := f.Get("pi1")
	b, _ := json.Marshal(wire.Status{V: 1, ID: "pi1", Epoch: 1, Seq: 2, Hostname: "renamed"})
	if err := f.Apply(wire.StatusTopic("pi1"), b); err != nil {
		t.Fatal(err)
	}
	get("/api/devices?limit=1")
	s.enc.mu.Lock()
	c := s.enc.cache["pi1"]
	s.enc.mu.Unlock()
	if now, _ := f.Get("pi1"); c.st == pi1.Status || c.st != now.Status || string(c.json[:len(`"hostname":"renamed"`)]) != `"hostname":"renamed"` {
		t.Errorf("pi1's cache entry did not follow its new report: %s", c.json)
	}

	// pi2 is forgotten (its retained state deleted): dropped at the first
	// list a minute after the last pruning, whatever the list asked for.
	f.Apply(wire.StateTopic("pi2"), nil)
	get("/api/devices?filter=online&limit=1")
	if n := cached(); n != 3 {
		t.Errorf("%d cached right after the last pruning, want 3 (pruning is at most once a minute)", n)
	}
	s.enc.mu.Lock()
	s.enc.pruned = time.Now().Add(-pruneEvery)
	s.enc.mu.Unlock()
	get("/api/devices?filter=online&limit=1")
	s.enc.mu.Lock()
	_, has2 := s.enc.cache["pi2"]
	n := len(s.enc.cache)
	s.enc.mu.Unlock()
	if has2 || n != 2 {
		t.Errorf("after pruning: %d cached, pi2 still there: %v", n, has2)
	}
}

// The status part is cut out of encoding/json's own output, so a field
// added to Device anywhere still comes out right; and a device without a
// status has the fixed part.
func TestStatusPart(t *testing.T) {
	if got := string(statusPart(nil)); got != `"addresses":[],"interfaces":[],"health":null,"problems":[]` {
		t.Errorf("no status: %s", got)
	}
	st := &wire.Status{Hostname: "h", Labels: []string{"a<b"}}
	want, _ := json.Marshal(FromFleet(&fleet.Device{Status: st}))
	got := string(zeroHead) + string(statusPart(st)) + string(zeroTail)
	if got != string(want) {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
