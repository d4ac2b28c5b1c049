package chat

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pifleet/pifleet/hub/internal/fleet"
	"github.com/pifleet/pifleet/internal/shellwords"
	"github.com/pifleet/pifleet/internal/wire"
)

// Request is one question from a person.
type Request struct {
	Text    string
	User    string // who asks (Slack user id, "http", local user)
	Channel string // where (Slack channel id), may be empty
	Source  string // "slack", "http", "cli"
	// Thread is the Slack thread (its ts) the answer goes to, so that a
	// result arriving after the answer can follow it there. Empty for HTTP
	// and the CLI, and for a slash command, whose answer is a new message
	// in Channel.
	Thread string
}

// Handler answers a verb that another package provides (e.g. "aws").
// args are the words after the verb, split with shell-like quoting.
type Handler interface {
	Handle(ctx context.Context, req Request, args []string) Reply
}

// Confirmer completes an action a person approved (a Reply.Confirm token).
type Confirmer interface {
	Confirm(ctx context.Context, user, token string) Reply
}

// Engine answers requests from the fleet view.
type Engine struct {
	fleet    *fleet.Fleet
	now      func() time.Time
	handlers map[string]registered
	confirm  Confirmer
}

type registered struct {
	h       Handler
	summary string
}

// New returns an engine over f. now defaults to time.Now.
func New(f *fleet.Fleet, now func() time.Time) *Engine {
	if now == nil {
		now = time.Now
	}
	return &Engine{fleet: f, now: now, handlers: map[string]registered{}}
}

// Handle registers h for verb; summary is its line in help.
func (e *Engine) Handle(verb, summary string, h Handler) {
	e.handlers[verb] = registered{h, summary}
}

// SetConfirmer sets who completes confirmed actions.
func (e *Engine) SetConfirmer(c Confirmer) { e.confirm = c }

// Confirm completes an approved action.
func (e *Engine) Confirm(ctx context.Context, user, token string) Reply {
	if e.confirm == nil {
		return problem("Nothing is waiting for a confirmation.")
	}
	return e.confirm.Confirm(ctx, user, token)
}

// builtin commands: name → (usage, summary, run).
type builtin struct {
	usage, summary string
	run            func(e *Engine, args []string) Reply
}

var builtins map[string]builtin

func init() {
	builtins = map[string]builtin{
		"help":    {"help", "this list", (*Engine).help},
		"fleet":   {"fleet [online | offline | problems | label:NAME]", "the devices, their addresses and health", (*Engine).fleetCmd},
		"where":   {"where <id>", "the addresses of one device", (*Engine).where},
		"health":  {"health <id>", "everything the device reports about its health", (*Engine).health},
		"history": {"history <id>", "recent state and health changes of one device", (*Engine).history},
	}
}

// MaxInput bounds the text of a request.
const MaxInput = 4000

// Ask answers one request. It never panics on odd text; everything it
// does not understand gets a helpful answer.
func (e *Engine) Ask(ctx context.Context, r Request) Reply {
	if len(r.Text) > MaxInput {
		return problem(fmt.Sprintf("That request is %d characters long; I take at most %d.", len(r.Text), MaxInput))
	}
	words, err := shellwords.Split(r.Text)
	if err != nil {
		return problem(fmt.Sprintf("I could not read that: %v.", err))
	}
	if len(words) == 0 {
		return e.help(nil)
	}
	verb := strings.ToLower(words[0])
	if b, ok := builtins[verb]; ok {
		return b.run(e, words[1:])
	}
	if h, ok := e.handlers[verb]; ok {
		return h.h.Handle(ctx, r, words[1:])
	}
	msg := fmt.Sprintf("I don't know %q.", words[0])
	var try []Action
	if best := fleet.Closest(verb, e.verbs()); best != "" {
		msg += fmt.Sprintf(" Did you mean %q?", best)
		try = tryAction(shellwords.Join(append([]string{best}, words[1:]...)))
	}
	rep := problem(msg + " Try `help`.")
	rep.Actions = try
	return rep
}

// tryAction offers a corrected command as a button.
func tryAction(command string) []Action { return []Action{{Label: command, Command: command}} }

// DeviceActions are the buttons every message about one Pi offers (a
// fleet line, an alert): its addresses and its health.
func DeviceActions(id string) []Action {
	return []Action{{Label: "Where", Command: "where " + id}, {Label: "Health", Command: "health " + id}}
}

func (e *Engine) verbs() []string {
	var v []string
	for k := range builtins {
		v = append(v, k)
	}
	for k := range e.handlers {
		v = append(v, k)
	}
	sort.Strings(v)
	return v
}

func problem(text string) Reply { return Reply{Text: text, Problem: true} }

// help lists the commands: in Slack one per line at full width (a
// half-width field broke "[online | offline …]" mid-word on a phone).
func (e *Engine) help([]string) Reply {
	type cmd struct{ usage, summary string }
	var cmds []cmd
	width := 0
	for _, v := range e.verbs() {
		c := cmd{v + " …", ""}
		if bi, ok := builtins[v]; ok {
			c = cmd{bi.usage, bi.summary}
		} else {
			c.summary = e.handlers[v].summary
		}
		cmds = append(cmds, c)
		width = max(width, utf8.RuneCountInString(c.usage))
	}
	var b strings.Builder
	b.WriteString("Commands:\n")
	var lines []string
	for _, c := range cmds {
		fmt.Fprintf(&b, "  %-*s  %s\n", width, c.usage, c.summary) // the CLI's columns
		verb, rest, _ := strings.Cut(c.usage, " ")
		lines = append(lines, strings.TrimSpace(Bold(verb)+" "+rest)+" — "+c.summary)
	}
	return Reply{Text: b.String(), Title: "pifleet commands", Sections: []Section{{Text: strings.Join(lines, "\n")}}}
}

// oneID checks that args name exactly one known device.
func (e *Engine) oneID(verb string, args []string) (fleet.Device, *Reply) {
	if len(args) == 0 {
		r := problem(fmt.Sprintf("Which Pi? Usage: %s", builtins[verb].usage))
		return fleet.Device{}, &r
	}
	if len(args) > 1 {
		// Say what happened to the rest ("where pi-kitchen; rm -rf /"):
		// nothing, and nothing ran.
		id := strings.TrimRight(args[0], ";&|")
		rest := "the other word was"
		if len(args) > 2 {
			rest = fmt.Sprintf("the other %d words were", len(args)-1)
		}
		r := problem(fmt.Sprintf("`%s` takes one Pi id; %s ignored and nothing was run (pifleet never hands chat text to a shell). Try `%s %s`.",
			verb, rest, verb, id))
		if wire.IDProblem(id) == "" {
			r.Actions = tryAction(verb + " " + id)
		}
		return fleet.Device{}, &r
	}
	d, ok := e.fleet.Get(args[0])
	if !ok {
		r := problem(sentence(e.fleet.UnknownID(args[0]).Error()))
		if best := e.fleet.Suggest(args[0]); best != "" {
			r.Actions = tryAction(verb + " " + best)
		}
		return fleet.Device{}, &r
	}
	return d, nil
}

// sentence ends s with a full stop unless it ends with punctuation.
func sentence(s string) string {
	if strings.HasSuffix(s, ".") || strings.HasSuffix(s, "?") || strings.HasSuffix(s, "!") {
		return s
	}
	return s + "."
}
