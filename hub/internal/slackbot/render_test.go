package slackbot

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"github.com/pifleet/pifleet/hub/internal/alerts"
	"github.com/pifleet/pifleet/hub/internal/chat"
	"github.com/pifleet/pifleet/hub/internal/fleet"
	"github.com/pifleet/pifleet/internal/testenv/golden"
	"github.com/pifleet/pifleet/internal/wire"
)

// goldenMessage is the shape of a golden file: what would be posted, with files
// summarised (a 10,000-line file does not belong in a golden file).
type goldenMessage struct {
	Text   string        `json:"text"`
	Blocks []slack.Block `json:"blocks"`
	Files  []goldenFile  `json:"files,omitempty"`
}

type goldenFile struct {
	Name  string `json:"name"`
	Bytes int    `json:"bytes"`
	Lines int    `json:"lines"`
}

func checkGolden(t *testing.T, name string, m message) {
	t.Helper()
	g := goldenMessage{Text: m.Text, Blocks: m.Blocks}
	for _, f := range m.Files {
		g.Files = append(g.Files, goldenFile{Name: f.Name, Bytes: len(f.Content), Lines: strings.Count(f.Content, "\n")})
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(g); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "golden", name+".json"), b.Bytes())
}

// checkLimits fails when m breaks one of Slack's Block Kit limits.
func checkLimits(t *testing.T, m message) {
	t.Helper()
	if len(m.Blocks) > 50 {
		t.Errorf("%d blocks, Slack allows 50", len(m.Blocks))
	}
	if n := utf8.RuneCountInString(m.Text); n > 4000 {
		t.Errorf("fallback text is %d characters, Slack advises ≤ 4000", n)
	}
	for i, b := range m.Blocks {
		switch b := b.(type) {
		case *slack.SectionBlock:
			if b.Text != nil && utf8.RuneCountInString(b.Text.Text) >= 3000 {
				t.Errorf("block %d: section text is %d characters, Slack allows < 3000", i, utf8.RuneCountInString(b.Text.Text))
			}
			if len(b.Fields) > 10 {
				t.Errorf("block %d: %d fields, Slack allows 10", i, len(b.Fields))
			}
			for _, f := range b.Fields {
				if utf8.RuneCountInString(f.Text) > 2000 {
					t.Errorf("block %d: field of %d characters, Slack allows 2000", i, utf8.RuneCountInString(f.Text))
				}
			}
			if b.Text == nil && len(b.Fields) == 0 {
				t.Errorf("block %d: empty section", i)
			}
		case *slack.HeaderBlock:
			if utf8.RuneCountInString(b.Text.Text) > 150 {
				t.Errorf("block %d: header of %d characters, Slack allows 150", i, utf8.RuneCountInString(b.Text.Text))
			}
		}
		if !utf8.ValidString(fmt.Sprint(b)) {
			t.Errorf("block %d is not valid UTF-8", i)
		}
	}
}

func lines(n int, format string) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, format+"\n", i)
	}
	return b.String()
}

func manyFields(n int) []chat.Field {
	var fs []chat.Field
	for i := range n {
		fs = append(fs, chat.Field{Label: fmt.Sprintf("pi-%02d", i), Value: "online"})
	}
	return fs
}

