package blockkit

import (
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// node is one piece of formatted text. The template draws it; every string
// in it is raw text that html/template escapes.
type node struct {
	Kind  string // text, b, i, s, code, pre, quote, link, mention, date
	Text  string // text, code, mention, date: what is shown
	Href  string // link
	Title string // date: the fallback
	Kids  []node // b, i, s, pre, quote, link
}

// Slack escapes only these three in mrkdwn; "&amp;amp;" shows as "&amp;".
var unescape = strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">")

// plain turns a plain_text object into nodes: no formatting, :emoji: only
// when the object asks for it.
func plain(t Text) []node {
	s := t.Text
	if t.Emoji {
		s = emojify(s)
	}
	return []node{{Kind: "text", Text: s}}
}

// textNodes renders a text object by its type.
func textNodes(t Text) []node {
	if t.Type == "mrkdwn" {
		if t.Verbatim {
			return []node{{Kind: "text", Text: unescape.Replace(t.Text)}}
		}
		return mrkdwn(t.Text)
	}
	return plain(t)
}

// mrkdwn parses Slack's mrkdwn: ```pre``` blocks, "&gt; " quote lines,
// `code`, *bold*, _italic_, ~strike~, <links|…>, <@mentions>, <!date^…>
// tokens and :emoji: shortcodes.
func mrkdwn(s string) []node {
	var out []node
	for s != "" {
		i := strings.Index(s, "```")
		if i < 0 {
			break
		}
		j := strings.Index(s[i+3:], "```")
		if j < 0 {
			break
		}
		out = append(out, blockLines(strings.TrimSuffix(s[:i], "\n"))...)
		body := s[i+3 : i+3+j]
		body = strings.TrimPrefix(body, "\n")
		body = strings.TrimSuffix(body, "\n")
		out = append(out, node{Kind: "pre", Kids: literal(body)})
		s = strings.TrimPrefix(s[i+3+j+3:], "\n")
	}
	return append(out, blockLines(s)...)
}

// blockLines groups lines that start with "&gt;" (Slack's escaped ">")
// into quotes; the rest is inline text.
func blockLines(s string) []node {
	if s == "" {
		return nil
	}
	var out []node
	var run, quote []string
	flush := func() {
		if len(run) > 0 {
			out = append(out, inline(strings.Join(run, "\n"))...)
			run = nil
		}
		if len(quote) > 0 {
			out = append(out, node{Kind: "quote", Kids: inline(strings.Join(quote, "\n"))})
			quote = nil
		}
	}
	for _, line := range strings.Split(s, "\n") {
		if rest, ok := strings.CutPrefix(line, "&gt;"); ok {
			if len(run) > 0 {
				flush()
			}
			quote = append(quote, strings.TrimPrefix(rest, " "))
			continue
		}
		if len(quote) > 0 {
			flush()
		}
		run = append(run, line)
	}
	flush()
	return out
}

// literal is text with no formatting (inside ``` or `): tokens show by
// their label, entities are decoded, markers stay as they are.
func literal(s string) []node {
	var out []node
	var text strings.Builder
	for s != "" {
		if s[0] == '<' {
			if end := strings.IndexByte(s, '>'); end > 0 {
				n := token(s[1:end])
				text.WriteString(nodeText(n))
				s = s[end+1:]
				continue
			}
		}
		r, size := utf8.DecodeRuneInString(s)
		text.WriteRune(r)
		s = s[size:]
	}
	if text.Len() > 0 {
		out = append(out, node{Kind: "text", Text: unescape.Replace(text.String())})
	}
	return out
}

// nodeText is what a node shows, as plain text.
func nodeText(n node) string {
	if len(n.Kids) == 0 {
		return n.Text
	}
	var b strings.Builder
	for _, k := range n.Kids {
		b.WriteString(nodeText(k))
	}
	return b.String()
}

var markerKind = map[byte]string{'*': "b", '_': "i", '~': "s"}

// inline parses one stretch of text without pre blocks or quotes.
func inline(s string) []node {
	var out []node
	var text strings.Builder
	flushText := func() {
		if text.Len() > 0 {
			out = append(out, node{Kind: "text", Text: emojify(unescape.Replace(text.String()))})
			text.Reset()
		}
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '<':
			if end := strings.IndexByte(s[i:], '>'); end > 0 && !strings.Contains(s[i:i+end], "\n") {
				flushText()
				out = append(out, token(s[i+1:i+end]))
				i += end + 1
				continue
			}
		case c == '`':
			if end := strings.IndexByte(s[i+1:], '`'); end > 0 && !strings.Contains(s[i+1:i+1+end], "\n") {
				flushText()
				out = append(out, node{Kind: "code", Kids: literal(s[i+1 : i+1+end])})
				i += end + 2
				continue
			}
		case markerKind[c] != "" && opens(s, i):
			if end := closing(s, i); end > 0 {
				flushText()
				out = append(out, node{Kind: markerKind[c], Kids: inline(s[i+1 : end])})
				i = end + 1
				continue
			}
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		text.WriteRune(r)
		i += size
	}
	flushText()
	return out
}

// opens: a marker at i opens when it starts a word (start, space or
// punctuation before it) and text follows it.
func opens(s string, i int) bool {
	if i+1 >= len(s) || isSpace(s[i+1]) || s[i+1] == s[i] {
		return false
	}
	if i == 0 {
		return true
	}
	r, _ := utf8.DecodeLastRuneInString(s[:i])
	return !unicode.IsLetter(r) && !unicode.IsDigit(r)
}

