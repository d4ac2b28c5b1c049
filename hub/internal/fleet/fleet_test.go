package fleet

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pifleet/pifleet/internal/wire"
)

func stateMsg(s wire.Lifecycle, epoch uint64) []byte {
	b, _ := json.Marshal(wire.State{V: 1, State: s, Epoch: epoch})
	return b
}

func statusMsg(id string, epoch, seq uint64, addrs []string, problems ...wire.Problem) []byte {
	st := wire.Status{V: 1, ID: id, Epoch: epoch, Seq: seq}
	for _, a := range addrs {
		st.Addresses = append(st.Addresses, wire.Address{Address: a, Prefix: 24, Family: wire.IPv4, Interface: "eth0"})
	}
	st.Health.Problems = problems
	b, _ := json.Marshal(st)
	return b
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestLifecycle(t *testing.T) {
	for _, tc := range []struct {
		name      string
		msgs      []wire.State
		wantState wire.Lifecycle
		wantEpoch uint64
	}{
		{"birth", []wire.State{{State: wire.StateOnline, Epoch: 10}}, wire.StateOnline, 10},
		{"death after birth", []wire.State{{State: wire.StateOnline, Epoch: 10}, {State: wire.StateLost, Epoch: 10}}, wire.StateLost, 10},
		{"clean shutdown", []wire.State{{State: wire.StateOnline, Epoch: 10}, {State: wire.StateOffline, Epoch: 10}}, wire.StateOffline, 10},
		{"late death of old session ignored", []wire.State{{State: wire.StateOnline, Epoch: 10}, {State: wire.StateOnline, Epoch: 20}, {State: wire.StateLost, Epoch: 10}}, wire.StateOnline, 20},
		{"rebirth after death", []wire.State{{State: wire.StateOnline, Epoch: 10}, {State: wire.StateLost, Epoch: 10}, {State: wire.StateOnline, Epoch: 11}}, wire.StateOnline, 11},
		{"old birth replayed ignored", []wire.State{{State: wire.StateOnline, Epoch: 20}, {State: wire.StateLost, Epoch: 20}, {State: wire.StateOnline, Epoch: 10}}, wire.StateLost, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := New(nil)
			for _, m := range tc.msgs {
				_ = f.Apply(wire.StateTopic("pi1"), stateMsg(m.State, m.Epoch))
			}
			d, ok := f.Get("pi1")
			if !ok {
				t.Fatal("device missing")
			}
			if d.State != tc.wantState || d.Epoch != tc.wantEpoch {
				t.Errorf("got %s/%d, want %s/%d", d.State, d.Epoch, tc.wantState, tc.wantEpoch)
			}
		})
	}
}

func TestStaleCounted(t *testing.T) {
	f := New(nil)
	f.Apply(wire.StateTopic("pi1"), stateMsg(wire.StateOnline, 20))
	if err := f.Apply(wire.StateTopic("pi1"), stateMsg(wire.StateLost, 10)); !errors.Is(err, ErrStale) {
		t.Fatalf("got %v, want ErrStale", err)
	}
	if got := f.Stats().Stale; got != 1 {
		t.Errorf("stale count = %d, want 1", got)
	}
}

// TestStatusOrder: an older session's status is stale; within a session
// the newest arrival wins whatever its seq (MQTT keeps a topic's order),
// so a status with an inflated seq cannot lock the real ones out.
func TestStatusOrder(t *testing.T) {
	f := New(nil)
	f.Apply(wire.StatusTopic("pi1"), statusMsg("pi1", 5, 1_000_000, []string{"192.0.2.2"}))
	if err := f.Apply(wire.StatusTopic("pi1"), statusMsg("pi1", 5, 1, []string{"192.0.2.1"})); err != nil {
		t.Errorf("lower seq in the same session: got %v, want it applied", err)
	}
	if d, _ := f.Get("pi1"); UsableAddresses(d.Status)[0] != "192.0.2.1" {
		t.Errorf("the status after the inflated seq was not applied: %v", UsableAddresses(d.Status))
	}
	if err := f.Apply(wire.StatusTopic("pi1"), statusMsg("pi1", 4, 9, []string{"192.0.2.1"})); !errors.Is(err, ErrStale) {
		t.Errorf("older epoch: got %v, want ErrStale", err)
	}
	f.Apply(wire.StatusTopic("pi1"), statusMsg("pi1", 6, 1, []string{"198.51.100.1"}))
	d, _ := f.Get("pi1")
	if got := UsableAddresses(d.Status); len(got) != 1 || got[0] != "198.51.100.1" {
		t.Errorf("addresses = %v, want [198.51.100.1]", got)
	}
}

