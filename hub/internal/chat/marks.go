package chat

import (
	"strconv"
	"strings"
	"time"
)

// Marks: the engine's answers are plain text, and the text of Title,
// Sections and Context may carry a few inline marks that each adapter
// draws its own way: a device id in bold, an address as code, and a time.
// A time is the one that matters: Slack shows it as a date token in the
// reader's own time zone, one that never goes stale in the channel
// ("last seen 12s ago" would), while the CLI and the HTTP API get the
// plain words the engine chose when it answered ("12s ago",
// "2026-11-25 01:02:03Z"). Reply.Text never carries marks.
//
// A mark is delimited by characters from Unicode's private use area that
// no device id, address or time can contain:
//
//	U+E000 kind payload U+E001
//
// with kind 'b' (bold), 'c' (code) or 't' (time: the Unix second, ':',
// the style 'm' or 's', U+E002, then the plain words). Spans reads them
// back; a malformed mark is read as its text.
const (
	markOpen  = '\uE000'
	markClose = '\uE001'
	markSep   = '\uE002'
)

// SpanKind is what a Span is.
type SpanKind int

// Kinds of Span.
const (
	SpanText SpanKind = iota
	SpanBold
	SpanCode
	SpanTime
)

// Span is a run of text of one kind. A SpanTime has At and Seconds (show
// the seconds); its Text is the plain words.
type Span struct {
	Kind    SpanKind
	Text    string
	At      time.Time
	Seconds bool
}

var unmark = strings.NewReplacer(string(markOpen), "", string(markClose), "", string(markSep), "")

// Bold marks s (a device id) as bold.
func Bold(s string) string { return string(markOpen) + "b" + unmark.Replace(s) + string(markClose) }

// Code marks s (an address, a command) as code.
func Code(s string) string { return string(markOpen) + "c" + unmark.Replace(s) + string(markClose) }

// At marks the time t, to the minute; plain is how the CLI and the API
// show it.
func At(t time.Time, plain string) string { return timeMark(t, 'm', plain) }

// AtSeconds marks the time t, to the second.
func AtSeconds(t time.Time, plain string) string { return timeMark(t, 's', plain) }

func timeMark(t time.Time, style byte, plain string) string {
	return string(markOpen) + "t" + strconv.FormatInt(t.Unix(), 10) + ":" + string(style) + string(markSep) + unmark.Replace(plain) + string(markClose)
}

// Spans splits s into its text and its marks.
func Spans(s string) []Span {
	var out []Span
	var text strings.Builder
	flush := func() {
		if text.Len() > 0 {
			out = append(out, Span{Kind: SpanText, Text: text.String()})
			text.Reset()
		}
	}
	for s != "" {
		i := strings.IndexRune(s, markOpen)
		if i < 0 {
			text.WriteString(unmark.Replace(s))
			break
		}
		text.WriteString(unmark.Replace(s[:i]))
		s = s[i+len(string(markOpen)):]
		end := strings.IndexRune(s, markClose)
		if end < 0 {
			continue // a lone opener: text
		}
		if sp, ok := readMark(s[:end]); ok {
			flush()
			out = append(out, sp)
			s = s[end+len(string(markClose)):]
		}
	}
	flush()
	return out
}

// readMark reads the inside of one mark.
func readMark(m string) (Span, bool) {
	if m == "" || strings.ContainsRune(m, markOpen) {
		return Span{}, false
	}
	body := m[1:]
	switch m[0] {
	case 'b':
		return Span{Kind: SpanBold, Text: body}, !strings.ContainsRune(body, markSep)
	case 'c':
		return Span{Kind: SpanCode, Text: body}, !strings.ContainsRune(body, markSep)
	case 't':
		head, plain, ok := strings.Cut(body, string(markSep))
		unix, style, ok2 := strings.Cut(head, ":")
		sec, err := strconv.ParseInt(unix, 10, 64)
		if !ok || !ok2 || err != nil || (style != "m" && style != "s") || strings.ContainsRune(plain, markSep) {
			return Span{}, false
		}
		return Span{Kind: SpanTime, Text: plain, At: time.Unix(sec, 0).UTC(), Seconds: style == "s"}, true
	}
	return Span{}, false
}

// Plain is s with its marks as plain words.
func Plain(s string) string {
	if !strings.ContainsAny(s, string([]rune{markOpen, markClose, markSep})) {
		return s
	}
	var b strings.Builder
	for _, sp := range Spans(s) {
		b.WriteString(sp.Text)
	}
	return b.String()
}

// Plain returns the reply with every mark as plain words, for front ends
// that show text as it is (the HTTP API's JSON).
func (r Reply) Plain() Reply {
	r.Title, r.Text, r.Context = Plain(r.Title), Plain(r.Text), Plain(r.Context)
	secs := make([]Section, len(r.Sections))
	for i, s := range r.Sections {
		s.Text = Plain(s.Text)
		fields := make([]Field, len(s.Fields))
		for j, f := range s.Fields {
			fields[j] = Field{Label: Plain(f.Label), Value: Plain(f.Value)}
		}
		if s.Fields == nil {
			fields = nil
		}
		s.Fields = fields
		secs[i] = s
	}
	if r.Sections == nil {
		secs = nil
	}
	r.Sections = secs
	return r
}