// Replies shaped like the engine's answers (hub/internal/chat).
var renderCases = []struct {
	name    string
	command string
	reply   chat.Reply
}{
	{"time-token", "where pi-01", chat.Reply{Title: "pi-01 is offline (connection lost)", Text: "pi-01 is offline (connection lost)\n  last seen 2h ago\n",
		Context: "last seen " + chat.At(time.Date(2026, 11, 24, 23, 0, 0, 0, time.UTC), "2h ago") + " · changed " + chat.AtSeconds(time.Date(2026, 11, 24, 22, 59, 58, 0, time.UTC), "x")}},
	{"health-problem", "health pi-02", chat.Reply{
		Title: "Health of pi-02 (online)",
		Text:  "Health of pi-02 (online)\n  SoC temperature:       81.2 °C\n",
		Sections: []chat.Section{{Text: "⚠️ Problems: under voltage, hot"}, {Fields: []chat.Field{
			{Label: "Model", Value: "Raspberry Pi 3 Model B Rev 1.2 a02082"}, {Label: "SoC temperature", Value: "81.2 °C"},
			{Label: "Throttling now", Value: "under-voltage"}, {Label: "Root filesystem", Value: "read-only"},
		}}},
		Context: "last seen just now",
	}},
	{"unknown-command", "flet", chat.Reply{Text: `I don't know "flet". Did you mean "fleet"? Try ` + "`help`.", Problem: true}},
	{"unknown-id-titled", "where pi-99", chat.Reply{Title: "No such device", Text: `unknown device "pi-99"; did you mean "pi-09"?`, Problem: true}},
	{"table-text", "history pi-01", chat.Reply{Text: "Time      Kind     Detail\n10:01:02  offline  lost\n10:03:04  online   epoch 7\n"}},
	{"escaping", "where <b>", chat.Reply{Title: "<b> & co", Text: "device <b>&amp; is <not> here", Context: "a < b > c"}},
	{"many-fields", "fleet", chat.Reply{Title: "23 devices", Text: "23 devices", Sections: []chat.Section{{Text: "All of them:", Fields: manyFields(23)}}}},
	{"long-text-split", "history pi-01", chat.Reply{Text: lines(100, "event %03d: pi-01 changed state to online after a short absence")}},
	{"overflow-10000-lines", "history pi-01", chat.Reply{Title: "History of pi-01", Text: lines(10000, "%05d pi-01 online")}},
	{"overflow-many-sections", "fleet", func() chat.Reply {
		r := chat.Reply{Title: "Fleet: 60 devices", Context: "Showing all"}
		for i := range 60 {
			r.Sections = append(r.Sections, chat.Section{Text: fmt.Sprintf("🟢 pi-%02d · online", i)})
		}
		return r
	}()},
	{"engine-files", "fleet", chat.Reply{Title: "Fleet: 41 devices", Text: "…", Context: "Showing 40 of 41; the whole list is attached.",
		Files: []chat.File{{Name: "fleet.txt", Content: lines(41, "pi-%02d")}}}},
	{"confirm", "aws ec2 reboot-instances", chat.Reply{Title: "Reboot i-0123 on pi-01?", Text: "This runs `aws ec2 reboot-instances --instance-ids i-0123` on pi-01.",
		Confirm: &chat.Confirm{Token: "tok-abc", Summary: "Run aws ec2 reboot-instances on pi-01"}}},
	{"long-header", "x", chat.Reply{Title: strings.Repeat("very long title ", 20), Text: "x"}},
}

func TestRenderGolden(t *testing.T) {
	for _, tc := range renderCases {
		t.Run(tc.name, func(t *testing.T) {
			m := render(tc.reply, tc.command)
			checkLimits(t, m)
			checkGolden(t, "reply-"+tc.name, m)
		})
	}
}

func TestRenderOverflowKeepsTheWholeAnswer(t *testing.T) {
	long := lines(10000, "%05d pi-01 online")
	m := render(chat.Reply{Text: long}, "history pi-01")
	if len(m.Files) != 1 || m.Files[0].Content != long || m.Files[0].Name != "pifleet-history-pi-01.txt" {
		t.Fatalf("files = %d (%q), want the whole answer as pifleet-history-pi-01.txt", len(m.Files), m.Files[0].Name)
	}
	withFiles := render(chat.Reply{Title: "t", Text: long, Files: []chat.File{{Name: "extra.txt", Content: "x"}}}, "fleet")
	if len(withFiles.Files) != 2 || withFiles.Files[1].Name != "extra.txt" {
		t.Errorf("engine files lost on overflow: %+v", withFiles.Files)
	}
}

