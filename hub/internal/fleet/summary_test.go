package fleet

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/pifleet/pifleet/internal/wire"
)

// summaryFleet feeds, through Apply:
//
//	pi1 online, Pi 3, v0.1.0, labels lab+door, under_voltage+throttled
//	pi2 online, Pi 4, v0.2.0, label lab, healthy
//	pi3 lost (had a status: Pi 3, v0.1.0, hot), no labels
//	pi4 offline, status without model or version, label door listed twice
//	pi5 online, never sent a status
//
// and, as a Device value (the fleet's rules for a status without a state
// are not the summary's business), pi6 with a status but no state
// (unknown).
func summaryFleet(t *testing.T) []Device {
	t.Helper()
	f := New(nil)
	msg := func(topic string, v any) {
		t.Helper()
		b, _ := json.Marshal(v)
		if err := f.Apply(topic, b); err != nil {
			t.Fatalf("Apply %s: %v", topic, err)
		}
	}
	status := func(id, model, version string, labels []string, problems ...wire.Problem) {
		t.Helper()
		msg(wire.StatusTopic(id), wire.Status{V: 1, ID: id, Epoch: 1, Seq: 1, AgentVersion: version, Labels: labels,
			Health: wire.Health{Model: model, Problems: problems}})
	}
	state := func(id string, s wire.Lifecycle) {
		t.Helper()
		msg(wire.StateTopic(id), wire.State{V: 1, State: s, Epoch: 1})
	}
	for _, id := range []string{"pi1", "pi2", "pi3", "pi4", "pi5"} {
		state(id, wire.StateOnline)
	}
	status("pi1", "Raspberry Pi 3 Model B Rev 1.2", "v0.1.0", []string{"lab", "door"}, wire.ProblemUnderVoltage, wire.ProblemThrottled)
	status("pi2", "Raspberry Pi 4 Model B Rev 1.4", "v0.2.0", []string{"lab"})
	status("pi3", "Raspberry Pi 3 Model B Rev 1.2", "v0.1.0", nil, wire.ProblemHot)
	status("pi4", "", " ", []string{"door", "door"})
	state("pi3", wire.StateLost)
	state("pi4", wire.StateOffline)
	pi6 := Device{ID: "pi6", Status: &wire.Status{V: 1, ID: "pi6", AgentVersion: "v0.2.0", Health: wire.Health{Model: "Raspberry Pi 4 Model B Rev 1.4"}}}
	return append(f.List(), pi6)
}

func TestSummary(t *testing.T) {
	got := Summarize(summaryFleet(t))
	want := Summary{
		Total: 6, Online: 3, WithProblems: 2,
		States:        Counts{"online": 3, "offline": 1, "lost": 1, "unknown": 1},
		Problems:      Counts{"under_voltage": 1, "throttled": 1, "hot": 1},
		Models:        Counts{"Raspberry Pi 3 Model B Rev 1.2": 2, "Raspberry Pi 4 Model B Rev 1.4": 2, "unknown": 2},
		AgentVersions: Counts{"v0.1.0": 2, "v0.2.0": 2, "unknown": 2},
		Labels:        Counts{"lab": 2, "door": 2},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Summary:\ngot  %+v\nwant %+v", got, want)
	}

	// The JSON shape GET /api/summary answers with.
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	const wantJSON = `{"total":6,"online":3,"with_problems":2,"unconfirmed":0,` +
		`"states":{"lost":1,"offline":1,"online":3,"unknown":1},` +
		`"problems":{"hot":1,"throttled":1,"under_voltage":1},` +
		`"models":{"Raspberry Pi 3 Model B Rev 1.2":2,"Raspberry Pi 4 Model B Rev 1.4":2,"unknown":2},` +
		`"agent_versions":{"unknown":2,"v0.1.0":2,"v0.2.0":2},` +
		`"labels":{"door":2,"lab":2}}`
	if string(b) != wantJSON {
		t.Errorf("JSON:\ngot  %s\nwant %s", b, wantJSON)
	}
}

