// Command pifleet is the operator side of pifleet: the hub, the fleet CLI
// and the rescue console.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/pifleet/pifleet/hub/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := cli.Run(ctx, cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}, os.Args[1:])
	switch {
	case err == nil, errors.Is(err, context.Canceled):
	case errors.Is(err, cli.ErrUsage):
		os.Exit(2)
	case errors.Is(err, cli.ErrSilent):
		os.Exit(1)
	default:
		fmt.Fprintln(os.Stderr, "pifleet:", err)
		os.Exit(1)
	}
}
