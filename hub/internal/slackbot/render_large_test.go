package slackbot

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/chat"
	"github.com/pifleet/pifleet/hub/internal/fleet"
	"github.com/pifleet/pifleet/internal/wire"
)

// TestRenderEngineLargeFleetGolden: `fleet` over 10,000 Pis, as Slack
// gets it from the real engine: one message with the summary and the first
// devices needing attention, well within Slack's limits (not the overflow
// preview), and the whole list as fleet.txt in the thread.
func TestRenderEngineLargeFleetGolden(t *testing.T) {
	now := time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	f := fleet.New(clock)
	apply := func(topic string, v any) {
		t.Helper()
		b, _ := json.Marshal(v)
		if err := f.Apply(topic, b); err != nil {
			t.Fatalf("Apply %s: %v", topic, err)
		}
	}
	models := []string{"Raspberry Pi 3 Model B Rev 1.2", "Raspberry Pi 4 Model B Rev 1.4"}
	for i := range 10000 {
		id := fmt.Sprintf("pi-%05d", i)
		apply(wire.StateTopic(id), wire.State{V: 1, State: wire.StateOnline, Epoch: 1})
		temp := 45.0
		st := wire.Status{V: 1, ID: id, Epoch: 1, Seq: 1, AgentVersion: "v0.1.0", Labels: []string{fmt.Sprintf("room-%d", i%12)},
			Addresses: []wire.Address{{Address: fmt.Sprintf("10.1.%d.%d", i>>8, i&255), Prefix: 16, Family: wire.IPv4, Interface: "eth0", Primary: true}},
			Health:    wire.Health{TempC: &temp, Model: models[i%2]}}
		if i%20 == 0 {
			st.Health.Problems = []wire.Problem{wire.ProblemUnderVoltage}
		}
		apply(wire.StatusTopic(id), st)
		if i%33 == 32 {
			apply(wire.StateTopic(id), wire.State{V: 1, State: wire.StateLost, Epoch: 1})
		}
	}
	r := chat.New(f, clock).Ask(context.Background(), chat.Request{Text: "fleet", Source: "slack"})
	m := render(r, "fleet")
	checkLimits(t, m)
	checkGolden(t, "engine-fleet-10000", m)
	// Headroom under Slack's 50 for a heading or a late context line.
	if len(m.Blocks) > 45 {
		t.Errorf("%d blocks", len(m.Blocks))
	}
	if len(m.Files) != 1 || m.Files[0].Name != "fleet.txt" {
		t.Fatalf("files %v, want only the engine's fleet.txt (no overflow file)", len(m.Files))
	}
	if n := strings.Count(m.Files[0].Content, " · seen "); n < 10000 {
		t.Errorf("fleet.txt lists %d device lines, want every one of the 10000 (and those needing attention first)", n)
	}
	if len(m.Text) > maxFallbackText {
		t.Errorf("fallback text %d bytes", len(m.Text))
	}
}