func TestRenderAlertsGolden(t *testing.T) {
	at := time.Date(2026, 11, 25, 1, 2, 3, 0, time.UTC)
	for _, a := range []alerts.Alert{
		{Kind: AlertOffline, Device: "pi-07", Detail: "lost", Time: at},
		{Kind: AlertOnline, Device: "pi-07", Detail: "online", Time: at},
		{Kind: AlertProblem, Device: "pi-07", Detail: "under_voltage, read_only_root", Time: at},
		{Kind: AlertRecovered, Device: "pi-07", Detail: "under_voltage", Time: at},
		{Kind: AlertAddress, Device: "pi-07", Detail: "192.0.2.9, 2001:db8::9", Time: at},
		{Kind: alerts.Flapping, Device: "pi-07", Detail: "5 changes in 10m0s, now offline; muted until it is steady for 10m0s", Time: at},
		{Kind: alerts.Settled, Device: "pi-07", Detail: "steady for 10m0s, now online", Time: at},
		{Kind: "exploded", Device: "<pi>", Time: at},
		{Kind: alerts.Startup, Detail: "2 offline: pi-03, pi-09; 1 with problems: pi-04 (under-voltage)", Time: at},
	} {
		t.Run(a.Kind, func(t *testing.T) {
			m := renderAlert(a)
			checkLimits(t, m)
			checkGolden(t, "alert-"+a.Kind, m)
		})
	}
}

func TestRenderWorkingGolden(t *testing.T) {
	status := chat.Status{Pis: []chat.PiStatus{{Device: "pi-kitchen", State: chat.PiOK, Took: 2700 * time.Millisecond}, {Device: "pi-garage", State: chat.PiRunning}}}
	checkGolden(t, "working", renderWorking("aws all s3 ls", status.Line()))
}

func TestRenderNeverBreaksLimits(t *testing.T) {
	// Awkward shapes: huge single lines, multi-byte text, many empty
	// sections, fields with huge values.
	huge := strings.Repeat("é", 5000)
	for i, r := range []chat.Reply{
		{Text: huge},
		{Title: huge, Sections: []chat.Section{{Text: huge, Fields: []chat.Field{{Label: huge, Value: huge}}}}, Context: huge},
		{Sections: make([]chat.Section, 80)},
		{Text: strings.Repeat("a  b\n", 3000)},
		{Confirm: &chat.Confirm{Token: "t", Summary: huge}},
		{},
	} {
		m := render(r, "x")
		t.Run(fmt.Sprint(i), func(t *testing.T) { checkLimits(t, m) })
	}
}

