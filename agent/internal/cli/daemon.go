package cli

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/pifleet/pifleet/agent/internal/console"
	"github.com/pifleet/pifleet/agent/internal/daemon"
	"github.com/pifleet/pifleet/internal/flagenv"
	"github.com/pifleet/pifleet/internal/link"
	"github.com/pifleet/pifleet/internal/transport"
	"github.com/pifleet/pifleet/internal/wire"
)

// Version is stamped at build time with -ldflags "-X ...cli.Version=v1.2.3".
var Version = "dev"

// daemonFlags are the agent's flags. Every flag can also come from the
// environment as PIFLEET_AGENT_<NAME> (upper case, '-' → '_'), which is
// how /etc/default/pifleet-agent configures the systemd unit.
type daemonFlags struct {
	brokers   string
	id        string
	heartbeat time.Duration
	minGap    time.Duration
	keepalive time.Duration
	labels    string
	logLevel  string

	consoleRepair bool
	consoleIssue  string

	dataDir      string
	statusLED    string
	hotC         float64
	expectDocker bool
}

func (f *daemonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.brokers, "broker", "mqtt://127.0.0.1:1883", "MQTT broker URL(s), comma separated, tried in order (mqtt://, mqtts://)")
	fs.StringVar(&f.id, "id", "", "device id (default: the host name, sanitized)")
	fs.DurationVar(&f.heartbeat, "heartbeat", 30*time.Second, "status heartbeat interval")
	fs.DurationVar(&f.minGap, "min-interval", 500*time.Millisecond, "shortest time between two status reports; changes in between are coalesced")
	fs.DurationVar(&f.keepalive, "keepalive", 10*time.Second, "MQTT keepalive (at least 2s); the broker declares the agent lost after 1.5x this")
	fs.StringVar(&f.labels, "labels", "", "comma-separated labels for targeting (e.g. lab,floor2)")
	fs.BoolVar(&f.consoleRepair, "console-repair", false, "restart serial-getty@<tty>.service when it is failed or inactive (at most every 5 minutes)")
	fs.StringVar(&f.consoleIssue, "console-issue", console.DefaultIssuePath, "agetty issue snippet with this Pi's addresses, shown above login: on the serial console (off or empty: none)")
	fs.StringVar(&f.dataDir, "data-dir", "/var/lib/pifleet-agent", "the agent's data directory (command store); its disk use is reported too")
	fs.StringVar(&f.statusLED, "status-led", "", "GPIO pin of a status LED, e.g. GPIO17 (default: off)")
	fs.Float64Var(&f.hotC, "hot-c", 80, "SoC temperature (°C) from which the Pi counts as hot")
	fs.BoolVar(&f.expectDocker, "expect-docker", false, "count a missing Docker daemon as a health problem")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
}

// agentEnvPrefix + the flag's name in upper case sets a flag of the agent
// (/etc/default/pifleet-agent).
const agentEnvPrefix = "PIFLEET_AGENT_"

// agentSynopsis heads `pifleet-agent -h`: how to run the daemon, and the
// subcommands.
func agentSynopsis() string {
	var b strings.Builder
	b.WriteString("usage: pifleet-agent [flags]        run the agent\n       pifleet-agent <command> [flags]\n\ncommands:\n")
	for _, n := range commands.Names() {
		fmt.Fprintf(&b, "  %-10s %s\n", n, commands[n].Summary)
	}
	b.WriteString("\nRun 'pifleet-agent <command> -h' for the flags of a command.")
	return b.String()
}

func runDaemon(ctx context.Context, env Env, args []string) error {
	var f daemonFlags
	fs := flagenv.NewFlagSet("pifleet-agent", agentSynopsis(), agentEnvPrefix)
	f.register(fs)
	var cf commandFlags
	cf.register(fs) // --hub-key --policy --docker-network … (commands.go)
	var topts transport.Options
	topts.RegisterFlags(fs) // --ca-file --cert-file --key-file --username --password-file --server-name
	if err := flagenv.Parse(fs, args, env); err != nil {
		return usageErr(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.Stderr, "pifleet-agent: unexpected argument %q\n", fs.Arg(0))
		return ErrUsage
	}
	if err := flagenv.Apply(fs, env.Getenv, agentEnvPrefix); err != nil {
		return err
	}
	log, err := flagenv.NewLogger(env.Stderr, f.logLevel)
	if err != nil {
		return err
	}
	cfg, err := f.config(cf, topts, log)
	if err != nil {
		return err
	}
	d, err := daemon.New(cfg)
	if err != nil {
		return err
	}
	return d.Run(ctx)
}

// config turns the flags into the daemon's Config.
func (f *daemonFlags) config(cf commandFlags, topts transport.Options, log *slog.Logger) (daemon.Config, error) {
	hostname, _ := os.Hostname()
	id := f.id
	if id == "" {
		id = wire.SanitizeID(hostname)
	}
	if err := wire.ValidateID(id); err != nil {
		return daemon.Config{}, fmt.Errorf("--id: %w", err)
	}
	if topts.PasswordFile != "" && topts.Username == "" {
		topts.Username = id // devices log in as their id
	}
	if f.keepalive < link.MinKeepAlive {
		return daemon.Config{}, fmt.Errorf("--keepalive %v is too short: at least %v (brokers drop healthy clients below that)", f.keepalive, link.MinKeepAlive)
	}
	if f.heartbeat < time.Second {
		return daemon.Config{}, fmt.Errorf("--heartbeat %v is too short: at least 1s", f.heartbeat)
	}
	brokers := splitList(f.brokers)
	for _, b := range brokers {
		// A mistake no retry fixes (no scheme, a wrong one, no host, a
		// bad port, plaintext off this machine) ends the agent with one
		// line, instead of a reconnect loop that never succeeds.
		if !strings.Contains(b, "://") {
			return daemon.Config{}, fmt.Errorf("--broker %q: want a URL such as mqtt://host:1883", b)
		}
		if _, err := topts.CheckBroker(b); err != nil {
			return daemon.Config{}, fmt.Errorf("--broker: %w", err)
		}
	}
	return daemon.Config{
		Link:          link.Options{Brokers: brokers, ID: id, KeepAlive: f.keepalive, Configure: topts.Apply},
		Hostname:      hostname,
		Version:       Version,
		Labels:        splitList(f.labels),
		Heartbeat:     f.heartbeat,
		MinInterval:   f.minGap,
		DataDir:       f.dataDir,
		HotC:          f.hotC,
		ExpectDocker:  f.expectDocker,
		ConsoleRepair: f.consoleRepair,
		ConsoleIssue:  f.consoleIssue,
		StatusLED:     f.statusLED,
		Cmds:          cf.config(),
		Logger:        log,
	}, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func init() {
	register("version", "print the agent version (also: pifleet-agent --version)", runVersion)
}

func runVersion(_ context.Context, env Env, args []string) error {
	fs := flagenv.NewFlagSet("pifleet-agent version", "usage: pifleet-agent version (or pifleet-agent --version)", "")
	if err := flagenv.Parse(fs, args, env); err != nil {
		return usageErr(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.Stderr, "pifleet-agent version: unexpected argument %q\n", fs.Arg(0))
		return ErrUsage
	}
	fmt.Fprintf(env.Stdout, "pifleet-agent %s (protocol v%d)\n", Version, wire.ProtocolVersion)
	return nil
}

// usageErr maps flagenv.Parse's error to the command's: nil after -h.
func usageErr(err error) error { return flagenv.UsageErr(err) }
