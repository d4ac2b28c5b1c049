package chat

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/fleet"
	"github.com/pifleet/pifleet/internal/testenv/golden"
	"github.com/pifleet/pifleet/internal/wire"
)

// mixedFleet feeds n devices through Apply with the hub clock at now: a
// mixed fleet of models, agent versions and sites. Every 20th Pi is
// under-voltage and throttled, every 50th also hot; every 33rd is lost,
// every 97th shut down cleanly, every 400th never sent a status. Pis are
// last heard at varying times before now.
func mixedFleet(t testing.TB, n int) *fleet.Fleet {
	t.Helper()
	var at time.Time
	f := fleet.New(func() time.Time { return at })
	models := []string{"Raspberry Pi 3 Model B Rev 1.2", "Raspberry Pi 3 Model B Plus Rev 1.3", "Raspberry Pi 4 Model B Rev 1.4", "Raspberry Pi Zero 2 W Rev 1.0"}
	apply := func(topic string, v any) {
		t.Helper()
		b, _ := json.Marshal(v)
		if err := f.Apply(topic, b); err != nil {
			t.Fatalf("Apply %s: %v", topic, err)
		}
	}
	for i := range n {
		id := fmt.Sprintf("pi-%05d", i)
		at = now.Add(-time.Duration(i%90) * time.Second)
		apply(wire.StateTopic(id), wire.State{V: 1, State: wire.StateOnline, Epoch: 1})
		if i%400 != 0 {
			temp := 40 + float64(i%30)
			st := wire.Status{V: 1, ID: id, Epoch: 1, Seq: 1, AgentVersion: []string{"v0.1.0", "v0.1.0", "v0.1.0", "v0.2.0"}[i%4],
				Labels:     []string{"lab", fmt.Sprintf("site-%d", i%10)},
				Interfaces: []wire.Interface{{Name: "eth0", Up: true, DefaultRoute: true}},
				Addresses: []wire.Address{{Address: fmt.Sprintf("10.0.%d.%d", i>>8, i&255), Prefix: 16, Family: wire.IPv4, Interface: "eth0", Primary: true},
					{Address: fmt.Sprintf("fe80::%x", i), Prefix: 64, Family: wire.IPv6, Interface: "eth0", LinkLocal: true}},
				Health: wire.Health{TempC: &temp, Model: models[i%len(models)]}}
			switch {
			case i%50 == 0:
				hot := 83.5
				st.Health.TempC = &hot
				st.Health.Problems = []wire.Problem{wire.ProblemUnderVoltage, wire.ProblemThrottled, wire.ProblemHot}
			case i%20 == 0:
				st.Health.Problems = []wire.Problem{wire.ProblemUnderVoltage, wire.ProblemThrottled}
			}
			apply(wire.StatusTopic(id), st)
		}
		switch {
		case i%33 == 32:
			apply(wire.StateTopic(id), wire.State{V: 1, State: wire.StateLost, Epoch: 1})
		case i%97 == 96:
			apply(wire.StateTopic(id), wire.State{V: 1, State: wire.StateOffline, Epoch: 1})
		}
	}
	return f
}

// goldenReply is a Reply as a golden file holds it: files summarised (the
// whole of a big file is its own golden file, or too big for one).
type goldenReply struct {
	Reply
	Files []goldenFile `json:"files,omitempty"`
}

type goldenFile struct {
	Name  string `json:"name"`
	Bytes int    `json:"bytes"`
	Lines int    `json:"lines"`
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden.Check(t, filepath.Join("testdata", "golden", name), got)
}

func checkReplyGolden(t *testing.T, name string, r Reply) {
	t.Helper()
	g := goldenReply{Reply: r}
	g.Reply.Files = nil
	for _, f := range r.Files {
		g.Files = append(g.Files, goldenFile{f.Name, len(f.Content), strings.Count(f.Content, "\n")})
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(g); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, name+".json", b.Bytes())
	checkGolden(t, name+".txt", []byte(r.Text))
}

