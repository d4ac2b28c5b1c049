// Command pifleet-agent runs on every Pi: it reports the Pi's addresses and
// health over MQTT and runs signed commands from the hub.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/pifleet/pifleet/agent/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := cli.Run(ctx, cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}, os.Args[1:])
	if err != nil && !errors.Is(err, context.Canceled) {
		if !errors.Is(err, cli.ErrUsage) {
			fmt.Fprintln(os.Stderr, "pifleet-agent:", err)
		}
		os.Exit(exitCode(err))
	}
}

func exitCode(err error) int {
	var ec interface{ ExitCode() int }
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	if errors.Is(err, cli.ErrUsage) {
		return 2
	}
	return 1
}
