package fleet

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/pifleet/pifleet/internal/wire"
)

// The healing rules of PROTOCOL.md ("How a hub keeps the view true"), one
// test per thing a broker or a stranger can do to the view.

func hbStatus(id string, epoch, seq uint64, hb int) []byte {
	b := statusMsg(id, epoch, seq, []string{"192.0.2.7"})
	st, _ := wire.DecodeStatus(b)
	st.HeartbeatS = hb
	return mustJSON(st)
}

func newClocked() (*Fleet, *clock) {
	c := &clock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	return New(c.now), c
}

func state(t *testing.T, f *Fleet, id string) (wire.Lifecycle, uint64) {
	t.Helper()
	d, ok := f.Get(id)
	if !ok {
		t.Fatalf("%s not in the view", id)
	}
	return d.State, d.Epoch
}

// A deleted (empty) retained state forgets the Pi; its next heartbeat —
// a live status of its session — brings it back online, not "unknown".
func TestHealDeletedState(t *testing.T) {
	f, _ := newClocked()
	f.Apply(wire.StateTopic("pi1"), stateMsg(wire.StateOnline, 100))
	f.Apply(wire.StateTopic("pi1"), nil)
	f.Apply(wire.StatusTopic("pi1"), hbStatus("pi1", 100, 3, 30))
	if s, e := state(t, f, "pi1"); s != wire.StateOnline || e != 100 {
		t.Fatalf("after a heartbeat: %s/%d, want online/100", s, e)
	}
	if f.Stats().Inferred != 1 {
		t.Errorf("Inferred = %d, want 1", f.Stats().Inferred)
	}
}

// A dropped birth: the hub saw the old session's will, then only the new
// session's status. The newer epoch proves the new session is up.
func TestHealDroppedBirth(t *testing.T) {
	f, _ := newClocked()
	f.Apply(wire.StateTopic("pi1"), stateMsg(wire.StateOnline, 100))
	f.Apply(wire.StateTopic("pi1"), stateMsg(wire.StateLost, 100))
	f.Apply(wire.StatusTopic("pi1"), hbStatus("pi1", 200, 1, 30))
	if s, e := state(t, f, "pi1"); s != wire.StateOnline || e != 200 {
		t.Fatalf("%s/%d, want online/200", s, e)
	}
	// The same session's status never revives it after its own will.
	f.Apply(wire.StateTopic("pi1"), stateMsg(wire.StateLost, 200))
	f.Apply(wire.StatusTopic("pi1"), hbStatus("pi1", 200, 2, 30))
	if s, _ := state(t, f, "pi1"); s != wire.StateLost {
		t.Fatalf("a status sent before the will revived the session: %s", s)
	}
}

// A retained status replayed on subscribe is a claim from the past: it
// never makes a Pi online.
func TestRetainedStatusIsNoProof(t *testing.T) {
	f, _ := newClocked()
	f.ApplyMessage(wire.StateTopic("pi1"), stateMsg(wire.StateLost, 100), true)
	f.ApplyMessage(wire.StatusTopic("pi1"), hbStatus("pi1", 100, 5, 30), true)
	f.ApplyMessage(wire.StatusTopic("pi2"), hbStatus("pi2", 100, 5, 30), true)
	if s, _ := state(t, f, "pi1"); s != wire.StateLost {
		t.Errorf("pi1 %s, want lost", s)
	}
	if s, _ := state(t, f, "pi2"); s != "" {
		t.Errorf("pi2 %s, want unknown", s)
	}
}

// A dropped will: the session stays silent past SilenceAfter and Sweep
// takes it as lost; its next status (a stall, not a death) revives it.
func TestHealDroppedWill(t *testing.T) {
	f, c := newClocked()
	var alerts []Alert
	f.Subscribe(func(a Alert) { alerts = append(alerts, a) })
	f.Apply(wire.StateTopic("pi1"), stateMsg(wire.StateOnline, 100))
	f.Apply(wire.StatusTopic("pi1"), hbStatus("pi1", 100, 1, 10))
	c.t = c.t.Add(wire.SilenceAfter(10) - time.Second)
	if n := f.Sweep(); n != 0 {
		t.Fatalf("Sweep took %d sessions before their silence limit", n)
	}
	c.t = c.t.Add(2 * time.Second)
	if n := f.Sweep(); n != 1 {
		t.Fatalf("Sweep = %d, want 1", n)
	}
	d, _ := f.Get("pi1")
	if d.State != wire.StateLost || !d.Silent {
		t.Fatalf("%s silent=%v, want lost for silence", d.State, d.Silent)
	}
	if len(alerts) != 1 || alerts[0].Kind != "offline" || alerts[0].Detail != "silent" {
		t.Errorf("alerts %+v, want one offline/silent", alerts)
	}
	f.Apply(wire.StatusTopic("pi1"), hbStatus("pi1", 100, 2, 10))
	if d, _ := f.Get("pi1"); d.State != wire.StateOnline || d.Silent {
		t.Errorf("after its next status: %s silent=%v, want online", d.State, d.Silent)
	}
}

