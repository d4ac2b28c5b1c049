package chat

// Reply is the engine's answer, structured so that each adapter renders it
// in its own way: the HTTP API and CLI use Text; Slack renders Title,
// Sections and Context as Block Kit with Text as the fallback, and sends
// Files as uploads in the thread.
type Reply struct {
	Text     string    `json:"text"`
	Title    string    `json:"title,omitempty"`
	Sections []Section `json:"sections,omitempty"`
	Context  string    `json:"context,omitempty"`
	Files    []File    `json:"files,omitempty"`
	// Problem marks answers about an error (unknown command, unknown id).
	Problem bool `json:"problem,omitempty"`
	// Confirm, when set, asks the person to confirm before the engine acts
	// (a mutating cloud command): adapters show a button that calls
	// Engine.Confirm with Token.
	Confirm *Confirm `json:"confirm,omitempty"`
}

// Section is a block of text with optional two-column fields.
type Section struct {
	Text   string  `json:"text,omitempty"`
	Fields []Field `json:"fields,omitempty"`
}

// Field is a label and its value.
type Field struct {
	Label string `json:"label"`
	Value string `json:"value"`
}

// File is a long answer sent as a file (Slack limits message length).
type File struct {
	Name    string `json:"name"`
	Content string `json:"content"`
}

// Confirm describes a pending action waiting for a person's approval.
type Confirm struct {
	Token   string `json:"token"`
	Summary string `json:"summary"`
}
