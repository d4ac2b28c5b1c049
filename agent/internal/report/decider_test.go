package report

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pifleet/pifleet/internal/wire"
)

func f64(v float64) *float64 { return &v }
func u64(v uint64) *uint64   { return &v }
func bp(v bool) *bool        { return &v }

func base() wire.Status {
	return wire.Status{
		ID:       "pi-1",
		Hostname: "pi-1",
		Epoch:    3,
		Seq:      7,
		Interfaces: []wire.Interface{
			{Name: "eth0", MAC: "b8:27:eb:00:00:01", Up: true, DefaultRoute: true},
		},
		Addresses: []wire.Address{
			{Address: "192.0.2.10", Prefix: 24, Family: wire.IPv4, Interface: "eth0", Primary: true},
		},
		Health: wire.Health{
			TempC:       f64(50),
			CPUFreqMHz:  f64(600),
			Load1:       f64(0.1),
			MemTotalB:   u64(1000),
			MemAvailB:   u64(500),
			UptimeS:     f64(100),
			ClockSynced: bp(true),
			Throttle:    &wire.Throttle{},
			Disks:       []wire.Disk{{Path: "/", TotalB: 100, FreeB: 50, UsedPercent: 50}},
			Docker:      "reachable",
			Probes:      map[string]wire.ProbeState{"thermal": wire.ProbeOK},
		},
	}
}

