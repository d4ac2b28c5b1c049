// Package cli implements the subcommands of the pifleet program. Each
// subcommand lives in its own file and registers itself in init, so adding
// one touches no other file.
package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/pifleet/pifleet/internal/flagenv"
)

// Env is what a subcommand gets from main.
type Env = flagenv.Env

// ErrUsage is returned for bad flags or arguments; the message has been
// printed already.
var ErrUsage = flagenv.ErrUsage

var commands = flagenv.Commands{}

func register(name, summary string, run flagenv.RunFunc) { commands.Register(name, summary, run) }

// Run runs the subcommand named by args[0].
func Run(ctx context.Context, env Env, args []string) error {
	switch {
	case len(args) == 0: // a usage error: the list goes to stderr
		usage(env.Stderr)
		return ErrUsage
	case args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || args[0] == "help":
		usage(env.Stdout) // asked for: output, exit 0
		return nil
	case args[0] == "--version" || args[0] == "-version":
		return runVersion(ctx, env, args[1:])
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(env.Stderr, "pifleet: unknown command %q (try: %s)\n", args[0], strings.Join(commands.Names(), ", "))
		return ErrUsage
	}
	return c.Run(ctx, env, args[1:])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: pifleet <command> [flags]")
	fmt.Fprintln(w)
	for _, n := range commands.Names() {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].Summary)
	}
	fmt.Fprintln(w, "\nRun 'pifleet <command> -h' for the flags of a command.")
}
