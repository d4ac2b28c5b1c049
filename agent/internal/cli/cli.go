// Package cli implements pifleet-agent's command line. With no subcommand
// (or only flags) the agent daemon runs; other subcommands (doctor,
// version, …) live in their own files and register themselves in init.
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
	summary string
	run     func(ctx context.Context, env Env, args []string) error
}

var commands = map[string]command{}

func register(name, summary string, run func(ctx context.Context, env Env, args []string) error) {
	commands[name] = command{summary, run}
}

// ErrUsage is returned for bad flags or arguments; the message has been
// printed already.
var ErrUsage = fmt.Errorf("usage")

// Run runs a subcommand, or the daemon when args start with a flag or are empty.
func Run(ctx context.Context, env Env, args []string) error {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		c, ok := commands[args[0]]
		if !ok {
			fmt.Fprintf(env.Stderr, "pifleet-agent: unknown command %q (try: %s, or flags only to run the agent)\n", args[0], strings.Join(names(), ", "))
			return ErrUsage
		}
		return c.run(ctx, env, args[1:])
	}
	return runDaemon(ctx, env, args)
}

func names() []string {
	var n []string
	for k := range commands {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}