// A stranger's status with an inflated epoch takes over the view only
// until that fake session is silent; then the real Pi's live heartbeats
// (an older epoch) are believed again.
func TestHealInflatedEpoch(t *testing.T) {
	f, c := newClocked()
	f.Apply(wire.StateTopic("pi1"), stateMsg(wire.StateOnline, 100))
	f.Apply(wire.StatusTopic("pi1"), hbStatus("pi1", 100, 1, 10))
	f.Apply(wire.StatusTopic("pi1"), hbStatus("pi1", 1<<60, 1, 10)) // forged, live
	if _, e := state(t, f, "pi1"); e != 1<<60 {
		t.Fatalf("epoch %d", e)
	}
	c.t = c.t.Add(10 * time.Second)
	if err := f.Apply(wire.StatusTopic("pi1"), hbStatus("pi1", 100, 2, 10)); err == nil {
		t.Fatal("the real heartbeat was taken while the forged session was not yet silent")
	}
	c.t = c.t.Add(wire.SilenceAfter(10))
	if err := f.Apply(wire.StatusTopic("pi1"), hbStatus("pi1", 100, 3, 10)); err != nil {
		t.Fatalf("real heartbeat after the forged session went silent: %v", err)
	}
	if s, e := state(t, f, "pi1"); s != wire.StateOnline || e != 100 {
		t.Errorf("%s/%d, want online/100", s, e)
	}
}

// A hub restart: retained states claim Pis online; those that speak live
// within the silence limit are "back", the rest "away" and then lost.
func TestResyncAndRejoin(t *testing.T) {
	f, c := newClocked()
	f.Resync(c.t)
	for _, id := range []string{"a", "b", "c"} {
		f.ApplyMessage(wire.StateTopic(id), stateMsg(wire.StateOnline, 100), true)
		f.ApplyMessage(wire.StatusTopic(id), hbStatus(id, 100, 9, 10), true)
	}
	f.ApplyMessage(wire.StateTopic("gone"), stateMsg(wire.StateOffline, 50), true)
	if back, away := f.Rejoin(); back != 0 || away != 3 {
		t.Fatalf("Rejoin = %d back, %d away; want 0, 3", back, away)
	}
	c.t = c.t.Add(3 * time.Second)
	f.Apply(wire.StateTopic("a"), stateMsg(wire.StateOnline, 200)) // reconnected
	f.Apply(wire.StatusTopic("b"), hbStatus("b", 100, 10, 10))     // its session survived (external broker)
	if back, away := f.Rejoin(); back != 2 || away != 1 {
		t.Fatalf("Rejoin = %d back, %d away; want 2, 1", back, away)
	}
	c.t = c.t.Add(wire.SilenceAfter(10))
	f.Apply(wire.StatusTopic("a"), hbStatus("a", 200, 1, 10))
	f.Apply(wire.StatusTopic("b"), hbStatus("b", 100, 11, 10))
	if n := f.Sweep(); n != 1 {
		t.Fatalf("Sweep = %d, want 1 (c)", n)
	}
	if s, _ := state(t, f, "c"); s != wire.StateLost {
		t.Errorf("c %s, want lost", s)
	}
	if s, _ := state(t, f, "gone"); s != wire.StateOffline {
		t.Errorf("gone %s, want offline", s)
	}
	if back, away := f.Rejoin(); back != 2 || away != 1 {
		t.Errorf("Rejoin after the sweep = %d back, %d away; want 2, 1", back, away)
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// The summary counts online devices that only a retained replay vouches
// for, until they speak live.
func TestSummaryUnconfirmed(t *testing.T) {
	f, c := newClocked()
	f.Resync(c.t)
	f.ApplyMessage(wire.StateTopic("a"), stateMsg(wire.StateOnline, 100), true)
	f.ApplyMessage(wire.StateTopic("b"), stateMsg(wire.StateOnline, 100), true)
	if s := f.Summary(); s.Online != 2 || s.Unconfirmed != 2 {
		t.Fatalf("online %d unconfirmed %d, want 2, 2", s.Online, s.Unconfirmed)
	}
	f.Apply(wire.StatusTopic("a"), hbStatus("a", 100, 1, 30))
	if s := f.Summary(); s.Online != 2 || s.Unconfirmed != 1 {
		t.Errorf("online %d unconfirmed %d, want 2, 1", s.Online, s.Unconfirmed)
	}
}