// The counts of a filtered list agree with the filter, and an empty
// fleet has all four states at zero and empty (not null) maps.
func TestSummarizeFilteredAndEmpty(t *testing.T) {
	var online []Device
	for _, d := range summaryFleet(t) {
		if d.Online() {
			online = append(online, d)
		}
	}
	s := Summarize(online)
	if s.Total != 3 || s.Online != 3 || s.States["lost"] != 0 || s.WithProblems != 1 || s.Labels["lab"] != 2 || s.Labels["door"] != 1 {
		t.Errorf("online summary %+v", s)
	}
	b, _ := json.Marshal(Summarize(nil))
	const want = `{"total":0,"online":0,"with_problems":0,"unconfirmed":0,"states":{"lost":0,"offline":0,"online":0,"unknown":0},"problems":{},"models":{},"agent_versions":{},"labels":{}}`
	if string(b) != want {
		t.Errorf("empty: got %s, want %s", b, want)
	}
}

// Summary agrees with the device list it counts, on a larger fleet with
// every shape mixed in.
func TestSummaryAddsUp(t *testing.T) {
	f := New(nil)
	for i := range 500 {
		id := fmt.Sprintf("pi-%03d", i)
		online, _ := json.Marshal(wire.State{V: 1, State: wire.StateOnline, Epoch: 1})
		if err := f.Apply(wire.StateTopic(id), online); err != nil {
			t.Fatal(err)
		}
		st := wire.Status{V: 1, ID: id, Epoch: 1, Seq: 1, AgentVersion: fmt.Sprintf("v0.%d.0", i%3), Labels: []string{fmt.Sprintf("site-%d", i%5)}}
		if i%2 == 0 {
			st.Health.Problems = []wire.Problem{wire.ProblemHot}
		}
		if i%7 != 0 {
			b, _ := json.Marshal(st)
			if err := f.Apply(wire.StatusTopic(id), b); err != nil {
				t.Fatal(err)
			}
		}
		if s := []wire.Lifecycle{"", "", wire.StateLost, wire.StateOffline}[i%4]; s != "" {
			b, _ := json.Marshal(wire.State{V: 1, State: s, Epoch: 1})
			if err := f.Apply(wire.StateTopic(id), b); err != nil {
				t.Fatal(err)
			}
		}
	}
	s := f.Summary()
	sum := func(c Counts) (n int) {
		for _, v := range c {
			n += v
		}
		return n
	}
	if s.Total != 500 || sum(s.States) != 500 || sum(s.Models) != 500 || sum(s.AgentVersions) != 500 || sum(s.Labels) != 500-72 {
		t.Errorf("counts do not add up to 500: %+v", s)
	}
	// i%7 == 0 never sent a status: 72 of 0..499; of the even ones, 36.
	if s.States["online"] != 250 || s.States["lost"] != 125 || s.States["offline"] != 125 || s.States["unknown"] != 0 ||
		s.Problems["hot"] != 250-36 || s.WithProblems != 250-36 || s.Models["unknown"] != 500 || s.AgentVersions["unknown"] != 72 {
		t.Errorf("summary %+v", s)
	}
	online := 0
	for _, d := range f.List() {
		if d.Online() {
			online++
		}
	}
	if s.Online != online || s.States["online"] != online {
		t.Errorf("Online %d, States[online] %d, want %d", s.Online, s.States["online"], online)
	}
}

func TestCountsSorted(t *testing.T) {
	got := Counts{"b": 2, "a": 2, "c": 5, "zero": 0}.Sorted()
	want := []Count{{"c", 5}, {"a", 2}, {"b", 2}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Sorted = %v, want %v", got, want)
	}
	// Ties in natural order: room-4 before room-10 (the gallery showed
	// room-10 first).
	got = Counts{"room-10": 3, "room-4": 3, "room-11": 3, "room-0": 3}.Sorted()
	want = []Count{{"room-0", 3}, {"room-4", 3}, {"room-10", 3}, {"room-11", 3}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Sorted = %v, want %v", got, want)
	}
	if got := (Counts{}).Sorted(); len(got) != 0 {
		t.Errorf("empty Sorted = %v", got)
	}
}
