package daemon

// The agent's parts as the flags configure them: the senses (addresses,
// health with the serial console), the console banner, the status LED and
// the command handler with its container runner.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/pifleet/pifleet/agent/internal/cmdexec"
	"github.com/pifleet/pifleet/agent/internal/console"
	"github.com/pifleet/pifleet/agent/internal/health"
	"github.com/pifleet/pifleet/agent/internal/health/statusled"
	"github.com/pifleet/pifleet/agent/internal/netwatch"
	"github.com/pifleet/pifleet/agent/internal/runner"
	"github.com/pifleet/pifleet/internal/policy"
	"github.com/pifleet/pifleet/internal/wire"
)

// CommandsConfig configures signed cloud commands (the --hub-key,
// --policy, --docker-network, --command-* and --allow-pull flags).
type CommandsConfig struct {
	HubKeys     []string // base64 keys or files; none: commands are disabled
	Policy      string   // tools and policy JSON; "": built-in aws tool, read-only
	Network     string   // network mode of command containers
	Timeout     time.Duration
	Concurrency int
	AllowPull   bool
}

// senses returns the netlink address watcher (polling fallback built in)
// and the health probe registry with the serial console's probe, reading
// the real system.
func senses(cfg Config) (AddrSource, *health.Collector) {
	addrs := netwatch.New(netwatch.Options{Logger: cfg.Logger})
	dataDir, _ := filepath.Abs(cfg.DataDir) // health reads paths under its root
	if _, err := os.Stat(dataDir); err != nil {
		dataDir = "" // not created yet (commands disabled): report / only
	}
	probes := health.New(health.Options{Logger: cfg.Logger, DataDir: dataDir, HotC: cfg.HotC, ExpectDocker: cfg.ExpectDocker})
	probes.Register("console", consoleProbe(cfg.Logger, cfg.ConsoleRepair))
	return addrs, probes
}

// consoleProbe reports the UART console (getty, config, logins) in
// Health.Console; the full check runs at most once a minute.
func consoleProbe(log *slog.Logger, repair bool) health.ProbeFunc {
	cw := console.NewWatcher(console.Options{Systemd: console.Systemctl{}, Repair: repair, Logger: log})
	return func(ctx context.Context, h *wire.Health) error {
		c, problems := cw.Check(ctx)
		if c.TTY == "" {
			return health.ErrAbsent // not a Pi, or no serial0
		}
		h.Console = &c
		h.Problems = append(h.Problems, problems...)
		return nil
	}
}

// banner keeps the agetty issue snippet up to date with every status the
// daemon builds, logging each distinct error once (not every 5 s).
type banner struct {
	b       *console.Banner
	log     *slog.Logger
	lastErr string
}

// newBanner returns nil when path is "off" or empty (an EnvironmentFile
// cannot set an empty value, so "off" says it there).
func newBanner(log *slog.Logger, path string, reload func(context.Context) error) *banner {
	if path == "" || path == "off" {
		return nil
	}
	return &banner{b: &console.Banner{Path: path, Logger: log, Reload: reload}, log: log}
}

func (b *banner) update(ctx context.Context, st wire.Status, hubConnected bool) {
	_, err := b.b.Update(ctx, console.BannerInfo{Hostname: st.Hostname, Addresses: st.Addresses,
		HubConnected: hubConnected, Problems: st.Health.Problems})
	switch msg := fmt.Sprint(err); {
	case err == nil:
		b.lastErr = ""
	case msg != b.lastErr:
		b.log.Warn("console banner", "path", b.b.Path, "err", err)
		b.lastErr = msg
	}
}

// remove takes the banner off the console on a clean stop, so the last
// addresses do not stay there as if the agent still ran.
func (b *banner) remove(ctx context.Context) {
	if err := b.b.Remove(ctx); err != nil {
		b.log.Warn("console banner", "path", b.b.Path, "err", err)
	}
}

// openStatusLED opens the optional status LED on a GPIO pin; nil when
// pin is "".
func openStatusLED(pin string) (*statusled.LED, error) {
	if pin == "" {
		return nil, nil
	}
	out, err := statusled.Open(pin)
	if err != nil {
		return nil, fmt.Errorf("--status-led %s: %w", pin, err)
	}
	return statusled.New(out), nil
}

// commands builds the command handler, or nil when no hub key is
// configured. close waits for nothing (the daemon has cancelled and waited
// for running commands by then) and closes the runner and the store; sweep
// removes this agent's leftover containers. The tool names are reported in
// the status so hubs know what this Pi runs.
type commands struct {
	handler CommandHandler
	tools   []string
	sweep   func(ctx context.Context)
	close   func()
}

func newCommands(c CommandsConfig, log *slog.Logger, id, dataDir string) (commands, error) {
	none := commands{sweep: func(context.Context) {}, close: func() {}}
	if len(c.HubKeys) == 0 {
		log.Info("no --hub-key: cloud commands are disabled")
		return none, nil
	}
	keys, err := cmdexec.LoadPublicKeys(c.HubKeys)
	if err != nil {
		return none, fmt.Errorf("--hub-key: %w", err)
	}
	pol, err := policy.Load(c.Policy)
	if err != nil {
		return none, fmt.Errorf("--policy: %w", err)
	}
	store, err := cmdexec.OpenStore(filepath.Join(dataDir, "commands.db"))
	if err != nil {
		return none, fmt.Errorf("--data-dir: %w", err)
	}
	cmdexec.LogRecovery(log, store)
	// The runner's containers carry this device's id, so the sweep at
	// start removes only this agent's leftovers, never those of another
	// agent on the same Docker Engine (a test fleet, make run next to
	// the packaged agent).
	rn, err := runner.New(runner.Options{Network: c.Network, Timeout: c.Timeout, MaxConcurrent: c.Concurrency, AllowPull: c.AllowPull,
		Instance: id, Logger: log})
	if err != nil {
		store.Close()
		return none, err
	}
	h, err := cmdexec.New(cmdexec.Options{Device: id, Keys: keys, Store: store, Policy: pol, Runner: rn, Logger: log})
	if err != nil {
		rn.Close()
		store.Close()
		return none, err
	}
	sweep := func(ctx context.Context) {
		if n, err := rn.Sweep(ctx); err != nil {
			log.Warn("could not look for leftover command containers", "err", err)
		} else if n > 0 {
			log.Info("removed leftover command containers", "count", n)
		}
	}
	closeAll := func() {
		log.Info("command intake totals", "commands", &h.Stats) // how a flood on the command topic went
		rn.Close()
		store.Close()
	}
	return commands{handler: h, tools: pol.ToolNames(), sweep: sweep, close: closeAll}, nil
}