// TestFleetSmallInline: up to LargeFleet devices, `fleet` lists every
// device inline, those needing attention first, and needs no file.
func TestFleetSmallInline(t *testing.T) {
	e := New(mixedFleet(t, LargeFleet), func() time.Time { return now })
	r := ask(e, "fleet")
	if len(r.Files) != 0 || strings.Count(r.Text, "\n") != LargeFleet+1 {
		t.Errorf("%d devices: want every device in the text and no file", LargeFleet)
	}
	checkReplyGolden(t, "fleet-50", r)
}

// TestFleetLargeGolden: 120 devices get the summary, the devices needing
// attention (lost first) and the whole list as fleet.txt.
func TestFleetLargeGolden(t *testing.T) {
	e := New(mixedFleet(t, 120), func() time.Time { return now })
	r := ask(e, "fleet")
	checkReplyGolden(t, "fleet-large", r)
	if len(r.Files) != 1 || r.Files[0].Name != "fleet.txt" {
		t.Fatalf("files %+v, want fleet.txt", r.Files)
	}
	checkGolden(t, "fleet-large-file.txt", []byte(r.Files[0].Content))

	// A filter matching more than LargeFleet: the summary is of the match.
	r = ask(New(mixedFleet(t, 1200), func() time.Time { return now }), "fleet problems")
	if !strings.HasPrefix(r.Text, "Fleet: problems · 68/116 online · 68 🟠\n") {
		t.Errorf("fleet problems over 1200:\n%.300s", r.Text)
	}
	checkReplyGolden(t, "fleet-large-problems", r)
}

// TestFleetLarge10k: at 10,000 devices the answer a person reads stays
// short, starts with the summary, lists the devices needing attention
// first (lost ones first of all), and fleet.txt holds every device.
func TestFleetLarge10k(t *testing.T) {
	f := mixedFleet(t, 10000)
	e := New(f, func() time.Time { return now })
	r := ask(e, "fleet")
	if r.Problem || r.Title != "9,597/10,000 online · 553 🟠" {
		t.Fatalf("title %q", r.Title)
	}
	text := strings.Split(strings.TrimSuffix(r.Text, "\n"), "\n")
	if len(text) > 1+5+1+AttentionRows || len(r.Text) > 12000 {
		t.Errorf("the text is %d lines, %d bytes: too long for a message", len(text), len(r.Text))
	}
	for i, want := range []string{"Fleet: " + r.Title, "  States:          9,597 online, 303 lost, 100 offline",
		"  Problems:        575 throttled, 575 under-voltage, 175 running hot",
		"  Models:          2,500 Raspberry Pi 3 Model B Plus Rev 1.3, 2,500 Raspberry Pi 4 Model B Rev 1.4, 2,500 Raspberry Pi Zero 2 W Rev 1.0, 2,475 Raspberry Pi 3 Model B Rev 1.2, 25 unknown",
		"  Agent versions:  7,475 v0.1.0, 2,500 v0.2.0, 25 unknown",
		"  Labels:          9,975 lab, 1,000 site-1, 1,000 site-2, 1,000 site-3, 1,000 site-4, 1,000 site-5, 1,000 site-6, 1,000 site-7, and 3 more",
	} {
		if text[i] != want {
			t.Errorf("line %d:\ngot  %q\nwant %q", i, text[i], want)
		}
	}
	all, _ := f.Filter("problems")
	if len(all) != 956 {
		t.Errorf("%d devices need attention, want 956 (303 lost, 100 offline, 553 online with problems)", len(all))
	}
	if want := fmt.Sprintf("Needing attention: %d (lost, unhealthy, unknown or offline); the first %d:", len(all), AttentionRows); text[6] != want {
		t.Errorf("heading %q, want %q", text[6], want)
	}
	// Lost first: the first inline rows are all lost devices.
	for _, l := range text[7:] {
		if !strings.Contains(l, " · lost · ") {
			t.Errorf("inline row %q is not a lost device (303 are lost; they come first)", l)
		}
	}
	// 2 fields of summary + heading + rows: within Slack's 50 blocks.
	if len(r.Sections) != 2+AttentionRows || len(r.Sections[0].Fields) != 5 {
		t.Errorf("%d sections, summary fields %d", len(r.Sections), len(r.Sections[0].Fields))
	}
	if r.Context != fmt.Sprintf("Showing %d of the %d devices needing attention. The whole list (10,000 devices, those needing attention first) is attached as fleet.txt.", AttentionRows, len(all)) {
		t.Errorf("context %q", r.Context)
	}
	if len(r.Files) != 1 {
		t.Fatalf("files %d", len(r.Files))
	}
	file := r.Files[0].Content
	i := strings.Index(file, "\nNeeding attention ("+fmt.Sprint(len(all))+"):\n")
	j := strings.Index(file, "\nAll devices (10,000):\n")
	if i < 0 || j < i {
		t.Fatalf("fleet.txt lacks its parts:\n%.2000s", file)
	}
	if n := strings.Count(file[i:j], "\n  "); n != len(all) {
		t.Errorf("fleet.txt lists %d devices needing attention, want %d", n, len(all))
	}
	if n := strings.Count(file[j:], "\n  "); n != 10000 {
		t.Errorf("fleet.txt lists %d devices, want 10000", n)
	}
	if !strings.Contains(file[j:], "  🟢 pi-00001 · online · 10.0.0.1 · 41.0 °C · seen just now\n") ||
		!strings.Contains(file[j:], "  🔴 pi-09998 · lost · 10.0.39.14 · ") {
		t.Errorf("fleet.txt rows:\n%.600s", file[j:])
	}

	// A filter that matches few stays a small answer.
	if r := ask(e, "fleet label:site-3"); len(r.Files) != 1 || !strings.HasPrefix(r.Text, "Fleet: label:site-3 · 959/1,000 online\n") || strings.Count(r.Text, "\n") > 40 {
		t.Errorf("label:site-3 (1000 devices): %d lines: %.80q", strings.Count(r.Text, "\n"), r.Text)
	}
}

