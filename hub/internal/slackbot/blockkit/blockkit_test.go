package blockkit

import (
	"bytes"
	"html/template"
	"strings"
	"testing"
)

// fragment renders mrkdwn as the page would, without the page around it.
func fragment(t *testing.T, s string) string {
	t.Helper()
	var b strings.Builder
	if err := page.ExecuteTemplate(&b, "nodes", mrkdwn(s)); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestMrkdwn(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"*bold* and _italic_ and ~gone~", "<b>bold</b> and <i>italic</i> and <s>gone</s>"},
		{"*_both_*", "<b><i>both</i></b>"},
		{"pi_01_kitchen 2*3*4 * not *", "pi_01_kitchen 2*3*4 * not *"},
		{"*pi-07* lost", "<b>pi-07</b> lost"},
		{"run `aws *s3* ls` now", "run <code>aws *s3* ls</code> now"},
		{"```\nTime  Kind\n10:01 *x*\n```\nafter", "<pre>Time  Kind\n10:01 *x*</pre>after"},
		{"before\n```a```", "before<pre>a</pre>"},
		{"```unclosed", "```unclosed"},
		{"see <https://example.com/a?b=1&amp;c=2|the docs>", `see <a href="https://example.com/a?b=1&amp;c=2">the docs</a>`},
		{"<https://example.com>", `<a href="https://example.com">https://example.com</a>`},
		{"<mailto:ops@example.com|ops>", `<a href="mailto:ops@example.com">ops</a>`},
		{"<@U2> asked in <#C1|ops> <!here> <!subteam^S1|@oncall>", `<span class="mention">@U2</span> asked in <span class="mention">#ops</span> <span class="mention">@here</span> <span class="mention">@oncall</span>`},
		{"at <!date^1795615320^{time}|14:02 UTC>", `at <time title="14:02 UTC">14:02</time>`},
		{"<!date^1795615323^{date_short_pretty} {time_secs}|x>", `<time title="x">Nov 25, 2026 14:02:03</time>`},
		{"<!date^1795615323^{date_long}|x>", `<time title="x">Wednesday, November 25th, 2026</time>`},
		{"<!date^1795615323^{ago}|2h ago>", `<time title="2h ago">2h ago</time>`},
		{"<!date^nope^{time}|fallback>", `<time title="fallback">fallback</time>`},
		{":warning: :red_circle: 2001:db8::1 :no_such_emoji:", "⚠️ 🔴 2001:db8::1 :no_such_emoji:"},
		{"&gt; quoted *line*\nnot quoted", "<blockquote>quoted <b>line</b></blockquote>not quoted"},
		{"a &lt; b &amp;&amp; c &gt; d &amp;amp;", "a &lt; b &amp;&amp; c &gt; d &amp;amp;"},
	} {
		if got := fragment(t, c.in); got != c.want {
			t.Errorf("mrkdwn %q\ngot  %s\nwant %s", c.in, got, c.want)
		}
	}
}

func TestOrdinal(t *testing.T) {
	for d, want := range map[int]string{1: "1st", 2: "2nd", 3: "3rd", 4: "4th", 11: "11th", 12: "12th", 13: "13th", 21: "21st", 22: "22nd", 23: "23rd", 31: "31st"} {
		if got := ordinal(d); got != want {
			t.Errorf("ordinal(%d) = %q, want %q", d, got, want)
		}
	}
}

// hostile is text a person or a Pi could put in a message, in every place
// text goes: none of it may come out as markup.
const hostile = `<script>alert(1)</script> "><img src=x onerror=alert(1)> <style>*{}</style> javascript:alert(1)`

