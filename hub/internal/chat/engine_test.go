package chat

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/fleet"
	"github.com/pifleet/pifleet/internal/wire"
)

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

func testEngine(t testing.TB) *Engine {
	f := fleet.New(func() time.Time { return now })
	add := func(id string, state wire.Lifecycle, st wire.Status) {
		b, _ := json.Marshal(wire.State{V: 1, State: wire.StateOnline, Epoch: 1})
		f.Apply(wire.StateTopic(id), b)
		st.V, st.ID, st.Epoch, st.Seq = 1, id, 1, 1
		b, _ = json.Marshal(st)
		if err := f.Apply(wire.StatusTopic(id), b); err != nil {
			t.Fatal(err)
		}
		if state != wire.StateOnline {
			b, _ = json.Marshal(wire.State{V: 1, State: state, Epoch: 1})
			f.Apply(wire.StateTopic(id), b)
		}
	}
	add("pi-kitchen", wire.StateOnline, wire.Status{
		Interfaces: []wire.Interface{{Name: "lo", Loopback: true, Up: true}, {Name: "eth0", Up: true, DefaultRoute: true}},
		Addresses: []wire.Address{{Address: "127.0.0.1", Prefix: 8, Interface: "lo", Loopback: true},
			{Address: "192.0.2.10", Prefix: 24, Interface: "eth0", Primary: true},
			{Address: "fe80::1", Prefix: 64, Interface: "eth0", LinkLocal: true}},
		Health: wire.Health{TempC: ptr(47.2)},
	})
	add("pi-garage", wire.StateLost, wire.Status{
		Addresses: []wire.Address{{Address: "198.51.100.4", Prefix: 24, Interface: "wlan0"}},
		Health: wire.Health{TempC: ptr(81.0), RootReadOnly: ptr(true), Throttle: ptr(wire.DecodeThrottle(0x50005)),
			Problems: []wire.Problem{wire.ProblemUnderVoltage, wire.ProblemReadOnlyRoot},
			Probes:   map[string]wire.ProbeState{"thermal": wire.ProbeOK, "wifi": wire.ProbeAbsent}},
	})
	return New(f, func() time.Time { return now })
}

func ask(e *Engine, text string) Reply {
	return e.Ask(context.Background(), Request{Text: text, User: "U1", Source: "test"})
}