func TestChanges(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*wire.Status)
		want   string
	}{
		{"nothing", func(*wire.Status) {}, ""},
		{"counters only", func(s *wire.Status) {
			s.Seq++
			s.Time = time.Unix(5, 0)
			s.Health.Load1 = f64(3)
			s.Health.CPUFreqMHz = f64(1200)
			s.Health.UptimeS = f64(200)
			s.Health.MemAvailB = u64(450)
			s.Health.Disks[0].UsedPercent = 53
			s.Health.TempC = f64(51.9)
		}, ""},
		{"address added", func(s *wire.Status) {
			s.Addresses = append(s.Addresses, wire.Address{Address: "2001:db8::1", Prefix: 64, Family: wire.IPv6, Interface: "eth0"})
		}, "addresses"},
		{"link down", func(s *wire.Status) { s.Interfaces[0].Up = false }, "interfaces"},
		{"temp up 2", func(s *wire.Status) { s.Health.TempC = f64(52) }, "temp"},
		{"temp down 2.5", func(s *wire.Status) { s.Health.TempC = f64(47.5) }, "temp"},
		{"temp gone", func(s *wire.Status) { s.Health.TempC = nil }, "temp"},
		{"under-voltage", func(s *wire.Status) {
			th := wire.DecodeThrottle(0x50005)
			s.Health.Throttle = &th
			s.Health.Problems = []wire.Problem{wire.ProblemUnderVoltage, wire.ProblemThrottled}
		}, "problems,throttle"},
		{"problems reordered", func(s *wire.Status) {}, ""},
		{"root ro", func(s *wire.Status) { s.Health.RootReadOnly = bp(true) }, "root_read_only"},
		{"clock", func(s *wire.Status) { s.Health.ClockSynced = bp(false) }, "clock_synced"},
		{"docker", func(s *wire.Status) { s.Health.Docker = "unreachable" }, "docker"},
		{"memory", func(s *wire.Status) { s.Health.MemAvailB = u64(390) }, "memory"},
		{"disk", func(s *wire.Status) { s.Health.Disks[0].UsedPercent = 56 }, "disks"},
		{"probe failed", func(s *wire.Status) { s.Health.Probes["thermal"] = wire.ProbeFailed }, "probes"},
		{"epoch", func(s *wire.Status) { s.Epoch++ }, "epoch"},
		{"labels", func(s *wire.Status) { s.Labels = []string{"lab"} }, "labels"},
		{"console", func(s *wire.Status) { s.Health.Console = &wire.Console{TTY: "ttyS0"} }, "console"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prev, next := base(), base()
			tc.change(&next)
			got := strings.Join(Changes(prev, next, Config{}), ",")
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestChangesProblemOrder(t *testing.T) {
	prev, next := base(), base()
	prev.Health.Problems = []wire.Problem{wire.ProblemHot, wire.ProblemThrottled}
	next.Health.Problems = []wire.Problem{wire.ProblemThrottled, wire.ProblemHot}
	if got := Changes(prev, next, Config{}); len(got) != 0 {
		t.Errorf("got %v, want no change for the same problems in another order", got)
	}
}

func TestChangesTempThresholdConfigurable(t *testing.T) {
	prev, next := base(), base()
	next.Health.TempC = f64(50.6)
	if got := Changes(prev, next, Config{TempDeltaC: 0.5}); !reflect.DeepEqual(got, []string{"temp"}) {
		t.Errorf("got %v, want [temp] with a 0.5 °C threshold", got)
	}
}

// TestDecider walks a timeline with a fake clock.
func TestDecider(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	d := NewDecider(Config{Heartbeat: 30 * time.Second, MinInterval: time.Second})
	s := base()
	moved := func(addr string) wire.Status {
		n := base()
		n.Addresses[0].Address = addr
		return n
	}

	type step struct {
		at      time.Duration
		status  wire.Status
		publish bool
		reasons string
		wake    time.Duration
	}
	steps := []step{
		{0, s, true, "first", 30 * time.Second},
		{2 * time.Second, s, false, "", 30 * time.Second},
		{5 * time.Second, moved("192.0.2.20"), true, "addresses", 35 * time.Second},
		// a second change inside the quiet period is held until it ends
		{5*time.Second + 300*time.Millisecond, moved("192.0.2.30"), false, "addresses", 6 * time.Second},
		{5*time.Second + 600*time.Millisecond, moved("192.0.2.40"), false, "addresses", 6 * time.Second},
		{6 * time.Second, moved("192.0.2.40"), true, "addresses", 36 * time.Second},
		// nothing changes: the heartbeat is due 30 s after the last publish
		{20 * time.Second, moved("192.0.2.40"), false, "", 36 * time.Second},
		{36 * time.Second, moved("192.0.2.40"), true, "heartbeat", 66 * time.Second},
		// a change that reverts within the quiet period is not published
		{36*time.Second + 100*time.Millisecond, moved("192.0.2.50"), false, "addresses", 37 * time.Second},
		{37 * time.Second, moved("192.0.2.40"), false, "", 66 * time.Second},
	}
	for i, st := range steps {
		got := d.Decide(at(st.at), st.status)
		if got.Publish != st.publish || strings.Join(got.Reasons, ",") != st.reasons || !got.Wake.Equal(at(st.wake)) {
			t.Fatalf("step %d at %v: got publish=%v reasons=%v wake=+%v, want publish=%v reasons=%q wake=+%v",
				i, st.at, got.Publish, got.Reasons, got.Wake.Sub(t0), st.publish, st.reasons, st.wake)
		}
		if got.Publish {
			d.Published(at(st.at), st.status, got.Retain)
		}
	}
	d.Reset()
	if got := d.Decide(at(38*time.Second), s); !got.Publish || got.Reasons[0] != ReasonFirst {
		t.Errorf("after Reset: got %+v, want a first publish", got)
	}
}

// TestDeciderRate feeds a change every 10 ms for 10 s and checks the rate
// limit holds: at most one publish per MinInterval.
func TestDeciderRate(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d := NewDecider(Config{MinInterval: 500 * time.Millisecond})
	var pubs []time.Time
	for i := 0; i < 1000; i++ {
		now := t0.Add(time.Duration(i) * 10 * time.Millisecond)
		s := base()
		s.Health.TempC = f64(float64(40 + 3*(i%2)))
		if dec := d.Decide(now, s); dec.Publish {
			d.Published(now, s, dec.Retain)
			pubs = append(pubs, now)
		}
	}
	for i := 1; i < len(pubs); i++ {
		if gap := pubs[i].Sub(pubs[i-1]); gap < 500*time.Millisecond {
			t.Fatalf("publishes %d and %d only %v apart, want ≥ 500ms", i-1, i, gap)
		}
	}
	if len(pubs) < 15 || len(pubs) > 21 {
		t.Errorf("got %d publishes in 10 s of constant change, want about 20", len(pubs))
	}
}

// TestDeciderRetain: the first status of a session and every change are
// retained; a heartbeat is not, unless the retained copy drifted past a
// threshold over several heartbeats or is RetainEvery old.
func TestDeciderRetain(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d := NewDecider(Config{Heartbeat: 30 * time.Second, RetainEvery: 5 * time.Minute})
	temp := func(c float64) wire.Status {
		s := base()
		s.Health.TempC = f64(c)
		return s
	}
	type step struct {
		at      time.Duration
		status  wire.Status
		reasons string
		retain  bool
	}
	steps := []step{
		{0, temp(50), "first", true},
		{30 * time.Second, temp(50.5), "heartbeat", false},
		{60 * time.Second, temp(51), "heartbeat", false},
		// 1.5 °C from the last heartbeat but 2 °C from the retained copy
		{90 * time.Second, temp(52), "heartbeat", true},
		{120 * time.Second, temp(52), "heartbeat", false},
		// a change is always retained
		{130 * time.Second, temp(54.5), "temp", true},
		{160 * time.Second, temp(54.5), "heartbeat", false},
		{400 * time.Second, temp(54.5), "heartbeat", false},
		// RetainEvery (5 min) after the last retained one
		{430 * time.Second, temp(54.5), "heartbeat", true},
		{460 * time.Second, temp(54.5), "heartbeat", false},
	}
	for i, st := range steps {
		now := t0.Add(st.at)
		got := d.Decide(now, st.status)
		if !got.Publish || strings.Join(got.Reasons, ",") != st.reasons || got.Retain != st.retain {
			t.Fatalf("step %d at %v: got publish=%v reasons=%v retain=%v, want a publish for %q, retain=%v",
				i, st.at, got.Publish, got.Reasons, got.Retain, st.reasons, st.retain)
		}
		d.Published(now, st.status, got.Retain)
	}
	d.Reset()
	if got := d.Decide(t0.Add(470*time.Second), temp(54.5)); !got.Retain {
		t.Errorf("after Reset: got %+v, want a retained first status", got)
	}
	// RetainEvery at or below the heartbeat: every status is retained
	every := NewDecider(Config{Heartbeat: 30 * time.Second, RetainEvery: 30 * time.Second})
	every.Published(t0, temp(50), true)
	if got := every.Decide(t0.Add(30*time.Second), temp(50)); !got.Publish || !got.Retain {
		t.Errorf("RetainEvery = Heartbeat: got %+v, want a retained heartbeat", got)
	}
}
