// Package blockkit renders a Slack message (Block Kit blocks, fallback text
// and file summaries, the shape of slackbot's golden files) as HTML with
// Slack-like CSS, so every message the hub posts can be reviewed on a page
// and checked in a headless browser. It is standard library only and
// escapes everything: messages carry text from people and Pis.
package blockkit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// Message is one message as slackbot's golden files hold it: what would be
// posted, with the files that go with it summarised.
type Message struct {
	Text   string  `json:"text"`
	Blocks []Block `json:"blocks"`
	Files  []File  `json:"files,omitempty"`
}

// File is a file posted with a message, summarised.
type File struct {
	Name  string `json:"name"`
	Bytes int    `json:"bytes"`
	Lines int    `json:"lines"`
}

// Text is a Block Kit text object: plain_text or mrkdwn.
type Text struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	Emoji    bool   `json:"emoji,omitempty"`
	Verbatim bool   `json:"verbatim,omitempty"`
}

// Block is one Block Kit layout block. Only the fields of the block types
// this package draws are known; Decode refuses any other field, so a new
// kind of message cannot slip into the gallery half drawn.
type Block struct {
	Type      string    `json:"type"`
	BlockID   string    `json:"block_id,omitempty"`
	Text      *Text     `json:"text,omitempty"`
	Fields    []Text    `json:"fields,omitempty"`
	Accessory *Element  `json:"accessory,omitempty"`
	Elements  []Element `json:"elements,omitempty"`
	ImageURL  string    `json:"image_url,omitempty"`
	AltText   string    `json:"alt_text,omitempty"`
	Title     *Text     `json:"title,omitempty"`
}

// Element is an element of a context, actions or rich_text block, or a
// section's accessory: a text object, an image, a button or a rich text
// element.
type Element struct {
	Type     string      `json:"type"`
	Text     ElementText `json:"text"`
	Emoji    bool        `json:"emoji,omitempty"`
	Verbatim bool        `json:"verbatim,omitempty"`
	ActionID string      `json:"action_id,omitempty"`
	Value    string      `json:"value,omitempty"`
	URL      string      `json:"url,omitempty"`
	Style    any         `json:"style,omitempty"` // a button's "primary"/"danger"; rich text's {"bold": true, …}
	Confirm  *Confirm    `json:"confirm,omitempty"`
	ImageURL string      `json:"image_url,omitempty"`
	AltText  string      `json:"alt_text,omitempty"`
	Elements []Element   `json:"elements,omitempty"` // rich text sections, lists, quotes
	Indent   int         `json:"indent,omitempty"`
	Border   int         `json:"border,omitempty"`
	Name     string      `json:"name,omitempty"`    // emoji
	Unicode  string      `json:"unicode,omitempty"` // emoji
	UserID   string      `json:"user_id,omitempty"`
	Channel  string      `json:"channel_id,omitempty"`
}

// ElementText is an element's "text": a string for text objects and rich
// text, a plain_text object for buttons.
type ElementText struct {
	Plain  string
	Object *Text
}

// UnmarshalJSON takes either form.
func (t *ElementText) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &t.Plain)
	}
	if string(b) == "null" {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	t.Object = new(Text)
	return dec.Decode(t.Object)
}

// Confirm is a button's confirmation dialog.
type Confirm struct {
	Title   *Text  `json:"title"`
	Text    *Text  `json:"text"`
	Confirm *Text  `json:"confirm"`
	Deny    *Text  `json:"deny"`
	Style   string `json:"style,omitempty"`
}

// Decode reads one message. It refuses fields it does not know, so the
// gallery never shows a message with a part silently left out.
func Decode(r io.Reader) (Message, error) {
	var m Message
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Message{}, fmt.Errorf("decode a Slack message: %w", err)
	}
	return m, nil
}
