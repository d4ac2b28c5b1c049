package cli

// Signed cloud commands: the command handler (signature, expiry, replay,
// policy) and the Docker runner behind it.

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/pifleet/pifleet/agent/internal/cmdexec"
	"github.com/pifleet/pifleet/agent/internal/daemon"
	"github.com/pifleet/pifleet/agent/internal/runner"
	"github.com/pifleet/pifleet/internal/policy"
)

type commandFlags struct {
	hubKeys, policy, network string
	timeout                  time.Duration
	concurrency              int
	allowPull                bool
}

func (c *commandFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.hubKeys, "hub-key", "", "hub public key(s) for signed commands: base64 keys or files, comma separated (empty: commands are disabled)")
	fs.StringVar(&c.policy, "policy", "", "tools and policy JSON (images, credential env file, aliases, roles); empty: built-in aws tool, read-only")
	fs.StringVar(&c.network, "docker-network", "bridge", "network mode of command containers (bridge, host, none)")
	fs.DurationVar(&c.timeout, "command-timeout", 60*time.Second, "longest run of one command; it is killed and removed after that")
	fs.IntVar(&c.concurrency, "command-concurrency", 2, "commands running at once")
	fs.BoolVar(&c.allowPull, "allow-pull", false, "pull a tool image that is missing (otherwise: a clear error)")
}

// commandHandler builds the handler, or nil when no hub key is configured.
// The returned func waits for running commands and closes the store; the
// tool names are reported in the status so hubs know what this Pi runs.
func (c *commandFlags) commandHandler(ctx context.Context, log *slog.Logger, id, dataDir string) (daemon.CommandHandler, func(), []string, error) {
	if strings.TrimSpace(c.hubKeys) == "" {
		log.Info("no --hub-key: cloud commands are disabled")
		return nil, func() {}, nil, nil
	}
	keys, err := cmdexec.LoadPublicKeys(splitList(c.hubKeys))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--hub-key: %w", err)
	}
	pol, err := policy.Load(c.policy)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--policy: %w", err)
	}
	store, err := cmdexec.OpenStore(filepath.Join(dataDir, "commands.db"))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--data-dir: %w", err)
	}
	// The runner's containers carry this device's id, so the sweep at
	// start removes only this agent's leftovers, never those of another
	// agent on the same Docker Engine (a test fleet, make run next to
	// the packaged agent).
	rn, err := runner.New(runner.Options{Network: c.network, Timeout: c.timeout, MaxConcurrent: c.concurrency, AllowPull: c.allowPull,
		Instance: id, Logger: log})
	if err != nil {
		store.Close()
		return nil, nil, nil, err
	}
	go func() {
		if n, err := rn.Sweep(ctx); err != nil {
			log.Warn("could not look for leftover command containers", "err", err)
		} else if n > 0 {
			log.Info("removed leftover command containers", "count", n)
		}
	}()
	h, err := cmdexec.New(cmdexec.Options{Device: id, Keys: keys, Store: store, Policy: pol, Runner: rn, Logger: log})
	if err != nil {
		rn.Close()
		store.Close()
		return nil, nil, nil, err
	}
	// The daemon has cancelled and waited for running commands (at most 10 s)
	// before this runs at exit.
	return h, func() { rn.Close(); store.Close() }, pol.ToolNames(), nil
}
