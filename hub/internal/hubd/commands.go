package hubd

// Signed cloud commands from the hub: the dispatcher behind the `aws`
// (and other configured tools') verbs of the command engine, and where
// results go that arrive after the answer.

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/pifleet/pifleet/hub/internal/dispatch"
	"github.com/pifleet/pifleet/hub/internal/fleetserver"
	"github.com/pifleet/pifleet/hub/internal/jobs"
	"github.com/pifleet/pifleet/hub/internal/slackbot"
	"github.com/pifleet/pifleet/internal/policy"
)

// CommandsConfig configures signed cloud commands (the --state-dir,
// --signing-key, --policy and --send-to-offline flags).
type CommandsConfig struct {
	StateDir     string // signing key and commands in flight, kept across a restart
	SigningKey   string // default <StateDir>/hub.key, created on first start
	Policy       string // tools and policy JSON; "": built-in aws tool, read-only
	AllowOffline bool   // send commands to Pis that are offline
}

// lazyJobs is the cluster's job store once the hub's engine runs (the
// dispatcher is built before).
type lazyJobs struct{ h *fleetserver.Hub }

var errNoJobs = errors.New("the shared job store is not open (the nats engine is not running)")

func (l lazyJobs) store() (*jobs.Store, error) {
	if s := l.h.Jobs(); s != nil {
		return s, nil
	}
	return nil, errNoJobs
}

func (l lazyJobs) Put(ctx context.Context, id string, rec []byte) error {
	s, err := l.store()
	if err != nil {
		return err
	}
	return s.Put(ctx, id, rec)
}

func (l lazyJobs) Get(ctx context.Context, id string) ([]byte, error) {
	s, err := l.store()
	if err != nil {
		return nil, err
	}
	return s.Get(ctx, id)
}

func (l lazyJobs) Claim(ctx context.Context, id, hub string) (bool, error) {
	s, err := l.store()
	if err != nil {
		return false, err
	}
	return s.Claim(ctx, id, hub)
}

func (l lazyJobs) Delete(ctx context.Context, id string) error {
	s, err := l.store()
	if err != nil {
		return err
	}
	return s.Delete(ctx, id)
}

// ClaimEvent takes a Slack event for this hub (slackbot.Config.Claim);
// before the store is open it fails, and the bot answers anyway.
func (l lazyJobs) ClaimEvent(ctx context.Context, key string) (bool, error) {
	s, err := l.store()
	if err != nil {
		return false, err
	}
	return s.ClaimEvent(ctx, key)
}

// AlertThread and SetAlertThread keep the Pis' Slack alert threads
// (slackbot.Config.Threads); before the store is open they fail, and the
// bot uses its own memory.
func (l lazyJobs) AlertThread(ctx context.Context, device string) ([]byte, error) {
	s, err := l.store()
	if err != nil {
		return nil, err
	}
	return s.AlertThread(ctx, device)
}

func (l lazyJobs) SetAlertThread(ctx context.Context, device string, rec []byte) error {
	s, err := l.store()
	if err != nil {
		return err
	}
	return s.SetAlertThread(ctx, device, rec)
}

// signingKey loads the hub's command-signing key (--signing-key, default
// <state-dir>/hub.key), making it on first start and saying so; c's
// SigningKey is set to the path used.
func signingKey(c *CommandsConfig, log *slog.Logger) (ed25519.PrivateKey, error) {
	if err := os.MkdirAll(c.StateDir, 0o750); err != nil {
		return nil, fmt.Errorf("--state-dir: %w", err)
	}
	if c.SigningKey == "" {
		c.SigningKey = filepath.Join(c.StateDir, "hub.key")
	}
	key, created, err := dispatch.LoadOrCreateKey(c.SigningKey)
	if err != nil {
		return nil, fmt.Errorf("--signing-key: %w", err)
	}
	if created {
		log.Info("created the command signing key; give agents its public key", "hub_key", dispatch.PublicKeyString(key), "file", c.SigningKey+".pub")
	}
	return key, nil
}

// wireCommands sets up the dispatcher. The returned lateResults takes the
// results that arrive after the answer; give it the Slack bot once it runs.
func wireCommands(c CommandsConfig, log *slog.Logger, h *fleetserver.Hub) (*lateResults, error) {
	key, err := signingKey(&c, log)
	if err != nil {
		return nil, err
	}
	pol, err := policy.Load(c.Policy)
	if err != nil {
		return nil, fmt.Errorf("--policy: %w", err)
	}
	late := &lateResults{log: log}
	var replyTo string
	var shared dispatch.JobStore
	if group := h.Group(); group != "" { // hubs of one cluster share results and jobs
		replyTo, shared = group, lazyJobs{h}
	}
	d, err := dispatch.New(dispatch.Options{Hub: h.ID(), Key: key, Fleet: dispatch.FromFleet(h.Fleet), Publisher: dispatch.Paho(h.MQTT),
		Policy: pol, AllowOffline: c.AllowOffline, ReplyTo: replyTo, Jobs: shared,
		Wait:         100 * time.Second, // under Slack's 2-minute limit
		StateFile:    filepath.Join(c.StateDir, "dispatch-"+h.ID()+".json"),
		OnLateResult: late.handle, Logger: log})
	if err != nil {
		return nil, err
	}
	h.OnConnect(d.Subscribe)
	h.AddStats("commands", func() any { return d.Stats() })
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