// closing finds the marker that closes the one at i on the same line: text
// before it, a word end after it; <tokens> and `code` are skipped whole.
func closing(s string, i int) int {
	m := s[i]
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\n':
			return -1
		case '<':
			if end := strings.IndexByte(s[j:], '>'); end > 0 {
				j += end
			}
			continue
		case '`':
			if end := strings.IndexByte(s[j+1:], '`'); end > 0 {
				j += end + 1
			}
			continue
		}
		if s[j] != m || j == i+1 || isSpace(s[j-1]) {
			continue
		}
		if j+1 == len(s) {
			return j
		}
		r, _ := utf8.DecodeRuneInString(s[j+1:])
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			return j
		}
	}
	return -1
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' }

// token renders what is between < and >: a link, a mention, a date.
func token(t string) node {
	body, label, hasLabel := strings.Cut(t, "|")
	label = unescape.Replace(label)
	switch {
	case strings.HasPrefix(body, "@"):
		if hasLabel {
			return node{Kind: "mention", Text: "@" + label}
		}
		return node{Kind: "mention", Text: body}
	case strings.HasPrefix(body, "#"):
		if hasLabel {
			return node{Kind: "mention", Text: "#" + label}
		}
		return node{Kind: "mention", Text: body}
	case strings.HasPrefix(body, "!date^"):
		return date(body, label)
	case strings.HasPrefix(body, "!subteam^"):
		if hasLabel {
			return node{Kind: "mention", Text: label}
		}
		return node{Kind: "mention", Text: "@" + strings.TrimPrefix(body, "!subteam^")}
	case strings.HasPrefix(body, "!"):
		if hasLabel {
			return node{Kind: "mention", Text: label}
		}
		return node{Kind: "mention", Text: "@" + strings.TrimPrefix(body, "!")}
	}
	href := unescape.Replace(body)
	if !hasLabel {
		label = strings.TrimPrefix(href, "mailto:")
	}
	return node{Kind: "link", Href: href, Kids: []node{{Kind: "text", Text: label}}}
}

// date renders <!date^unix^format[^link]|fallback> as Slack would for a
// reader in UTC with a 24-hour clock; a format it cannot reproduce (such as
// {ago}, which changes with the time of reading) shows the fallback.
func date(body, fallback string) node {
	parts := strings.Split(body, "^")
	n := node{Kind: "date", Text: fallback, Title: fallback}
	if len(parts) < 3 {
		return n
	}
	sec, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return n
	}
	if s, ok := formatDate(time.Unix(sec, 0).UTC(), parts[2]); ok {
		n.Text = s
	}
	return n
}

var dateTokens = map[string]func(time.Time) string{
	"date_num":          func(t time.Time) string { return t.Format("2006-01-02") },
	"date":              func(t time.Time) string { return t.Format("January ") + ordinal(t.Day()) + t.Format(", 2006") },
	"date_short":        func(t time.Time) string { return t.Format("Jan 2, 2006") },
	"date_long":         func(t time.Time) string { return t.Format("Monday, January ") + ordinal(t.Day()) + t.Format(", 2006") },
	"date_pretty":       func(t time.Time) string { return t.Format("January ") + ordinal(t.Day()) + t.Format(", 2006") },
	"date_short_pretty": func(t time.Time) string { return t.Format("Jan 2, 2006") },
	"date_long_pretty":  func(t time.Time) string { return t.Format("Monday, January ") + ordinal(t.Day()) + t.Format(", 2006") },
	"time":              func(t time.Time) string { return t.Format("15:04") },
	"time_secs":         func(t time.Time) string { return t.Format("15:04:05") },
}

func formatDate(t time.Time, format string) (string, bool) {
	var b strings.Builder
	for format != "" {
		open := strings.IndexByte(format, '{')
		if open < 0 {
			b.WriteString(format)
			break
		}
		end := strings.IndexByte(format[open:], '}')
		if end < 0 {
			return "", false
		}
		f, ok := dateTokens[format[open+1:open+end]]
		if !ok {
			return "", false
		}
		b.WriteString(format[:open])
		b.WriteString(f(t))
		format = format[open+end+1:]
	}
	return unescape.Replace(b.String()), true
}

func ordinal(d int) string {
	suffix := "th"
	switch {
	case d%100 >= 11 && d%100 <= 13:
	case d%10 == 1:
		suffix = "st"
	case d%10 == 2:
		suffix = "nd"
	case d%10 == 3:
		suffix = "rd"
	}
	return strconv.Itoa(d) + suffix
}

// emojify replaces the :shortcodes: it knows by their emoji; unknown ones
// (and things like the ":db8:" of an IPv6 address) stay as they are.
func emojify(s string) string {
	if !strings.Contains(s, ":") {
		return s
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(s, ':')
		if i < 0 {
			break
		}
		j := strings.IndexByte(s[i+1:], ':')
		if j < 0 {
			break
		}
		if e, ok := emoji[s[i+1:i+1+j]]; ok {
			b.WriteString(s[:i])
			b.WriteString(e)
			s = s[i+1+j+1:]
			continue
		}
		b.WriteString(s[:i+1])
		s = s[i+1:]
	}
	b.WriteString(s)
	return b.String()
}
