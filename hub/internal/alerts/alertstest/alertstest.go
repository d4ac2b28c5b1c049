// Package alertstest has what the alert policy's tests and the Slack
// adapter's share: a fake of the fleet as the policy sees it after a
// restart (alerts.Rejoiner; the real one is *fleet.Fleet), a Feed that
// gives the real fleet what the broker would deliver, and ids.
package alertstest

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/fleet"
	"github.com/pifleet/pifleet/internal/wire"
)

// Feed feeds the real fleet F what the broker delivers.
type Feed struct {
	T *testing.T
	F *fleet.Fleet
}

// Apply hands F the JSON of v on topic as a retained replay or a live
// message.
func (w Feed) Apply(topic string, v any, retained bool) {
	w.T.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		w.T.Fatal(err)
	}
	if err := w.F.ApplyMessage(topic, b, retained); err != nil {
		w.T.Fatalf("ApplyMessage %s: %v", topic, err)
	}
}

// State delivers a state message of id.
func (w Feed) State(id string, s wire.Lifecycle, epoch uint64, retained bool) {
	w.T.Helper()
	w.Apply(wire.StateTopic(id), wire.State{V: wire.ProtocolVersion, State: s, Epoch: epoch}, retained)
}

// Status delivers a status record of id.
func (w Feed) Status(id string, epoch, seq uint64, heartbeatS int, retained bool) {
	w.T.Helper()
	w.Apply(wire.StatusTopic(id), wire.Status{V: wire.ProtocolVersion, ID: id, Epoch: epoch, Seq: seq, HeartbeatS: heartbeatS, AgentVersion: "v0.1.0"}, retained)
}

// IDs returns n ids prefix0000, prefix0001, … starting at from.
func IDs(prefix string, from, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%04d", prefix, from+i)
	}
	return out
}

// Rejoiner answers with the counts and devices it holds; a test may change
// them between sweeps (from the sweeping goroutine).
type Rejoiner struct {
	Back, Away int
	Devices    []fleet.Device
}

// Rejoin implements alerts.Rejoiner.
func (r *Rejoiner) Rejoin() (back, away int) { return r.Back, r.Away }

// List implements alerts.Rejoiner.
func (r *Rejoiner) List() []fleet.Device { return r.Devices }

// Ev is one scripted fleet event, At after a test's start time.
type Ev struct {
	Kind, Device, Detail string
	At                   time.Duration
}

// Evs is one event of kind per device, the first at start, then one every
// step.
func Evs(kind, detail string, devices []string, start, step time.Duration) []Ev {
	out := make([]Ev, len(devices))
	for i, d := range devices {
		out[i] = Ev{kind, d, detail, start + time.Duration(i)*step}
	}
	return out
}
