package slackbot

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"github.com/pifleet/pifleet/hub/internal/chat"
	"github.com/pifleet/pifleet/hub/internal/fleet"
)

// Slack's Block Kit limits (https://api.slack.com/reference/block-kit), with
// a little headroom where the limit counts characters and we count bytes.
const (
	maxBlocks       = 50
	maxSectionText  = 2900 // limit 3000
	maxFieldText    = 1900 // limit 2000
	maxFields       = 10
	maxHeaderText   = 150
	maxContextText  = 1900
	maxFallbackText = 3000 // notification text; Slack advises ≤ 4000
	// maxInline is the most text an answer may carry inline: past it a
	// message is a wall, and a file reads better.
	maxInline = 12000
	// previewLines is how much of an overflowing answer is shown inline.
	previewLines = 15
)

// Action ids of the buttons: confirm and cancel of a pending action
// (issue 7: mutating cloud commands), and run, which asks its value (a
// chat.Action's command) as if the person who pressed it had typed it.
const (
	ActionConfirm = "pifleet_confirm"
	ActionCancel  = "pifleet_cancel"
	ActionRun     = "pifleet_run"
)

// Button limits: a button's text (75 characters) and value (2000).
const (
	maxButtonText  = 75
	maxButtonValue = 2000
)

// message is one Slack message as the adapter posts it: Block Kit, the
// plain-text fallback Slack shows in notifications, and files that follow
// in the message's thread.
type message struct {
	Text   string        `json:"text"`
	Blocks []slack.Block `json:"blocks"`
	Files  []chat.File   `json:"-"`
}

// options returns the chat.postMessage / chat.update options for m.
func (m message) options() []slack.MsgOption {
	return []slack.MsgOption{slack.MsgOptionText(m.Text, false), slack.MsgOptionBlocks(m.Blocks...)}
}

// render turns the engine's reply into a message. command names the file
// an overflowing answer is attached as.
func render(r chat.Reply, command string) message {
	full := fullText(r)
	m := message{Text: fallback(r, full), Files: r.Files}
	m.Blocks = replyBlocks(r)
	if len(m.Blocks) <= maxBlocks && inlineSize(r) <= maxInline {
		return m
	}
	// Too long for a message: a preview inline, the whole answer as a file.
	name := fileName(command)
	m.Blocks = overflowBlocks(r, full, name)
	m.Files = append([]chat.File{{Name: name, Content: full}}, r.Files...)
	return m
}

func replyBlocks(r chat.Reply) []slack.Block {
	var bs []slack.Block
	if r.Title != "" {
		bs = append(bs, header(r.Title, r.Problem))
	}
	if len(r.Sections) == 0 && r.Text != "" {
		text := body(r)
		if r.Problem && r.Title == "" {
			text = ":warning: " + text
		}
		bs = append(bs, textSections(esc(text), true)...)
	}
	for _, s := range r.Sections {
		bs = append(bs, sectionBlocks(s)...)
	}
	if len(r.Actions) > 0 {
		bs = append(bs, actionBlock(r.Actions))
	}
	if r.Confirm != nil {
		bs = append(bs, confirmBlocks(*r.Confirm)...)
	}
	if r.Context != "" {
		bs = append(bs, contextBlock(marked(r.Context)))
	}
	return bs
}

// body is the reply's text without its first line when that only says
// the title again (the header shows it).
func body(r chat.Reply) string {
	first, rest, _ := strings.Cut(r.Text, "\n")
	if title := chat.Plain(r.Title); title != "" && strings.Contains(first, title) && strings.TrimSpace(rest) != "" {
		return rest
	}
	return r.Text
}

func header(title string, problem bool) slack.Block {
	title = chat.Plain(title) // a header is plain text
	if problem {
		title = "⚠️ " + title
	}
	return slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, cut(title, maxHeaderText), true, false))
}

