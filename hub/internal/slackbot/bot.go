package slackbot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"github.com/pifleet/pifleet/hub/internal/alerts"
	"github.com/pifleet/pifleet/hub/internal/chat"
	"github.com/pifleet/pifleet/internal/loglimit"
)

// Asker is the command engine as the adapter sees it (chat.Engine
// implements it). Tests use a fake.
type Asker interface {
	Ask(ctx context.Context, r chat.Request) chat.Reply
	Confirm(ctx context.Context, user, token string) chat.Reply
}

// ProgressAsker is optionally implemented by an Asker whose commands can
// report progress (chat.Status: each Pi running or done). The adapter
// shows the latest status as one line in the placeholder of a slow
// answer, editing it no more often than Config.UpdateInterval; progress
// may be called from any goroutine, never blocks, and must not be called
// after AskProgress returns. *chat.Engine implements it.
type ProgressAsker interface {
	AskProgress(ctx context.Context, r chat.Request, progress func(chat.Status)) chat.Reply
}

var _ ProgressAsker = (*chat.Engine)(nil)

// Bot is the Slack adapter: one Socket Mode connection, serving commands
// and posting alerts until Run's context ends.
type Bot struct {
	cfg    Config
	log    *slog.Logger
	asker  Asker
	alerts AlertSource
	policy *alerts.Policy // nil: no alert channel or no source

	api   *slack.Client
	sm    *socketmode.Client
	seen  *seenSet
	pace  *pacer
	auth  *authorizer
	audit *auditLog
	acks  *ackWatch

	claimLog loglimit.Limit // warnings about failed shared claims

	threads *threads // each Pi's alert thread (threads.go)

	botUser atomic.Value // string: the bot's own user id, from auth.test

	runCtx    context.Context // Run's context, for the handlers
	mu        sync.Mutex
	stopping  bool
	inflight  sync.WaitGroup
	late      chan Late // PostLate → postLates
	lateState int       // lateBefore, lateOpen, lateClosed; under mu

	stats counters
}

// New checks cfg, loads the tokens and prepares a Bot; it does not connect
// (Run does). alerts may be nil. Errors never contain a token.
func New(cfg Config, asker Asker, alerts AlertSource, log *slog.Logger) (*Bot, error) {
	if asker == nil {
		return nil, errors.New("slackbot: no command engine")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "slack")
	cfg.ensureDefaults()
	tok, err := cfg.loadTokens()
	if err != nil {
		return nil, err
	}
	warnReadableTokenFile(log, cfg.XAppTokenFile)
	warnReadableTokenFile(log, cfg.XBotTokenFile)
	audit, err := openAudit(cfg, log)
	if err != nil {
		return nil, err
	}
	libLog := slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	api := slack.New(tok.bot, slack.OptionAppLevelToken(tok.app), slack.OptionAPIURL(cfg.APIURL), slack.OptionLog(libLog))
	acks := newAckWatch(log)
	smOpts := []socketmode.Option{socketmode.OptionDebug(true), socketmode.OptionLog(acks)}
	if cfg.pingInterval > 0 {
		smOpts = append(smOpts, socketmode.OptionPingInterval(cfg.pingInterval))
	}
	b := &Bot{
		cfg:    cfg,
		log:    log,
		asker:  asker,
		alerts: alerts,
		api:    api,
		sm:     socketmode.New(api, smOpts...),
		seen:   newSeenSet(cfg.DedupSize),
		pace:   newPacer(cfg.PostInterval),
		audit:  audit,
		acks:   acks,
		late:   make(chan Late, lateQueue),

		threads: &threads{store: cfg.Threads, warn: loglimit.Limit{Per: time.Minute, Burst: 3}},

		claimLog: loglimit.Limit{Per: time.Minute, Burst: 3},
	}
	b.botUser.Store("")
	if cfg.AlertChannel != "" && alerts != nil {
		b.policy = newPolicy(cfg)
	}
	b.auth = newAuthorizer(cfg, func(ctx context.Context, group string) ([]string, error) {
		return api.GetUserGroupMembersContext(ctx, group)
	})
	if len(cfg.Users) == 0 && len(cfg.UserGroups) == 0 {
		log.Warn("slack: no allowed users or user groups configured, so every command will be refused; set " + EnvUsers + " (user ids, or * for everyone in the workspace)")
	}
	return b, nil
}

func warnReadableTokenFile(log *slog.Logger, path string) {
	if path == "" {
		return
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("slack token file is readable by other users; chmod 600 it", "file", path, "mode", fi.Mode().Perm().String())
	}
}

