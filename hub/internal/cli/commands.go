package cli

// Signed cloud commands from the hub: the dispatcher behind the `aws`
// (and other configured tools') verbs of the command engine.

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/pifleet/pifleet/hub/internal/dispatch"
	"github.com/pifleet/pifleet/hub/internal/hubd"
	"github.com/pifleet/pifleet/hub/internal/slackbot"
	"github.com/pifleet/pifleet/internal/flagenv"
	"github.com/pifleet/pifleet/internal/policy"
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

// wireCommands sets up the dispatcher. The returned lateResults takes the
// results that arrive after the answer; give it the Slack bot once it runs.
func (c *commandFlags) wireCommands(log *slog.Logger, h *hubd.Hub) (*lateResults, error) {
	if err := os.MkdirAll(c.stateDir, 0o750); err != nil {
		return nil, fmt.Errorf("--state-dir: %w", err)
	}
	if c.signingKey == "" {
		c.signingKey = filepath.Join(c.stateDir, "hub.key")
	}
	key, created, err := dispatch.LoadOrCreateKey(c.signingKey)
	if err != nil {
		return nil, fmt.Errorf("--signing-key: %w", err)
	}
	if created {
		log.Info("created the command signing key; give agents its public key", "hub_key", dispatch.PublicKeyString(key), "file", c.signingKey+".pub")
	}
	pol, err := policy.Load(c.policy)
	if err != nil {
		return nil, fmt.Errorf("--policy: %w", err)
	}
	late := &lateResults{log: log}
	d, err := dispatch.New(dispatch.Options{Hub: h.ID(), Key: key, Fleet: dispatch.FromFleet(h.Fleet), Publisher: dispatch.Paho(h.MQTT),
		Policy: pol, AllowOffline: c.allowOff,
		Wait:         100 * time.Second, // under Slack's 2-minute limit
		StateFile:    filepath.Join(c.stateDir, "dispatch-"+h.ID()+".json"),
		OnLateResult: late.handle, Logger: log})
	if err != nil {
		return nil, err
	}
	h.OnConnect(d.Subscribe)
	h.AddStats("Commands", func() any { return d.Stats() })
	for _, tool := range pol.ToolNames() {
		h.Engine.Handle(tool, "run "+tool+" on Pis: "+tool+" <id|id,id|label|all> <arguments…> (read-only unless your role allows more)", d.ForTool(tool))
	}
	h.Engine.SetConfirmer(d)
	return late, nil
}

// lateResults takes the results that arrive after the dispatcher answered,
// or after a hub restart. Every one goes to the hub's log with who asked;
// one asked in Slack is also posted in the thread it was asked in (a slash
// command's: a new message in its channel) while the Slack bot runs.
// Results of HTTP and CLI requests are only logged: their answer has been
// sent and nobody listens any more.
type lateResults struct {
	log *slog.Logger

	mu    sync.Mutex
	slack latePoster // nil: Slack is off (or not started yet)
}

// latePoster is the Slack bot as lateResults sees it (*slackbot.Bot).
type latePoster interface {
	PostLate(slackbot.Late) bool
}

// useSlack sends Slack's late results to p from now on.
func (l *lateResults) useSlack(p latePoster) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.slack = p
}

// handle is dispatch.Options.OnLateResult. It never blocks (PostLate only
// queues).
func (l *lateResults) handle(r dispatch.Result) {
	l.mu.Lock()
	bot := l.slack
	l.mu.Unlock()
	attrs := []any{"id", r.ID, "device", r.Device, "tool", r.Tool, "outcome", r.Final.Outcome, "exit", r.Final.ExitCode,
		"asked_by", r.Request.User, "source", r.Request.Source, "channel", r.Request.Channel}
	if r.Request.Source == "slack" {
		switch {
		case bot == nil:
			attrs = append(attrs, "slack", "off: not posted")
		case bot.PostLate(slackbot.Late{Channel: r.Request.Channel, Thread: r.Request.Thread, User: r.Request.User,
			Command: r.Request.Text, Reply: dispatch.RenderLate(r, 0)}):
			attrs = append(attrs, "slack", "posting in the thread", "thread", r.Request.Thread)
		default:
			attrs = append(attrs, "slack", "not posted (see the slack log)")
		}
	}
	l.log.Info("late command result", attrs...)
}

func init() {
	register("keygen", "create the hub's command signing key and print its public key", func(_ context.Context, env Env, args []string) error {
		fs := flag.NewFlagSet("pifleet keygen", flag.ContinueOnError)
		fs.SetOutput(env.Stderr)
		path := fs.String("signing-key", filepath.Join(defaultStateDir(), "hub.key"), "where to write the key (0600); the public key goes to <file>.pub")
		if err := flagenv.Parse(fs, args, env.Stderr); err != nil {
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
