package cli

// The flags of signed cloud commands: the command handler (signature,
// expiry, replay, policy) and the Docker runner behind it, which the
// daemon assembles.

import (
	"flag"
	"time"

	"github.com/pifleet/pifleet/agent/internal/daemon"
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

func (c *commandFlags) config() daemon.CommandsConfig {
	return daemon.CommandsConfig{HubKeys: splitList(c.hubKeys), Policy: c.policy, Network: c.network,
		Timeout: c.timeout, Concurrency: c.concurrency, AllowPull: c.allowPull}
}