func TestSplitLines(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want []string
	}{
		{"a\nb\nc", 3, []string{"a\nb", "c"}},
		{"abcdef", 4, []string{"abcd", "ef"}},
		{"ab\ncdefgh\ni", 4, []string{"ab", "cdef", "gh\ni"}},
		{"ééé", 4, []string{"éé", "é"}}, // never inside a rune
		{"", 4, nil},
	} {
		got := splitLines(tc.in, tc.n)
		if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tc.want) {
			t.Errorf("splitLines(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestCleanText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"<@UBOT> fleet", "fleet"},
		{"<@UBOT|pifleet>   where   pi-01 ", "where pi-01"},
		{"<@UBOT> <@U2> health pi-01", "health pi-01"},
		{"hey <@UBOT> fleet", "hey fleet"},
		{"<@UBOT> where <http://pi-01.local|pi-01.local>", "where pi-01.local"},
		{"<@UBOT> where <http://pi-01.local>", "where http://pi-01.local"},
		{"<@UBOT> fleet label:&lt;lab&gt; &amp; co", "fleet label:<lab> & co"},
		{"<@UBOT> aws s3 ls “my bucket” ‘x’", `aws s3 ls "my bucket" 'x'`},
		{"<@UBOT> where pi\u2011kitchen", "where pi-kitchen"}, // copied from an alert's id list
		{"<!here> <@UBOT> fleet <#C123|general>", "fleet #general"},
		{"<@UBOT>", ""},
	} {
		if got := cleanText(tc.in, "UBOT"); got != tc.want {
			t.Errorf("cleanText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestFileName(t *testing.T) {
	for in, want := range map[string]string{
		"history pi-01":         "pifleet-history-pi-01.txt",
		"fleet":                 "pifleet-fleet.txt",
		"aws s3 ls --recursive": "pifleet-aws-s3.txt",
		"../../etc/passwd":      "pifleet-etc_passwd.txt",
		"":                      "pifleet-answer.txt",
	} {
		if got := fileName(in); got != want {
			t.Errorf("fileName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWithContextStaysWithinTheLimit(t *testing.T) {
	full := chat.Reply{Title: "t", Context: "c"}
	for i := range 48 {
		full.Sections = append(full.Sections, chat.Section{Text: fmt.Sprint(i)})
	}
	m := render(full, "fleet") // header + 48 sections + context = 50
	if len(m.Blocks) != 50 {
		t.Fatalf("setup: %d blocks, want 50", len(m.Blocks))
	}
	got := m.withContext("asked by someone")
	checkLimits(t, got)
	last, ok := got.Blocks[len(got.Blocks)-1].(*slack.ContextBlock)
	if !ok || len(last.ContextElements.Elements) != 2 {
		t.Errorf("the heading was not merged into the last context block: %#v", got.Blocks[len(got.Blocks)-1])
	}
	if orig := m.Blocks[len(m.Blocks)-1].(*slack.ContextBlock); len(orig.ContextElements.Elements) != 1 {
		t.Error("withContext changed the original message")
	}
	short := render(chat.Reply{Text: "x"}, "x").withContext("y")
	if len(short.Blocks) != 2 {
		t.Errorf("short message: %d blocks, want 2", len(short.Blocks))
	}
}

// TestRenderEngineGolden renders the real engine's answers that need no
// devices, so a change in the engine's wording shows up here as a golden
// diff of what Slack users will see.
func TestRenderEngineGolden(t *testing.T) {
	now := func() time.Time { return time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC) }
	eng := chat.New(fleet.New(now), now)
	for name, q := range map[string]string{"help": "help", "unknown-verb": "flet", "fleet-empty": "fleet", "unknown-id": "where pi-404"} {
		t.Run(name, func(t *testing.T) {
			m := render(eng.Ask(context.Background(), chat.Request{Text: q, Source: "slack"}), q)
			checkLimits(t, m)
			checkGolden(t, "engine-"+name, m)
		})
	}
}

// smallFleet is four Pis as the real fleet view holds them: one healthy
// with a down Docker bridge, one under-voltage, one lost an hour ago, and
// pi-10 (listed after pi-9 would be: natural order); and healthy more
// healthy Pis, pi-1 and on.
func smallFleet(t *testing.T, now time.Time, healthy int) *fleet.Fleet {
	t.Helper()
	at := now.Add(-time.Hour)
	f := fleet.New(func() time.Time { return at })
	apply := func(topic string, v any) {
		t.Helper()
		b, _ := json.Marshal(v)
		if err := f.Apply(topic, b); err != nil {
			t.Fatalf("Apply %s: %v", topic, err)
		}
	}
	temp := func(c float64) *float64 { return &c }
	pi := func(id, addr, addr6 string, h wire.Health) {
		apply(wire.StateTopic(id), wire.State{V: 1, State: wire.StateOnline, Epoch: 1})
		apply(wire.StatusTopic(id), wire.Status{V: 1, ID: id, Epoch: 1, Seq: 1, AgentVersion: "v0.1.0",
			Interfaces: []wire.Interface{{Name: "eth0", Up: true, DefaultRoute: true}, {Name: "docker0", Up: false}},
			Addresses: []wire.Address{{Address: addr, Prefix: 24, Family: wire.IPv4, Interface: "eth0", Primary: true},
				{Address: addr6, Prefix: 64, Family: wire.IPv6, Interface: "eth0"},
				{Address: "172.17.0.1", Prefix: 16, Family: wire.IPv4, Interface: "docker0"}},
			Health: h})
	}
	pi("pi-attic", "192.0.2.30", "2001:db8::30", wire.Health{TempC: temp(51)})
	apply(wire.StateTopic("pi-attic"), wire.State{V: 1, State: wire.StateLost, Epoch: 1})
	at = now.Add(-5 * time.Second)
	pi("pi-10", "192.0.2.110", "2001:db8::110", wire.Health{TempC: temp(44.5)})
	pi("pi-garage", "192.0.2.20", "2001:db8::20", wire.Health{TempC: temp(62.1), Problems: []wire.Problem{wire.ProblemUnderVoltage}})
	pi("pi-kitchen", "192.0.2.10", "2001:db8::10", wire.Health{TempC: temp(48.3)})
	for i := range healthy { // more healthy Pis, for a list longer than ButtonRows
		pi(fmt.Sprintf("pi-%d", i+1), fmt.Sprintf("192.0.2.%d", 111+i), fmt.Sprintf("2001:db8::%x", 0x111+i), wire.Health{TempC: temp(45)})
	}
	return f
}

// TestRenderEngineDevicesGolden renders the real engine's answers about
// Pis: the fleet with its summary header, problem Pis first and their
// buttons, times as date tokens, and the "did you mean" button.
func TestRenderEngineDevicesGolden(t *testing.T) {
	now := time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC)
	eng := chat.New(smallFleet(t, now, 0), func() time.Time { return now })
	for name, q := range map[string]string{
		"fleet": "fleet", "where": "where pi-kitchen", "health-problem": "health pi-garage", "history": "history pi-attic",
		"did-you-mean": "where pi-kichen", "extra-words": "where pi-kitchen; rm -rf /", "did-you-mean-verb": "helth pi-garage",
	} {
		t.Run(name, func(t *testing.T) {
			m := render(eng.Ask(context.Background(), chat.Request{Text: q, Source: "slack"}), q)
			checkLimits(t, m)
			checkGolden(t, "engine-"+name, m)
		})
	}
	// Twelve Pis: the first chat.ButtonRows with buttons, the rest as lines.
	m := render(chat.New(smallFleet(t, now, 8), func() time.Time { return now }).Ask(context.Background(), chat.Request{Text: "fleet", Source: "slack"}), "fleet")
	checkLimits(t, m)
	checkGolden(t, "engine-fleet-12", m)
}

// TestRenderTimesAndButtons: a time mark becomes a date token, an id and
// an address mrkdwn, and actions buttons that run their command.
func TestRenderTimesAndButtons(t *testing.T) {
	at := time.Date(2026, 11, 25, 1, 2, 3, 0, time.UTC)
	m := render(chat.Reply{Title: "t", Sections: []chat.Section{{
		Text:    "🔴 " + chat.Bold("pi-<1>") + " " + chat.Code("192.0.2.1") + "\nlost · seen " + chat.At(at, "5s ago"),
		Actions: chat.DeviceActions("pi-1"),
	}}, Context: "at " + chat.AtSeconds(at, "x")}, "fleet")
	sec := m.Blocks[1].(*slack.SectionBlock).Text.Text
	if want := "🔴 *pi-&lt;1&gt;* `192.0.2.1`\nlost · seen <!date^1795568523^{date_short_pretty} {time}|2026-11-25 01:02 UTC>"; sec != want {
		t.Errorf("section = %q, want %q", sec, want)
	}
	act, ok := m.Blocks[2].(*slack.ActionBlock)
	if !ok || len(act.Elements.ElementSet) != 2 {
		t.Fatalf("block 2 = %#v, want the actions", m.Blocks[2])
	}
	for i, want := range []string{"where pi-1", "health pi-1"} {
		b := act.Elements.ElementSet[i].(*slack.ButtonBlockElement)
		if b.ActionID != ActionRun || b.Value != want {
			t.Errorf("button %d: %s %q, want %s %q", i, b.ActionID, b.Value, ActionRun, want)
		}
	}
	ctx := m.Blocks[3].(*slack.ContextBlock).ContextElements.Elements[0].(*slack.TextBlockObject).Text
	if want := "at <!date^1795568523^{date_short_pretty} {time_secs}|2026-11-25 01:02:03 UTC>"; ctx != want {
		t.Errorf("context = %q, want %q", ctx, want)
	}
	if strings.ContainsAny(m.Text, "\uE000\uE001\uE002") {
		t.Errorf("fallback text holds marks: %q", m.Text)
	}
}

// TestRunButtonShowsAllItRuns: a button labelled with its command is
// offered only when the whole command fits on it; pressing a button must
// never run words the person could not read.
func TestRunButtonShowsAllItRuns(t *testing.T) {
	long := "health " + strings.Repeat("x", maxButtonText)
	b := actionBlock([]chat.Action{{Label: "where pi-1", Command: "where pi-1"}, {Label: long, Command: long}, {Label: "Health", Command: "health pi-1"}})
	a, ok := b.(*slack.ActionBlock)
	if !ok {
		t.Fatalf("got %T, want an action block", b)
	}
	var got []string
	for _, e := range a.Elements.ElementSet {
		got = append(got, e.(*slack.ButtonBlockElement).Value)
	}
	if strings.Join(got, "|") != "where pi-1|health pi-1" {
		t.Errorf("buttons run %q; want the long command left out", got)
	}
}