// marked is engine text with its marks (chat.Spans) as mrkdwn: ids bold,
// addresses as code, times as date tokens in the reader's zone; the rest
// escaped.
func marked(s string) string {
	var b strings.Builder
	for _, sp := range chat.Spans(s) {
		switch sp.Kind {
		case chat.SpanBold:
			b.WriteString("*" + esc(sp.Text) + "*")
		case chat.SpanCode:
			b.WriteString("`" + esc(sp.Text) + "`")
		case chat.SpanTime:
			b.WriteString(timeToken(sp.At, sp.Seconds))
		default:
			b.WriteString(esc(sp.Text))
		}
	}
	return b.String()
}

// timeToken is t as a Slack date token: "Today 14:03" (to the second
// with seconds) in the reader's own zone and clock, never stale; the
// fallback is UTC.
func timeToken(t time.Time, seconds bool) string {
	if seconds {
		return dateToken(t, "{date_short_pretty} {time_secs}", t.UTC().Format("2006-01-02 15:04:05 UTC"))
	}
	return dateToken(t, "{date_short_pretty} {time}", t.UTC().Format("2006-01-02 15:04 UTC"))
}

// dateToken is Slack's <!date^…> for t in format, with a fallback for
// clients that cannot draw it.
func dateToken(t time.Time, format, fallback string) string {
	return fmt.Sprintf("<!date^%d^%s|%s>", t.Unix(), format, esc(fallback))
}

// wholeIDs keeps the ids of a list whole on a phone: a line breaks at a
// hyphen ("pi-" here, "0007" on the next line) unless it is U+2011, the
// non-breaking hyphen, which reads the same. Text copied from Slack back
// into a command works: cleanText turns it back into "-". The notification
// text and the attached files keep plain hyphens.
func wholeIDs(s string) string { return strings.ReplaceAll(s, "-", "\u2011") }

// actionBlock is a row of buttons that each run their command for whoever
// presses them (onRun): a Pi's Where and Health, a "did you mean".
func actionBlock(actions []chat.Action) slack.Block {
	var els []slack.BlockElement
	for _, a := range actions {
		if a.Command == "" || len(a.Command) > maxButtonValue {
			continue
		}
		label := chat.Plain(a.Label)
		if label == "" {
			label = a.Command
		}
		if label == a.Command && cut(label, maxButtonText) != label {
			// The button would run more than the person can read on it.
			continue
		}
		els = append(els, slack.NewButtonBlockElement(ActionRun, a.Command, slack.NewTextBlockObject(slack.PlainTextType, cut(label, maxButtonText), false, false)))
	}
	return slack.NewActionBlock("", els...)
}

// sectionBlocks renders one chat.Section (its text may carry marks); long
// text and more than ten fields spill into further section blocks, and
// its actions follow as buttons.
func sectionBlocks(s chat.Section) []slack.Block {
	var bs []slack.Block
	if s.Text != "" {
		if preformatted(chat.Plain(s.Text)) {
			bs = textSections(esc(chat.Plain(s.Text)), true) // a table: no marks inside a code block
		} else {
			bs = textSections(marked(s.Text), false)
		}
	}
	fields := s.Fields
	for len(fields) > 0 {
		n := min(len(fields), maxFields)
		var objs []*slack.TextBlockObject
		for _, f := range fields[:n] {
			objs = append(objs, mrkdwn(cut("*"+esc(chat.Plain(f.Label))+"*\n"+marked(f.Value), maxFieldText)))
		}
		fields = fields[n:]
		bs = append(bs, slack.NewSectionBlock(nil, objs, nil))
	}
	if len(s.Actions) > 0 {
		bs = append(bs, actionBlock(s.Actions))
	}
	return bs
}

// textSections renders mrkdwn as one or more sections, each under the
// section limit, split at line ends. With table, aligned columns (a table)
// are kept in a code block so they stay aligned.
func textSections(text string, table bool) []slack.Block {
	text = strings.TrimRight(text, " \n")
	pre := table && preformatted(text)
	limit := maxSectionText
	if pre {
		limit -= 8 // the ``` fences
	}
	var bs []slack.Block
	for _, chunk := range splitLines(text, limit) {
		if pre {
			chunk = "```\n" + chunk + "\n```"
		}
		bs = append(bs, slack.NewSectionBlock(mrkdwn(chunk), nil, nil))
	}
	return bs
}

