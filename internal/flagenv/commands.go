package flagenv

import (
	"context"
	"io"
	"sort"

	"github.com/pifleet/pifleet/internal/exitcode"
)

// Env is what a subcommand gets from main: its standard streams and the
// environment (injectable, so tests run commands in-process).
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
}

// ErrUsage is returned for bad flags or arguments; the message has been
// printed already, so main exits with status 2 and prints nothing more.
var ErrUsage = exitcode.Printed(2, "usage")

// RunFunc runs one subcommand with the arguments after its name.
type RunFunc func(ctx context.Context, env Env, args []string) error

// Command is one registered subcommand.
type Command struct {
	Summary string
	Run     RunFunc
}

// Commands is a program's subcommands; each registers itself from its
// own file's init, so adding one touches no other file.
type Commands map[string]Command

// Register adds a subcommand.
func (c Commands) Register(name, summary string, run RunFunc) {
	c[name] = Command{Summary: summary, Run: run}
}

// Names lists the subcommands, sorted.
func (c Commands) Names() []string {
	n := make([]string, 0, len(c))
	for k := range c {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}