// TestGarbage feeds bad input on every topic shape: nothing panics, every
// message is rejected and counted, and no other device is touched.
func TestGarbage(t *testing.T) {
	f := New(nil)
	f.Apply(wire.StateTopic("good"), stateMsg(wire.StateOnline, 1))
	f.Apply(wire.StatusTopic("good"), statusMsg("good", 1, 1, []string{"192.0.2.9"}))
	before, _ := f.Get("good")
	bad := []struct{ topic, payload string }{
		{wire.StateTopic("pi1"), "not json"},
		{wire.StateTopic("pi1"), `{"v":2,"state":"online","epoch":1}`},
		{wire.StateTopic("pi1"), `{"v":1,"state":"dead","epoch":1}`},
		{wire.StateTopic("pi1"), `{"v":1,"state":"online","epoch":-1}`},
		{wire.StateTopic("pi1"), strings.Repeat("[", 1<<20)},
		{wire.StatusTopic("pi1"), `{"v":1,"id":"good"}`}, // claims to be another device
		{wire.StatusTopic("pi1"), `{"v":1,"id":"pi1","addresses":"nope"}`},
		{wire.StatusTopic("good"), "\x00\xff\xfe"},
		{"pifleet/v1/devices/a+b/state", `{"v":1,"state":"online","epoch":1}`},
		{"pifleet/v1/devices/x/unknown", `{}`},
		{"random/topic", `{}`},
		{wire.StatusTopic("good"), `null`},
	}
	for _, b := range bad {
		if err := f.Apply(b.topic, []byte(b.payload)); err == nil {
			t.Errorf("Apply(%q, %.30q) accepted garbage", b.topic, b.payload)
		}
	}
	after, _ := f.Get("good")
	if after.State != before.State || after.Status.Seq != before.Status.Seq || UsableAddresses(after.Status)[0] != "192.0.2.9" {
		t.Errorf("garbage changed another device: before %+v after %+v", before, after)
	}
	var rejected uint64
	for _, n := range f.Stats().Rejected {
		rejected += n
	}
	if rejected != uint64(len(bad)) {
		t.Errorf("rejected count = %d (%v), want %d", rejected, f.Stats().Rejected, len(bad))
	}
	if _, ok := f.Get("pi1"); ok {
		d, _ := f.Get("pi1")
		if d.State != "" || d.Status != nil {
			t.Errorf("garbage created device state: %+v", d)
		}
	}
}

func TestAlertsAndHistory(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	f := New(c.now)
	var got []string
	cancel := f.Subscribe(func(a Alert) { got = append(got, a.Kind+":"+a.Detail) })
	defer cancel()
	f.Apply(wire.StateTopic("pi1"), stateMsg(wire.StateOnline, 1))
	f.Apply(wire.StatusTopic("pi1"), statusMsg("pi1", 1, 1, []string{"192.0.2.1"}))
	f.Apply(wire.StatusTopic("pi1"), statusMsg("pi1", 1, 2, []string{"192.0.2.1"}, wire.ProblemUnderVoltage))
	f.Apply(wire.StatusTopic("pi1"), statusMsg("pi1", 1, 3, []string{"198.51.100.1"}))
	f.Apply(wire.StateTopic("pi1"), stateMsg(wire.StateLost, 1))
	want := []string{"problem:under_voltage", "recovered:under_voltage", "address:198.51.100.1", "offline:lost"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("alerts = %v, want %v", got, want)
	}
	d, _ := f.Get("pi1")
	var kinds []string
	for _, h := range d.History {
		kinds = append(kinds, h.Kind)
	}
	if w := "[online problem recovered address lost]"; fmt.Sprint(kinds) != w {
		t.Errorf("history = %v, want %s", kinds, w)
	}
}

func TestForget(t *testing.T) {
	f := New(nil)
	f.Apply(wire.StateTopic("pi1"), stateMsg(wire.StateOnline, 1))
	f.Apply(wire.StateTopic("pi1"), nil)
	if _, ok := f.Get("pi1"); ok {
		t.Error("empty retained state did not remove the device")
	}
}

