package api

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/fleet"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/wire"
)

func (e *deviceEncoder) cached(id string) (cachedStatus, int, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cache[id], len(e.cache), e.warming
}

// The encoder's cache holds one entry per device with a status. While
// lists are asked for, the background pass encodes new reports without
// waiting for the next list and lets go of devices the fleet forgot; it
// stops when nobody asks any more.
func TestDeviceEncoderWarm(t *testing.T) {
	f := fleet.New(nil)
	status := func(id string, seq uint64, host string) {
		t.Helper()
		b, _ := json.Marshal(wire.Status{V: 1, ID: id, Epoch: 1, Seq: seq, Hostname: host})
		if err := f.Apply(wire.StatusTopic(id), b); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"pi1", "pi2", "pi3"} {
		b, _ := json.Marshal(wire.State{V: 1, State: wire.StateOnline, Epoch: 1})
		f.Apply(wire.StateTopic(id), b)
		status(id, 1, id+"-host")
	}
	s := &Server{Fleet: f, WarmEvery: 10 * time.Millisecond}
	s.enc.warmFor = 300 * time.Millisecond
	h := s.Handler()
	get := func(path string) {
		t.Helper()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "http://127.0.0.1"+path, nil))
		if w.Code != 200 {
			t.Fatalf("%s: %d %s", path, w.Code, w.Body)
		}
	}
	get("/api/devices?limit=1") // one page: the pass does the rest
	testenv.Eventually(t, 10*time.Second, func() string {
		if _, n, _ := s.enc.cached("pi1"); n != 3 {
			return fmt.Sprintf("%d devices cached, want all three", n)
		}
		return ""
	})

	status("pi1", 2, "renamed")
	now, _ := f.Get("pi1")
	testenv.Eventually(t, 10*time.Second, func() string {
		c, _, _ := s.enc.cached("pi1")
		if c.st != now.Status || string(c.json[:len(`"hostname":"renamed"`)]) != `"hostname":"renamed"` {
			return fmt.Sprintf("pi1 cached as %.40s…, want its new report encoded with no list asked for", c.json)
		}
		return ""
	})
	f.Apply(wire.StateTopic("pi2"), nil) // forgotten: its retained state deleted
	testenv.Eventually(t, 10*time.Second, func() string {
		if _, n, _ := s.enc.cached("pi2"); n != 2 {
			return fmt.Sprintf("%d devices cached, want 2 with pi2 dropped", n)
		}
		return ""
	})

	testenv.Eventually(t, 10*time.Second, func() string {
		if _, _, w := s.enc.cached("pi1"); w {
			return "the pass still runs, want it stopped when no list was asked for warmFor"
		}
		return ""
	})
	get("/api/devices")
	if _, _, w := s.enc.cached("pi1"); !w {
		t.Error("a new list did not restart the pass")
	}

	off := &Server{Fleet: f, WarmEvery: -1}
	w := httptest.NewRecorder()
	off.Handler().ServeHTTP(w, httptest.NewRequest("GET", "http://127.0.0.1/api/devices", nil))
	if _, n, warming := off.enc.cached("pi1"); warming || n != 2 {
		t.Errorf("WarmEvery -1: warming %v, %d cached (want no pass, the list's 2 encoded)", warming, n)
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