func confirmBlocks(c chat.Confirm) []slack.Block {
	// Slack shows a confirm dialog before the button's action is sent: a
	// changing command needs two deliberate clicks.
	dialog := slack.NewConfirmationBlockObject(
		slack.NewTextBlockObject(slack.PlainTextType, "Run this on the Pis?", false, false),
		slack.NewTextBlockObject(slack.MarkdownType, cut(esc(c.Summary), 300), false, false),
		slack.NewTextBlockObject(slack.PlainTextType, "Run it", false, false),
		slack.NewTextBlockObject(slack.PlainTextType, "Don't", false, false))
	dialog = dialog.WithStyle(slack.StyleDanger)
	// Red, not green: only commands that change things ask (stop-instances).
	// The summary is in the message's text already: not printed twice.
	confirm := slack.NewButtonBlockElement(ActionConfirm, c.Token, slack.NewTextBlockObject(slack.PlainTextType, "Confirm", false, false)).
		WithStyle(slack.StyleDanger).WithConfirm(dialog)
	cancel := slack.NewButtonBlockElement(ActionCancel, c.Token, slack.NewTextBlockObject(slack.PlainTextType, "Cancel", false, false))
	return []slack.Block{slack.NewActionBlock("pifleet_confirm_actions", confirm, cancel)}
}

// withContext adds a context line to m within the block limit: as a new
// block while there is room, else into the last context block.
func (m message) withContext(text string) message {
	blocks := append([]slack.Block(nil), m.Blocks...)
	if len(blocks) < maxBlocks {
		m.Blocks = append(blocks, contextBlock(text))
		return m
	}
	if last, ok := blocks[len(blocks)-1].(*slack.ContextBlock); ok && len(last.ContextElements.Elements) < 10 {
		merged := *last
		merged.ContextElements.Elements = append(append([]slack.MixedElement(nil), last.ContextElements.Elements...), mrkdwn(cut(text, maxContextText)))
		blocks[len(blocks)-1] = &merged
		m.Blocks = blocks
		return m
	}
	blocks[len(blocks)-1] = contextBlock(text)
	m.Blocks = blocks
	return m
}

// withHeading puts a context line above m's blocks (who asked what, for
// an answer that is not under the question); with no room left it goes
// at the end instead.
func (m message) withHeading(text string) message {
	if len(m.Blocks) >= maxBlocks {
		return m.withContext(text)
	}
	m.Blocks = append([]slack.Block{contextBlock(text)}, m.Blocks...)
	return m
}

func contextBlock(text string) slack.Block {
	return slack.NewContextBlock("", mrkdwn(cut(text, maxContextText)))
}

func overflowBlocks(r chat.Reply, full, name string) []slack.Block {
	var bs []slack.Block
	if r.Title != "" {
		bs = append(bs, header(r.Title, r.Problem))
	}
	lines := strings.Count(strings.TrimRight(full, "\n"), "\n") + 1
	// The preview leaves out the title line the header already shows.
	shown := full
	if first, rest, ok := strings.Cut(full, "\n"); ok && r.Title != "" && strings.Contains(first, chat.Plain(r.Title)) {
		shown = rest
	}
	preview := strings.SplitN(shown, "\n", previewLines+1)
	if len(preview) > previewLines {
		preview = preview[:previewLines]
	}
	bs = append(bs, slack.NewSectionBlock(mrkdwn("```\n"+cut(esc(strings.Join(preview, "\n")), maxSectionText-8)+"\n```"), nil, nil))
	note := fmt.Sprintf("Too long for a message: above are the first %d of %s lines; the whole answer is attached below as `%s`.", len(preview), fleet.Thousands(lines), name)
	// The reply's own context line describes the whole answer: it is in
	// the file when the file was written from the sections, else it
	// follows the note.
	if ctx := chat.Plain(r.Context); ctx != "" && !strings.Contains(full, ctx) {
		note += " · " + marked(r.Context)
	}
	bs = append(bs, contextBlock(note))
	if r.Confirm != nil {
		bs = append(bs, confirmBlocks(*r.Confirm)...)
	}
	return bs
}

