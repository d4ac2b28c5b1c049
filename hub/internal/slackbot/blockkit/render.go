package blockkit

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"strings"
)

// Page is a gallery: messages one under the other, each under its name.
type Page struct {
	Title string
	Intro string // one paragraph under the title: where the page comes from
	Items []Item
}

// Item is one message of a gallery.
type Item struct {
	Name    string // shown above the message and its anchor (#name)
	Message Message
}

// Gallery writes the page as one self-contained HTML document: no script,
// no request of its own (a Content-Security-Policy says so), CSS inline.
func Gallery(w io.Writer, p Page) error {
	v := pageView{Title: p.Title, Intro: p.Intro, CSS: template.CSS(css)}
	for _, it := range p.Items {
		v.Items = append(v.Items, messageView(it))
	}
	return page.Execute(w, v)
}

//go:embed slack.css
var css string

//go:embed gallery.html.tmpl
var pageTemplate string

var page = template.Must(template.New("page").Parse(pageTemplate))

type pageView struct {
	Title, Intro string
	CSS          template.CSS
	Items        []itemView
}

type itemView struct {
	Name     string
	Fallback string
	Blocks   []blockView
	Files    []fileView
}

type blockView struct {
	Type        string
	Text        []node     // header, section, rich_text
	Fields      [][]node   // section
	Accessory   *elemView  // section
	Elements    []elemView // context, actions
	Alt         string     // image
	Unsupported bool       // drawn as a visible "not drawn" box
}

type elemView struct {
	Kind    string // text, image, button
	Text    []node
	Style   string // button: primary, danger
	Alt     string // image
	Confirm *confirmView
}

type confirmView struct {
	Title, Text   []node
	Confirm, Deny string
	Style         string
}

type fileView struct {
	Name, Size string
	Lines      int
}

func messageView(it Item) itemView {
	v := itemView{Name: it.Name, Fallback: it.Message.Text}
	for _, b := range it.Message.Blocks {
		v.Blocks = append(v.Blocks, blockViewOf(b))
	}
	if len(it.Message.Blocks) == 0 && it.Message.Text != "" {
		v.Blocks = append(v.Blocks, blockView{Type: "section", Text: mrkdwn(it.Message.Text)})
	}
	for _, f := range it.Message.Files {
		v.Files = append(v.Files, fileView{Name: f.Name, Size: size(f.Bytes), Lines: f.Lines})
	}
	return v
}

func blockViewOf(b Block) blockView {
	v := blockView{Type: b.Type}
	switch b.Type {
	case "header":
		if b.Text != nil {
			v.Text = plain(*b.Text)
		}
	case "section":
		if b.Text != nil {
			v.Text = textNodes(*b.Text)
		}
		for _, f := range b.Fields {
			v.Fields = append(v.Fields, textNodes(f))
		}
		if b.Accessory != nil {
			e := elemViewOf(*b.Accessory)
			v.Accessory = &e
		}
	case "context", "actions":
		for _, e := range b.Elements {
			v.Elements = append(v.Elements, elemViewOf(e))
		}
	case "divider":
	case "image":
		v.Alt = b.AltText
	case "rich_text":
		v.Text = richText(b.Elements)
	default:
		v.Unsupported = true
	}
	return v
}

func elemViewOf(e Element) elemView {
	switch e.Type {
	case "mrkdwn", "plain_text":
		return elemView{Kind: "text", Text: textNodes(Text{Type: e.Type, Text: e.Text.Plain, Emoji: e.Emoji, Verbatim: e.Verbatim})}
	case "image":
		return elemView{Kind: "image", Alt: e.AltText}
	case "button":
		v := elemView{Kind: "button"}
		if e.Text.Object != nil {
			v.Text = plain(*e.Text.Object)
		}
		if s, ok := e.Style.(string); ok && (s == "primary" || s == "danger") {
			v.Style = s
		}
		if c := e.Confirm; c != nil {
			cv := &confirmView{Style: c.Style}
			if c.Title != nil {
				cv.Title = plain(*c.Title)
			}
			if c.Text != nil {
				cv.Text = textNodes(*c.Text)
			}
			cv.Confirm, cv.Deny = "Confirm", "Cancel" // Slack's defaults
			if c.Confirm != nil {
				cv.Confirm = c.Confirm.Text
			}
			if c.Deny != nil {
				cv.Deny = c.Deny.Text
			}
			v.Confirm = cv
		}
		return v
	}
	return elemView{Kind: "unsupported", Text: []node{{Kind: "text", Text: e.Type}}}
}

// richText turns a rich_text block's elements into nodes.
func richText(elems []Element) []node {
	var out []node
	for _, e := range elems {
		switch e.Type {
		case "rich_text_section":
			out = append(out, richInline(e.Elements)...)
		case "rich_text_preformatted":
			out = append(out, node{Kind: "pre", Kids: richInline(e.Elements)})
		case "rich_text_quote":
			out = append(out, node{Kind: "quote", Kids: richInline(e.Elements)})
		case "rich_text_list":
			list := node{Kind: "ul"}
			if s, _ := e.Style.(string); s == "ordered" {
				list.Kind = "ol"
			}
			for _, item := range e.Elements {
				list.Kids = append(list.Kids, node{Kind: "li", Kids: richText([]Element{item})})
			}
			out = append(out, list)
		default:
			out = append(out, richInline([]Element{e})...)
		}
	}
	return out
}

// richInline renders rich text leaves: text with its style, links, emoji,
// mentions.
func richInline(elems []Element) []node {
	var out []node
	for _, e := range elems {
		var n node
		switch e.Type {
		case "text":
			n = node{Kind: "text", Text: e.Text.Plain}
		case "link":
			label := e.Text.Plain
			if label == "" {
				label = e.URL
			}
			n = node{Kind: "link", Href: e.URL, Kids: []node{{Kind: "text", Text: label}}}
		case "emoji":
			n = node{Kind: "text", Text: emojify(":" + e.Name + ":")}
		case "user":
			n = node{Kind: "mention", Text: "@" + e.UserID}
		case "channel":
			n = node{Kind: "mention", Text: "#" + e.Channel}
		default:
			n = node{Kind: "text", Text: e.Text.Plain}
		}
		if st, ok := e.Style.(map[string]any); ok {
			for _, k := range []string{"code", "strike", "italic", "bold"} {
				if on, _ := st[k].(bool); on {
					n = node{Kind: map[string]string{"code": "code", "strike": "s", "italic": "i", "bold": "b"}[k], Kids: []node{n}}
				}
			}
		}
		out = append(out, n)
	}
	return out
}

// size is a file size as Slack shows it.
func size(b int) string {
	switch {
	case b < 1024:
		return fmt.Sprintf("%d B", b)
	case b < 1024*1024:
		return strings.TrimSuffix(fmt.Sprintf("%.1f", float64(b)/1024), ".0") + " KB"
	}
	return strings.TrimSuffix(fmt.Sprintf("%.1f", float64(b)/(1024*1024)), ".0") + " MB"
}