// Run connects to Slack and serves until ctx ends, then waits for the
// commands in flight. It returns nil on a clean stop and an error when
// Slack refuses the tokens. While it runs, PostLate queues late answers.
func (b *Bot) Run(ctx context.Context) error {
	b.openLate()
	defer b.closeLate()
	defer b.audit.close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	if err := b.whoAmI(ctx); err != nil {
		return err
	}
	lateDone := make(chan struct{})
	go func() { defer close(lateDone); b.postLates(ctx) }()
	defer func() { cancel(); <-lateDone }()
	if b.policy != nil {
		done := make(chan struct{})
		go func() { defer close(done); b.policy.Run(ctx, b.alerts, b.postAlert) }()
		defer func() { cancel(); <-done }()
	}

	b.runCtx = ctx
	h := socketmode.NewSocketmodeHandler(b.sm)
	b.register(h)
	b.log.Info("slack: connecting (Socket Mode)", "config", b.cfg.String())
	err := h.RunEventLoopContext(ctx) // never nil: it ends with ctx or a failure
	b.shutdown()
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return fmt.Errorf("slack socket mode: %w", err)
}

// whoAmI learns the bot's user id, so its mention can be stripped. Slack
// refusing the bot token is fatal; Slack being unreachable is not (Socket
// Mode retries, and leading mentions are stripped anyway).
func (b *Bot) whoAmI(ctx context.Context) error {
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r, err := b.api.AuthTestContext(actx)
	if err != nil {
		var se slack.SlackErrorResponse
		if errors.As(err, &se) || isAuthError(err) {
			return fmt.Errorf("slack rejected the bot token (auth.test: %v)", err)
		}
		b.log.Warn("slack auth.test failed; carrying on", "err", err)
		return nil
	}
	b.botUser.Store(r.UserID)
	b.log.Info("slack: authenticated", "team", r.Team, "bot_user", r.UserID)
	return nil
}

func isAuthError(err error) bool {
	switch err.Error() {
	case "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired":
		return true
	}
	return false
}

// begin registers a handler in flight; false once Run is stopping.
func (b *Bot) begin() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopping {
		return false
	}
	b.inflight.Add(1)
	return true
}

func (b *Bot) shutdown() {
	b.mu.Lock()
	b.stopping = true
	b.mu.Unlock()
	b.inflight.Wait()
}

// Stats is a snapshot of the adapter's counters.
type Stats struct {
	Envelopes        uint64 // Socket Mode envelopes acknowledged
	Duplicates       uint64 // retries and double deliveries answered once (here or by another hub)
	ClaimFailed      uint64 // shared claims that failed: served anyway (Config.Claim)
	BadEnvelopes     uint64 // envelopes Slack sent that could not be parsed
	Commands         uint64 // commands served (answered or refused)
	Refused          uint64
	Failed           uint64 // answers that could not be delivered
	RateLimited      uint64 // 429s from Slack
	AlertsPosted     uint64 // messages in the alert channel (a summary counts once)
	AlertsSuppressed uint64 // duplicates, flapping, learnt during the quiet start
	AlertsSummarised uint64 // events folded into a burst or restart summary
	AlertsDropped    uint64 // messages Slack did not take
	AlertsStandby    uint64 // alerts left to the hub that holds the alerts lease
	LatePosted       uint64 // late answers posted (PostLate)
	LateDropped      uint64 // late answers not posted: bot not running, queue full
	LateFailed       uint64 // late answers Slack did not take
}

type counters struct {
	envelopes, duplicates, bad, commands, refused, failed, rateLimited atomic.Uint64
	claimFailed                                                        atomic.Uint64
	alertsPosted, alertsDropped, alertsStandby                         atomic.Uint64
	latePosted, lateDropped, lateFailed                                atomic.Uint64
}

// Stats returns the adapter's counters.
func (b *Bot) Stats() Stats {
	s := Stats{
		Envelopes:     b.stats.envelopes.Load(),
		Duplicates:    b.stats.duplicates.Load(),
		ClaimFailed:   b.stats.claimFailed.Load(),
		BadEnvelopes:  b.stats.bad.Load(),
		Commands:      b.stats.commands.Load(),
		Refused:       b.stats.refused.Load(),
		Failed:        b.stats.failed.Load(),
		RateLimited:   b.stats.rateLimited.Load(),
		AlertsPosted:  b.stats.alertsPosted.Load(),
		AlertsDropped: b.stats.alertsDropped.Load(),
		AlertsStandby: b.stats.alertsStandby.Load(),
		LatePosted:    b.stats.latePosted.Load(),
		LateDropped:   b.stats.lateDropped.Load(),
		LateFailed:    b.stats.lateFailed.Load(),
	}
	if b.policy != nil {
		ps := b.policy.Stats()
		s.AlertsSuppressed, s.AlertsSummarised = ps.Suppressed, ps.Summarised
	}
	return s
}