// fullText is the answer as plain text: the engine's Text, or the sections
// written out when it gave none.
func fullText(r chat.Reply) string {
	if r.Text != "" {
		return r.Text
	}
	r = r.Plain()
	var b strings.Builder
	if r.Title != "" {
		b.WriteString(r.Title + "\n")
	}
	for _, s := range r.Sections {
		if s.Text != "" {
			b.WriteString(s.Text + "\n")
		}
		for _, f := range s.Fields {
			fmt.Fprintf(&b, "%s: %s\n", f.Label, f.Value)
		}
	}
	if r.Context != "" {
		b.WriteString(r.Context + "\n")
	}
	return strings.TrimRight(b.String(), "\n")
}

func fallback(r chat.Reply, full string) string {
	text := full
	first, _, _ := strings.Cut(r.Text, "\n")
	if title := chat.Plain(r.Title); title != "" && r.Text != "" && !strings.Contains(first, title) {
		text = title + "\n" + text
	}
	if len(text) > maxFallbackText {
		text = cut(text, maxFallbackText-len(" (truncated)")) + " (truncated)"
	}
	return esc(text)
}

// inlineSize is roughly how many characters the message shows.
func inlineSize(r chat.Reply) int {
	n := len(r.Title) + len(r.Context)
	if len(r.Sections) == 0 {
		n += len(r.Text)
	}
	for _, s := range r.Sections {
		n += len(s.Text)
		for _, f := range s.Fields {
			n += len(f.Label) + len(f.Value)
		}
	}
	return n
}

var unsafeName = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

func fileName(command string) string {
	words := strings.Fields(command)
	if len(words) > 2 {
		words = words[:2]
	}
	base := strings.Trim(unsafeName.ReplaceAllString(strings.Join(words, "-"), "_"), "_.-")
	if base == "" {
		base = "answer"
	}
	return "pifleet-" + cut(base, 40) + ".txt"
}

func mrkdwn(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, s, false, false)
}

// esc escapes the three characters Slack's mrkdwn treats as markup. Engine
// text is plain (the CLI and HTTP API show it as is), so it is escaped
// whole: a device named "<b>" shows as <b>.
func esc(s string) string { return escaper.Replace(s) }

var escaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// cut shortens s to at most n bytes on a rune boundary, marking the cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	n -= len("…")
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// splitLines splits s into chunks of at most n bytes, at line ends where it
// can and inside a too-long line where it must.
func splitLines(s string, n int) []string {
	var chunks []string
	var cur strings.Builder
	flush := func() {
		if cur.Len() > 0 {
			chunks = append(chunks, cur.String())
			cur.Reset()
		}
	}
	for _, line := range strings.Split(s, "\n") {
		for len(line) > n {
			flush()
			i := n
			for i > 0 && !utf8.RuneStart(line[i]) {
				i--
			}
			chunks = append(chunks, line[:i])
			line = line[i:]
		}
		extra := len(line)
		if cur.Len() > 0 {
			extra++
		}
		if cur.Len()+extra > n {
			flush()
		}
		if cur.Len() > 0 {
			cur.WriteByte('\n')
		}
		cur.WriteString(line)
	}
	flush()
	return chunks
}

var alignedColumns = regexp.MustCompile(`\S  +\S`)

// preformatted reports whether text looks like a table (columns aligned
// with runs of spaces) that needs a fixed-width font to stay readable.
func preformatted(text string) bool {
	if strings.Contains(text, "```") || !strings.Contains(text, "\n") {
		return false
	}
	return alignedColumns.MatchString(text)
}

// renderWorking is the placeholder of a slow answer; status is the latest
// progress line, if any.
func renderWorking(command, status string) message {
	line := fmt.Sprintf(":hourglass_flowing_sand: Working on `%s`…", esc(cut(command, 200)))
	if status != "" {
		line += "\n" + esc(cut(status, 1000))
	}
	return message{Text: "Working on " + esc(cut(command, 200)) + "…", Blocks: []slack.Block{slack.NewSectionBlock(mrkdwn(line), nil, nil)}}
}

// renderNote is a one-line message (refusals, errors, button outcomes).
func renderNote(text string) message {
	return message{Text: text, Blocks: []slack.Block{slack.NewSectionBlock(mrkdwn(cut(text, maxSectionText)), nil, nil)}}
}
