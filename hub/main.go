// Command pifleet is the operator side of pifleet: the hub, the fleet CLI
// and the rescue console.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/pifleet/pifleet/hub/internal/cli"
	"github.com/pifleet/pifleet/hub/internal/gctune"
	"github.com/pifleet/pifleet/internal/exitcode"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "hub" {
		gctune.Apply() // may re-execute this process with the hub's GC settings
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Run(ctx, cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}, os.Args[1:])
	stop()
	os.Exit(exitcode.Report(os.Stderr, "pifleet", err))
}
