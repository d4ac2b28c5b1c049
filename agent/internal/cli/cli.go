// Package cli implements pifleet-agent's command line. With no subcommand
// (or only flags) the agent daemon runs; other subcommands (doctor,
// version, …) live in their own files and register themselves in init.
package cli

import (
	"context"
	"fmt"
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

// Run runs a subcommand, or the daemon when args start with a flag or are empty.
func Run(ctx context.Context, env Env, args []string) error {
	if len(args) == 1 && (args[0] == "--version" || args[0] == "-version") {
		return runVersion(ctx, env, nil)
	}
	if len(args) > 0 && args[0] == "help" {
		args = []string{"-h"}
	}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		c, ok := commands[args[0]]
		if !ok {
			fmt.Fprintf(env.Stderr, "pifleet-agent: unknown command %q (try: %s, or flags only to run the agent)\n", args[0], strings.Join(commands.Names(), ", "))
			return ErrUsage
		}
		return c.Run(ctx, env, args[1:])
	}
	return runDaemon(ctx, env, args)
}
