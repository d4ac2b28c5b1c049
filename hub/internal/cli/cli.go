// Package cli implements the subcommands of the pifleet program. Each
// subcommand lives in its own file and registers itself in init, so adding
// one touches no other file.
package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Env is what a subcommand gets from main.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env Env, args []string) error
}

var commands = map[string]command{}

func register(name, summary string, run func(ctx context.Context, env Env, args []string) error) {
	commands[name] = command{name, summary, run}
}

// ErrUsage is returned for bad flags or arguments; the message has been
// printed already.
var ErrUsage = fmt.Errorf("usage")

// Run runs the subcommand named by args[0].
func Run(ctx context.Context, env Env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(env.Stderr)
		if len(args) == 0 {
			return ErrUsage
		}
		return nil
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(env.Stderr, "pifleet: unknown command %q (try: %s)\n", args[0], strings.Join(names(), ", "))
		return ErrUsage
	}
	return c.run(ctx, env, args[1:])
}

func names() []string {
	var n []string
	for k := range commands {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: pifleet <command> [flags]")
	fmt.Fprintln(w)
	for _, n := range names() {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'pifleet <command> -h' for the flags of a command.")
}
