package cli

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/pifleet/pifleet/agent/internal/console"
	"github.com/pifleet/pifleet/internal/flagenv"
)

func init() {
	register("doctor", "check the UART console setup and print the exact fixes", runDoctor)
}

// runDoctor checks the serial console (UART, config.txt, cmdline.txt, the
// running kernel's command line, the getty, console logins) and prints
// OK/FIX per check. It fails when something needs fixing, so scripts and
// provisioning can stop on it.
func runDoctor(ctx context.Context, env Env, args []string) error {
	fs := flagenv.NewFlagSet("pifleet-agent doctor", "usage: pifleet-agent doctor [--root DIR] [--systemd=false]", "")
	root := fs.String("root", "/", "root directory of the Pi's files (a mounted SD card, or fixtures)")
	useSystemd := fs.Bool("systemd", true, "ask systemd about serial-getty@<tty>.service (only when --root is /)")
	if err := flagenv.Parse(fs, args, env); err != nil {
		return usageErr(err)
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return ErrUsage
	}
	opts := console.Options{Root: *root}
	if filepath.Clean(*root) == "/" && *useSystemd {
		opts.Systemd = console.Systemctl{}
	}
	r := console.NewWatcher(opts).Report(ctx)
	fmt.Fprintf(env.Stdout, "pifleet-agent doctor: serial console of %s\n\n", *root)
	console.WriteReport(env.Stdout, r)
	if n := r.Fixes(); n > 0 {
		return fmt.Errorf("doctor: %d console setting(s) need fixing", n)
	}
	return nil
}