// A large fleet with nothing wrong says so, and long lines are cut short
// by size, not only by count.
func TestFleetLargeEdges(t *testing.T) {
	f := fleet.New(func() time.Time { return now })
	for i := range LargeFleet + 1 {
		id := fmt.Sprintf("healthy-%02d", i)
		b, _ := json.Marshal(wire.State{V: 1, State: wire.StateOnline, Epoch: 1})
		f.Apply(wire.StateTopic(id), b)
	}
	r := New(f, func() time.Time { return now }).Ask(context.Background(), Request{Text: "fleet"})
	if !strings.Contains(r.Text, "\nAll 51 devices are online and healthy.\n") || len(r.Sections) != 2 ||
		r.Context != "The whole list (51 devices, those needing attention first) is attached as fleet.txt." ||
		!strings.Contains(r.Text, "  Problems:        none\n") {
		t.Errorf("healthy large fleet:\n%s\ncontext %q", r.Text, r.Context)
	}

	f = fleet.New(func() time.Time { return now })
	for i := range 60 {
		id := fmt.Sprintf("%s-%02d", strings.Repeat("x", 60), i)
		b, _ := json.Marshal(wire.State{V: 1, State: wire.StateOnline, Epoch: 1})
		f.Apply(wire.StateTopic(id), b)
		st := wire.Status{V: 1, ID: id, Epoch: 1, Health: wire.Health{Problems: []wire.Problem{wire.ProblemUnderVoltage, wire.ProblemThrottled, wire.ProblemFreqCapped, wire.ProblemSoftTempLimit, wire.ProblemHot}}}
		for a := range 8 {
			st.Addresses = append(st.Addresses, wire.Address{Address: fmt.Sprintf("2001:db8:1234:5678:9abc:def0:%x:%x", i, a), Prefix: 64, Interface: "eth0"})
		}
		b, _ = json.Marshal(st)
		f.Apply(wire.StatusTopic(id), b)
	}
	r = New(f, func() time.Time { return now }).Ask(context.Background(), Request{Text: "fleet"})
	rows := len(r.Sections) - 2
	if rows >= AttentionRows || rows < 5 || len(r.Text) > 8000 {
		t.Errorf("long lines: %d inline rows, %d bytes of text; want fewer than %d rows, under 8000 bytes", rows, len(r.Text), AttentionRows)
	}
	if !strings.Contains(r.Text, fmt.Sprintf("Needing attention: 60 (lost, unhealthy, unknown or offline); the first %d:", rows)) {
		t.Errorf("heading does not say how many are shown:\n%.400s", r.Text)
	}
}