func TestHostileTextIsEscaped(t *testing.T) {
	slackEscaped := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(hostile)
	m := Message{
		Text: hostile,
		Blocks: []Block{
			{Type: "header", Text: &Text{Type: "plain_text", Text: hostile}},
			{Type: "section", Text: &Text{Type: "mrkdwn", Text: slackEscaped + " <javascript:alert(1)|click> <" + hostile + ">"},
				Fields:    []Text{{Type: "plain_text", Text: hostile}, {Type: "mrkdwn", Text: "```" + slackEscaped + "```"}},
				Accessory: &Element{Type: "button", Text: ElementText{Object: &Text{Type: "plain_text", Text: hostile}}}},
			{Type: "context", Elements: []Element{{Type: "mrkdwn", Text: ElementText{Plain: "`" + slackEscaped + "`"}}, {Type: "image", AltText: hostile}}},
			{Type: "actions", Elements: []Element{{Type: "button", Style: `primary" onclick="x`, Text: ElementText{Object: &Text{Type: "plain_text", Text: hostile}},
				Confirm: &Confirm{Title: &Text{Type: "plain_text", Text: hostile}, Text: &Text{Type: "mrkdwn", Text: slackEscaped}, Confirm: &Text{Text: hostile}, Deny: &Text{Text: hostile}, Style: `danger" x="`}}}},
			{Type: "rich_text", Elements: []Element{{Type: "rich_text_section", Elements: []Element{{Type: "text", Text: ElementText{Plain: hostile}}, {Type: "link", URL: "javascript:alert(1)", Text: ElementText{Plain: hostile}}}}}},
			{Type: hostile},
		},
		Files: []File{{Name: hostile}},
	}
	var b bytes.Buffer
	if err := Gallery(&b, Page{Title: hostile, Intro: hostile, Items: []Item{{Name: hostile, Message: m}}}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, bad := range []string{"<script", "<img", "<style>*", `href="javascript`, `" onclick`, `" x="`} {
		if strings.Contains(out, bad) {
			t.Errorf("hostile text came out as markup: %q in\n%s", bad, out)
		}
	}
	if n := strings.Count(out, "<style>"); n != 1 {
		t.Errorf("%d <style> elements, want the page's one", n)
	}
	if !strings.Contains(out, template.HTMLEscapeString("<script>alert(1)</script>")) {
		t.Errorf("the hostile text is not shown (escaped) at all:\n%s", out)
	}
}

func TestDecodeRefusesUnknownFields(t *testing.T) {
	for _, in := range []string{
		`{"text": "x", "attachments": []}`,
		`{"text": "x", "blocks": [{"type": "section", "new_field": 1}]}`,
		`{"text": "x", "blocks": [{"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "b", "new": 1}}]}]}`,
	} {
		if _, err := Decode(strings.NewReader(in)); err == nil {
			t.Errorf("Decode(%s) took a field it does not draw", in)
		}
	}
	m, err := Decode(strings.NewReader(`{"text": "x", "blocks": [{"type": "context", "elements": [{"type": "mrkdwn", "text": "*a*"}]}], "files": [{"name": "f.txt", "bytes": 2048, "lines": 3}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if m.Blocks[0].Elements[0].Text.Plain != "*a*" || m.Files[0].Lines != 3 {
		t.Errorf("decoded %+v", m)
	}
}

func TestRichTextAndFallback(t *testing.T) {
	m := Message{Blocks: []Block{{Type: "rich_text", Elements: []Element{
		{Type: "rich_text_section", Elements: []Element{
			{Type: "text", Text: ElementText{Plain: "hot "}, Style: map[string]any{"bold": true}},
			{Type: "emoji", Name: "fire"},
			{Type: "user", UserID: "U1"},
			{Type: "channel", Channel: "C1"},
			{Type: "link", URL: "https://example.com"},
		}},
		{Type: "rich_text_list", Style: "ordered", Elements: []Element{{Type: "rich_text_section", Elements: []Element{{Type: "text", Text: ElementText{Plain: "one"}, Style: map[string]any{"code": true}}}}}},
		{Type: "rich_text_preformatted", Elements: []Element{{Type: "text", Text: ElementText{Plain: "pre"}}}},
		{Type: "rich_text_quote", Elements: []Element{{Type: "text", Text: ElementText{Plain: "q"}}}},
	}}}}
	var b bytes.Buffer
	if err := Gallery(&b, Page{Items: []Item{{Name: "rich", Message: m}, {Name: "text only", Message: Message{Text: "*only* text"}}}}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"<b>hot </b>🔥",
		`<span class="mention">@U1</span><span class="mention">#C1</span><a href="https://example.com">https://example.com</a>`,
		"<ol><li><code>one</code></li></ol><pre>pre</pre><blockquote>q</blockquote>",
		`<div class="mrk"><b>only</b> text</div>`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s in\n%s", want, out)
		}
	}
	if got := size(2048) + " " + size(100) + " " + size(3*1024*1024/2); got != "2 KB 100 B 1.5 MB" {
		t.Errorf("sizes: %s", got)
	}
}
