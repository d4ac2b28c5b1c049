package chat

// Reply is the engine's answer, structured so that each adapter renders it
// in its own way: the HTTP API and CLI use Text; Slack renders Title,
// Sections, Actions and Context as Block Kit with Text as the fallback,
// and sends Files as uploads in the thread. Title, Sections and Context
// may carry marks (see Spans); Text is plain.
type Reply struct {
	Text     string    `json:"text"`
	Title    string    `json:"title,omitempty"`
	Sections []Section `json:"sections,omitempty"`
	// Actions are commands offered as buttons under the sections ("did
	// you mean pi-kitchen?").
	Actions []Action `json:"actions,omitempty"`
	Context string   `json:"context,omitempty"`
	Files   []File   `json:"files,omitempty"`
	// Problem marks answers about an error (unknown command, unknown id).
	Problem bool `json:"problem,omitempty"`
	// Confirm, when set, asks the person to confirm before the engine acts
	// (a mutating cloud command): adapters show a button that calls
	// Engine.Confirm with Token.
	Confirm *Confirm `json:"confirm,omitempty"`
}

// Section is a block of text with optional two-column fields, and the
// commands it offers as buttons (a Pi's Where and Health).
type Section struct {
	Text    string   `json:"text,omitempty"`
	Fields  []Field  `json:"fields,omitempty"`
	Actions []Action `json:"actions,omitempty"`
}

// Action is a command offered as a button: pressing it asks Command as if
// the person who pressed it had typed it (the same checks, the same
// answer). Label is the button's text.
type Action struct {
	Label   string `json:"label"`
	Command string `json:"command"`
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
