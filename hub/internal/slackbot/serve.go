package slackbot

import (
	"context"
	"flag"
	"log/slog"
	"strings"
)

// Flags binds the hub's --slack-* flags to c; c's current values (from
// ConfigFromEnv) are the defaults. The tokens themselves have no flag, only
// their files: a flag would show the secret in ps and shell history.
func (c *Config) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.XAppTokenFile, "slack-app-token-file", c.XAppTokenFile, "file holding the Slack app-level token (xapp-…); or set "+EnvAppToken)
	fs.StringVar(&c.XBotTokenFile, "slack-bot-token-file", c.XBotTokenFile, "file holding the Slack bot token (xoxb-…); or set "+EnvBotToken)
	fs.Var((*listFlag)(&c.Channels), "slack-channels", "Slack channel ids the bot answers in, comma separated (default: any channel it is in, and DMs)")
	fs.Var((*listFlag)(&c.Users), "slack-users", "Slack user ids allowed to ask, comma separated, or * for everyone in the workspace")
	fs.Var((*listFlag)(&c.UserGroups), "slack-usergroups", "Slack user group ids whose members may ask (needs the usergroups:read scope)")
	fs.StringVar(&c.Admin, "slack-admin", c.Admin, "whom a person who may not ask is told to ask for access: <@U…> (a user), <#C…> (a channel) or words (default: whoever runs pifleet here); or set "+EnvAdmin)
	fs.StringVar(&c.AlertChannel, "slack-alert-channel", c.AlertChannel, "Slack channel id for proactive alerts (default: no alerts)")
	fs.StringVar(&c.AuditLogPath, "slack-audit-log", c.AuditLogPath, "file to append every Slack command to, as JSON lines (default: the hub's log)")
	fs.StringVar(&c.APIURL, "slack-api-url", c.APIURL, "Slack Web API base URL (default "+DefaultAPIURL+"; GovSlack: https://slack-gov.com/api/)")
}

type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	*l = SplitList(s)
	return nil
}

// Serve runs the Slack adapter until ctx ends, if cfg has tokens; without
// them it logs once that Slack is off and returns a nil *Bot. A
// configuration error (a token file that cannot be read, a token of the
// wrong kind) is returned, so the hub refuses to start half-configured;
// trouble later (Slack rejecting a token, Slack unreachable) is logged and
// the hub carries on without Slack. The returned channel is closed when the
// adapter has stopped. The returned bot takes late answers (PostLate) from
// the moment Serve returns until it has stopped.
func Serve(ctx context.Context, cfg Config, asker Asker, alerts AlertSource, log *slog.Logger) (*Bot, <-chan struct{}, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	done := make(chan struct{})
	if !cfg.Enabled() {
		log.Info("Slack is off: no tokens configured (set " + EnvAppToken + " and " + EnvBotToken + ", or --slack-app-token-file and --slack-bot-token-file)")
		close(done)
		return nil, done, nil
	}
	bot, err := New(cfg, asker, alerts, log)
	if err != nil {
		return nil, nil, err
	}
	bot.openLate() // before Run starts, so nothing handed over now is refused
	go func() {
		defer close(done)
		if err := bot.Run(ctx); err != nil {
			log.Error("Slack stopped; the hub carries on without it", "component", "slack", "err", err)
		}
	}()
	return bot, done, nil
}
