// Command pifleet-agent runs on every Pi: it reports the Pi's addresses and
// health over MQTT and runs signed commands from the hub.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/pifleet/pifleet/agent/internal/cli"
	"github.com/pifleet/pifleet/internal/exitcode"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Run(ctx, cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}, os.Args[1:])
	stop()
	os.Exit(exitcode.Report(os.Stderr, "pifleet-agent", err))
}