func TestAnswers(t *testing.T) {
	e := testEngine(t)
	for _, tc := range []struct {
		text        string
		problem     bool
		contains    []string
		notContains []string
	}{
		{"help", false, []string{"fleet", "where <id>", "health <id>", "history <id>"}, nil},
		{"", false, []string{"Commands"}, nil},
		{"fleet", false, []string{"Fleet: 1/2 online\n", "pi-kitchen · online · 192.0.2.10 · 47.2 °C", "pi-garage · lost", "under-voltage"}, []string{"127.0.0.1", "fe80::1"}},
		{"FLEET online", false, []string{"Fleet: online · 1/1 online\n", "pi-kitchen"}, []string{"pi-garage"}},
		{"fleet problems", false, []string{"pi-garage"}, []string{"pi-kitchen"}},
		{"fleet bogus", true, []string{"unknown filter"}, nil},
		{"where pi-kitchen", false, []string{"pi-kitchen is online", "Reach it at 192.0.2.10 on eth0 (default route)", "eth0 (default route): 192.0.2.10/24 (primary)\n", "also eth0 fe80::1 (link-local)"}, []string{"lo:"}},
		{"where pi-kichen", true, []string{`no device "pi-kichen"; did you mean "pi-kitchen"?`}, nil},
		{"where", true, []string{"Which Pi? Usage: where <id>"}, nil},
		{"where a b", true, []string{"`where` takes one Pi id; the other word was ignored and nothing was run", "Try `where a`"}, nil},
		{"where pi-kitchen; rm -rf /", true, []string{"the other 3 words were ignored and nothing was run", "never hands chat text to a shell", "Try `where pi-kitchen`"}, []string{"is online"}},
		{"where ../../etc", true, []string{"not a valid device id"}, nil},
		{"health pi-garage", false, []string{"offline (connection lost)", "81.0 °C", "under-voltage, throttled", "read-only", "Not present", "wifi", "Problems: under-voltage, root file system read-only"}, nil},
		{"history pi-garage", false, []string{"lost"}, nil},
		{"flet", true, []string{`Did you mean "fleet"`}, nil},
		{"rm -rf /", true, []string{`I don't know "rm"`}, nil},
		{`where "unterminated`, true, []string{"unclosed double quote"}, nil},
		{`where pi-kitchen\`, true, []string{"backslash at the end escapes nothing"}, nil},
		{"where\u00a0pi-kitchen", false, []string{"pi-kitchen is online"}, nil},
		{strings.Repeat("x", MaxInput+1), true, []string{"at most"}, nil},
		{"\x00\x01 \u202e", true, []string{"I don't know"}, nil},
	} {
		r := ask(e, tc.text)
		if Plain(r.Text) != r.Text {
			t.Errorf("Ask(%.30q).Text holds marks: %q", tc.text, r.Text)
		}
		if r.Problem != tc.problem {
			t.Errorf("Ask(%.30q).Problem = %v, want %v (text %q)", tc.text, r.Problem, tc.problem, r.Text)
		}
		for _, s := range tc.contains {
			if !strings.Contains(r.Text, s) {
				t.Errorf("Ask(%.30q) = %q, want it to contain %q", tc.text, r.Text, s)
			}
		}
		for _, s := range tc.notContains {
			if strings.Contains(r.Text, s) {
				t.Errorf("Ask(%.30q) = %q, must not contain %q", tc.text, r.Text, s)
			}
		}
	}
}

type echo struct{}

func (echo) Handle(_ context.Context, r Request, args []string) Reply {
	return Reply{Text: fmt.Sprintf("%s:%q", r.User, args)}
}

func TestExtensionVerb(t *testing.T) {
	e := testEngine(t)
	e.Handle("aws", "run the AWS CLI on Pis", echo{})
	if got, want := ask(e, `aws pi-kitchen s3 ls 'my bucket' ";" '$(id)'`).Text, `U1:["pi-kitchen" "s3" "ls" "my bucket" ";" "$(id)"]`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if !strings.Contains(ask(e, "help").Text, "run the AWS CLI") {
		t.Error("help does not list the extension verb")
	}
}

// TestFleetLayout: a fleet answer leads with the summary, lists the Pis
// needing attention first, each with its id in bold, its IPv4 address as
// code and what is wrong in words, and offers Where and Health for it.
func TestFleetLayout(t *testing.T) {
	e := testEngine(t)
	r := ask(e, "fleet")
	if r.Title != "1/2 online" {
		t.Errorf("title = %q, want 1/2 online", r.Title)
	}
	lastSeen := now // testEngine's fleet saw everything at now
	want := []Section{
		{Text: "🔴 " + Bold("pi-garage") + " " + Code("198.51.100.4") + "\nlost · seen " + At(lastSeen, "just now"), Actions: DeviceActions("pi-garage")},
		{Text: "🟢 " + Bold("pi-kitchen") + " " + Code("192.0.2.10") + " · 47.2 °C", Actions: DeviceActions("pi-kitchen")},
	}
	if fmt.Sprintf("%q", r.Sections) != fmt.Sprintf("%q", want) {
		t.Errorf("sections =\n  %q\nwant\n  %q", r.Sections, want)
	}
	if got := DeviceActions("pi-1"); got[0].Command != "where pi-1" || got[1].Command != "health pi-1" {
		t.Errorf("DeviceActions = %+v", got)
	}
}

// TestFleetButtonsAndOrder: in a long list the first ButtonRows Pis
// needing attention get buttons, the healthy ones are lines of one
// section; ids sort naturally; no file up to LargeFleet.
func TestFleetButtonsAndOrder(t *testing.T) {
	f := fleet.New(nil)
	for i := 0; i < 45; i++ {
		b, _ := json.Marshal(wire.State{V: 1, State: wire.StateOnline, Epoch: 1})
		f.Apply(wire.StateTopic(fmt.Sprintf("pi-%d", i)), b)
		if i%11 == 3 { // pi-3, pi-14, pi-25, pi-36: lost
			b, _ = json.Marshal(wire.State{V: 1, State: wire.StateLost, Epoch: 1})
			f.Apply(wire.StateTopic(fmt.Sprintf("pi-%d", i)), b)
		}
	}
	r := New(f, nil).Ask(context.Background(), Request{Text: "fleet"})
	if len(r.Sections) != 4+1 || len(r.Files) != 0 {
		t.Fatalf("sections=%d files=%d; want 5 sections (4 lost Pis, the healthy) and no file", len(r.Sections), len(r.Files))
	}
	for i, s := range r.Sections {
		if (len(s.Actions) == 2) != (i < 4) {
			t.Errorf("section %d has %d actions", i, len(s.Actions))
		}
	}
	if want := Bold("pi-3"); !strings.Contains(r.Sections[0].Text, want) || !strings.Contains(r.Sections[3].Text, Bold("pi-36")) {
		t.Errorf("the lost Pis do not come first, in natural order: %q … %q", r.Sections[0].Text, r.Sections[3].Text)
	}
	if !strings.Contains(r.Text, "pi-9 ·") || strings.Index(r.Text, "pi-9 ·") > strings.Index(r.Text, "pi-10 ·") {
		t.Errorf("pi-9 is not listed before pi-10:\n%s", r.Text)
	}
	if r.Title != "41/45 online" {
		t.Errorf("title = %q", r.Title)
	}
}

func TestEmptyFleetSaysItOnce(t *testing.T) {
	e := New(fleet.New(nil), nil)
	r := ask(e, "fleet")
	if r.Title != "No devices yet" || len(r.Sections) != 1 || strings.Contains(r.Sections[0].Text, r.Title) {
		t.Errorf("empty fleet = %+v", r)
	}
	if r := ask(e, "fleet online"); r.Title != "No device matches online" {
		t.Errorf("empty filter: %+v", r)
	}
}

// TestHelpIsFullWidthLines: help lists each command on a line of its own
// (verb in bold), not in half-width fields that broke
// "[online|offline|problems|label:NAME]" mid-word on a phone.
func TestHelpIsFullWidthLines(t *testing.T) {
	r := ask(testEngine(t), "help")
	if len(r.Sections) != 1 || len(r.Sections[0].Fields) != 0 {
		t.Fatalf("help sections = %+v, want one section of lines", r.Sections)
	}
	// The CLI's text keeps its summaries in one column.
	if !strings.Contains(r.Text, "\n  fleet [online | offline | problems | label:NAME]  the devices") ||
		!strings.Contains(r.Text, "\n  help                                              this list\n") {
		t.Errorf("help's text is not in columns:\n%s", r.Text)
	}
	first := strings.Split(r.Sections[0].Text, "\n")[0]
	if want := Bold("fleet") + " [online | offline | problems | label:NAME] — the devices, their addresses and health"; first != want {
		t.Errorf("help's first line = %q, want %q", first, want)
	}
}

// TestTryButtons: an answer that suggests a command offers it as a button.
func TestTryButtons(t *testing.T) {
	e := testEngine(t)
	for text, want := range map[string]string{
		"where pi-kichen":            "where pi-kitchen",
		"health pi-kichen":           "health pi-kitchen",
		"flet online":                "fleet online",
		"wher 'pi kitchen'":          "where 'pi kitchen'",
		"where pi-kitchen; rm -rf /": "where pi-kitchen",
	} {
		r := ask(e, text)
		if len(r.Actions) != 1 || r.Actions[0].Command != want || r.Actions[0].Label != want {
			t.Errorf("Ask(%q).Actions = %+v, want one button running %q", text, r.Actions, want)
		}
	}
	for _, text := range []string{"where pi-zzzzzzzzzz", "where ../../etc", "rm -rf /"} {
		if r := ask(e, text); len(r.Actions) != 0 {
			t.Errorf("Ask(%q).Actions = %+v, want none", text, r.Actions)
		}
	}
}

// TestTimesAreMarks: every time an answer shows is a time mark (Slack
// renders a date token), and the CLI's text has it in plain words.
func TestTimesAreMarks(t *testing.T) {
	e := testEngine(t)
	e.now = func() time.Time { return now.Add(90 * time.Second) }
	for _, q := range []string{"where pi-kitchen", "health pi-garage"} {
		r := ask(e, q)
		if r.Context != "last seen "+At(now, "1m ago") && !strings.HasPrefix(r.Context, "last seen "+At(now, "1m ago")+" · ") {
			t.Errorf("%s: context %q, want a time mark", q, r.Context)
		}
		if !strings.Contains(r.Text, "last seen 1m ago") {
			t.Errorf("%s: text %q, want last seen 1m ago", q, r.Text)
		}
	}
	r := ask(e, "history pi-garage")
	if !strings.HasPrefix(r.Sections[0].Text, AtSeconds(now, "2026-11-25 12:00:00Z")+" · ") {
		t.Errorf("history: %q, want lines starting with a time mark", r.Sections[0].Text)
	}
	if !strings.Contains(r.Text, "2026-11-25 12:00:00Z  ") {
		t.Errorf("history text: %q", r.Text)
	}
	if r := ask(e, "fleet"); !strings.Contains(r.Sections[0].Text, "seen "+At(now, "1m ago")) {
		t.Errorf("fleet: %q, want a time mark", r.Sections[0].Text)
	}
}

// BenchmarkFleet10k answers `fleet` over 10,000 devices.
func BenchmarkFleet10k(b *testing.B) {
	f := fleet.New(nil)
	for i := 0; i < 10000; i++ {
		id := fmt.Sprintf("pi-%05d", i)
		s, _ := json.Marshal(wire.State{V: 1, State: wire.StateOnline, Epoch: 1})
		f.Apply(wire.StateTopic(id), s)
		st, _ := json.Marshal(wire.Status{V: 1, ID: id, Epoch: 1, Seq: 1, Addresses: []wire.Address{{Address: fmt.Sprintf("192.0.2.%d", i%250+1), Prefix: 24, Interface: "eth0"}}, Health: wire.Health{TempC: ptr(45.0)}})
		f.Apply(wire.StatusTopic(id), st)
	}
	e := New(f, nil)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if r := e.Ask(context.Background(), Request{Text: "fleet"}); len(r.Files) != 1 {
			b.Fatal("no file")
		}
	}
}

// People read durations and history, not Go's formats and epochs.
func TestHumanWords(t *testing.T) {
	for d, want := range map[time.Duration]string{
		45 * time.Second: "45 s", 5 * time.Minute: "5 min", 9*time.Minute + 51*time.Second: "9 min",
		3 * time.Hour: "3 h", 3*time.Hour + 5*time.Minute: "3 h 5 min", 26 * time.Hour: "1 d 2 h", 12 * 24 * time.Hour: "12 d",
	} {
		if got := Duration(d); got != want {
			t.Errorf("Duration(%v) = %q, want %q", d, got, want)
		}
	}
	for _, tc := range [][3]string{
		{"online", "epoch 1796503866873", "online"},
		{"lost", "epoch 1796503866873", "lost its connection"},
		{"offline", "epoch 1", "shut down cleanly"},
		{"problem", "clock_unsynced, under_voltage", "health problem: clock not synchronised, under-voltage"},
		{"address", "eth0 192.0.2.7", "address: eth0 192.0.2.7"},
	} {
		if got := changeText(tc[0], tc[1]); got != tc[2] {
			t.Errorf("changeText(%q, %q) = %q, want %q", tc[0], tc[1], got, tc[2])
		}
	}
}
