package cli

// The flags of signed cloud commands (hubd wires the dispatcher), and
// `pifleet keygen`.

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pifleet/pifleet/hub/internal/dispatch"
	"github.com/pifleet/pifleet/hub/internal/hubd"
	"github.com/pifleet/pifleet/internal/flagenv"
)

type commandFlags struct {
	signingKey, policy, stateDir string
	allowOff                     bool
}

// defaultStateDir is systemd's StateDirectory= when the hub runs as a unit,
// else ~/.local/state/pifleet.
func defaultStateDir() string {
	if d := os.Getenv("STATE_DIRECTORY"); d != "" {
		return d
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "pifleet")
	}
	return "."
}

func (c *commandFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.signingKey, "signing-key", "", "ed25519 key that signs commands (created 0600 on first start; agents take <file>.pub with --hub-key); default <state-dir>/hub.key")
	fs.StringVar(&c.policy, "policy", "", "tools and policy JSON shared with the agents (roles, users, aliases); empty: built-in aws tool, read-only")
	fs.StringVar(&c.stateDir, "state-dir", defaultStateDir(), "where the signing key and commands in flight are kept across a restart")
	fs.BoolVar(&c.allowOff, "send-to-offline", false, "send commands to Pis that are offline (they run only if back before the command expires)")
}

func (c *commandFlags) config() hubd.CommandsConfig {
	return hubd.CommandsConfig{StateDir: c.stateDir, SigningKey: c.signingKey, Policy: c.policy, AllowOffline: c.allowOff}
}

func init() {
	register("keygen", "create the hub's command signing key and print its public key", func(_ context.Context, env Env, args []string) error {
		fs := flagenv.NewFlagSet("pifleet keygen", "", "")
		path := fs.String("signing-key", filepath.Join(defaultStateDir(), "hub.key"), "where to write the key (0600); the public key goes to <file>.pub")
		if err := flagenv.Parse(fs, args, env); err != nil {
			return usageErr(err)
		}
		pub, err := dispatch.GenerateKey(*path)
		if err != nil {
			return err
		}
		fmt.Fprintln(env.Stdout, pub)
		return nil
	})
}