func TestFilterResolveClosest(t *testing.T) {
	f := New(nil)
	for i, id := range []string{"pi-kitchen", "pi-garage", "pi-attic"} {
		f.Apply(wire.StateTopic(id), stateMsg(wire.StateOnline, 1))
		st := wire.Status{V: 1, ID: id, Epoch: 1, Seq: 1, Labels: []string{"house"}}
		if i == 2 {
			st.Labels = []string{"attic"}
			st.Health.Problems = []wire.Problem{wire.ProblemHot}
		}
		b, _ := json.Marshal(st)
		f.Apply(wire.StatusTopic(id), b)
	}
	f.Apply(wire.StateTopic("pi-garage"), stateMsg(wire.StateLost, 1))
	for expr, want := range map[string]string{
		"": "[pi-attic pi-garage pi-kitchen]", "online": "[pi-attic pi-kitchen]", "offline": "[pi-garage]",
		"problems": "[pi-attic pi-garage]", "label:house": "[pi-garage pi-kitchen]", "attic": "[pi-attic]",
	} {
		devs, err := f.Filter(expr)
		var ids []string
		for _, d := range devs {
			ids = append(ids, d.ID)
		}
		if err != nil || fmt.Sprint(ids) != want {
			t.Errorf("Filter(%q) = %v, %v; want %s", expr, ids, err, want)
		}
	}
	if _, err := f.Filter("bogus"); err == nil {
		t.Error("Filter(bogus) accepted")
	}
	// An empty label is a mistake, not an empty fleet (issue 15).
	for _, expr := range []string{"label:", " label: ", "LABEL:"} {
		if devs, err := f.Filter(expr); err == nil || !strings.Contains(err.Error(), "needs a label") {
			t.Errorf("Filter(%q) = %v, %v; want an error that asks for the label's name", expr, devs, err)
		}
	}
	for _, expr := range []string{"label:", " label: ", "label:  "} {
		if ids, err := f.Resolve(expr); err == nil || !strings.Contains(err.Error(), "needs a label") {
			t.Errorf("Resolve(%q) = %v, %v; want an error that asks for the label's name", expr, ids, err)
		}
	}
	for target, want := range map[string]string{
		"pi-attic": "[pi-attic]", "pi-attic,pi-garage": "[pi-attic pi-garage]", "all": "[pi-attic pi-garage pi-kitchen]",
		"house": "[pi-garage pi-kitchen]", "label:attic": "[pi-attic]",
	} {
		ids, err := f.Resolve(target)
		if err != nil || fmt.Sprint(ids) != want {
			t.Errorf("Resolve(%q) = %v, %v; want %s", target, ids, err, want)
		}
	}
	if _, err := f.Resolve("pi-kitchn"); err == nil || !strings.Contains(err.Error(), `did you mean "pi-kitchen"`) {
		t.Errorf("Resolve(typo) error = %v, want a suggestion", err)
	}
	if err := f.UnknownID("a/b"); !strings.Contains(err.Error(), "not a valid device id") {
		t.Errorf("UnknownID(a/b) = %v", err)
	}
}

func benchFleet(n int) (*Fleet, [][]byte) {
	f := New(nil)
	msgs := make([][]byte, n)
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("pi-%05d", i)
		f.Apply(wire.StateTopic(id), stateMsg(wire.StateOnline, 1))
		msgs[i] = statusMsg(id, 1, 1, []string{fmt.Sprintf("192.0.2.%d", i%250+1)})
	}
	return f, msgs
}

// BenchmarkIngest measures the hub's ingest path (decode + apply) for
// status messages spread over 10,000 devices.
func BenchmarkIngest(b *testing.B) {
	f, msgs := benchFleet(10000)
	topics := make([]string, len(msgs))
	for i := range msgs {
		topics[i] = wire.StatusTopic(fmt.Sprintf("pi-%05d", i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := i % len(msgs)
		if err := f.Apply(topics[j], msgs[j]); err != nil && !errors.Is(err, ErrStale) {
			b.Fatal(err)
		}
	}
}

// Container bridges and virtual networks are not where a person reaches a
// Pi: docker0's 172.17.0.1 is on every Pi with Docker.
func TestUsableAddressesSkipSideInterfaces(t *testing.T) {
	st := &wire.Status{Addresses: []wire.Address{
		{Interface: "docker0", Family: wire.IPv4, Address: "172.17.0.1", Prefix: 16},
		{Interface: "veth12ab", Family: wire.IPv6, Address: "fe80::2", Prefix: 64, LinkLocal: true},
		{Interface: "br-5f2c", Family: wire.IPv4, Address: "172.18.0.1", Prefix: 16},
		{Interface: "wlan0", Family: wire.IPv4, Address: "198.51.100.7", Prefix: 24},
		{Interface: "eth0", Family: wire.IPv4, Address: "192.0.2.10", Prefix: 24, Primary: true},
	}}
	if got := UsableAddresses(st); !slices.Equal(got, []string{"192.0.2.10", "198.51.100.7"}) {
		t.Errorf("UsableAddresses = %v, want the primary, then wlan0; no container bridges", got)
	}
	for name, want := range map[string]bool{"docker0": true, "veth12ab": true, "br-5f2c": true, "ifb0": true, "eth0": false, "wlan0": false, "usb0": false} {
		if SideInterface(name) != want {
			t.Errorf("SideInterface(%q) = %v, want %v", name, !want, want)
		}
	}
}
