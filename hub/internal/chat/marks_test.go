package chat

import (
	"fmt"
	"testing"
	"time"
)

func TestMarksRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 25, 1, 2, 3, 0, time.UTC)
	s := "🟠 " + Bold("pi-02") + " " + Code("192.0.2.11") + " · seen " + At(at, "5s ago") + " · " + AtSeconds(at, "01:02:03Z")
	if got, want := Plain(s), "🟠 pi-02 192.0.2.11 · seen 5s ago · 01:02:03Z"; got != want {
		t.Errorf("Plain = %q, want %q", got, want)
	}
	got := Spans(s)
	want := []Span{{Kind: SpanText, Text: "🟠 "}, {Kind: SpanBold, Text: "pi-02"}, {Kind: SpanText, Text: " "}, {Kind: SpanCode, Text: "192.0.2.11"},
		{Kind: SpanText, Text: " · seen "}, {Kind: SpanTime, Text: "5s ago", At: at}, {Kind: SpanText, Text: " · "}, {Kind: SpanTime, Text: "01:02:03Z", At: at, Seconds: true}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Spans =\n  %v\nwant\n  %v", got, want)
	}
}

// TestMarksFromOutside: text from a Pi (an SSID, a label) that holds the
// mark characters cannot make a mark of its own or break one.
func TestMarksFromOutside(t *testing.T) {
	for _, in := range []string{"\uE000", "\uE001", "a\uE000b", "\uE000bx", "\uE000t12:m\uE002x\uE000\uE001", "\uE000tnope:m\uE002x\uE001", "\uE000q\uE001", "\uE000\uE001", "\uE002"} {
		for _, sp := range Spans(in) {
			if sp.Kind == SpanTime {
				t.Errorf("Spans(%q) made a time: %+v", in, sp)
			}
		}
		if p := Plain(in); p != Plain(p) {
			t.Errorf("Plain(%q) = %q still holds marks", in, p)
		}
	}
	if got := Plain(Bold("a\uE001b")); got != "ab" {
		t.Errorf("Bold let a closer through: %q", got)
	}
}

func TestReplyPlain(t *testing.T) {
	at := time.Unix(1700000000, 0)
	r := Reply{Title: Bold("x"), Text: "x", Context: "seen " + At(at, "just now"),
		Sections: []Section{{Text: Code("a"), Fields: []Field{{Label: Bold("l"), Value: At(at, "v")}}}}}
	p := r.Plain()
	if p.Title != "x" || p.Context != "seen just now" || p.Sections[0].Text != "a" || p.Sections[0].Fields[0] != (Field{"l", "v"}) {
		t.Errorf("Plain() = %+v", p)
	}
	if r.Sections[0].Text != Code("a") {
		t.Error("Plain changed the original reply")
	}
}

func FuzzSpans(f *testing.F) {
	f.Add("🟠 " + Bold("pi-02") + At(time.Unix(1, 0), "now"))
	f.Add("\uE000t1:s\uE002x\uE001\uE000")
	f.Fuzz(func(t *testing.T, s string) {
		p := Plain(s)
		if Plain(p) != p {
			t.Fatalf("Plain(%q) = %q is not plain", s, p)
		}
	})
}
