package slackbot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Environment variables read by ConfigFromEnv. The tokens themselves may
// only come from the environment or from files, never from flags: flags
// show up in `ps` and in shell history.
const (
	EnvAppToken     = "PIFLEET_SLACK_APP_TOKEN"      // xapp-… (Socket Mode)
	EnvBotToken     = "PIFLEET_SLACK_BOT_TOKEN"      // xoxb-… (Web API)
	EnvAppTokenFile = "PIFLEET_SLACK_APP_TOKEN_FILE" // file holding the xapp- token
	EnvBotTokenFile = "PIFLEET_SLACK_BOT_TOKEN_FILE" // file holding the xoxb- token
	EnvChannels     = "PIFLEET_SLACK_CHANNELS"       // comma-separated channel ids
	EnvUsers        = "PIFLEET_SLACK_USERS"          // comma-separated user ids, or *
	EnvUserGroups   = "PIFLEET_SLACK_USERGROUPS"     // comma-separated user group ids
	EnvAlertChannel = "PIFLEET_SLACK_ALERT_CHANNEL"  // channel id for proactive alerts
	EnvAuditLog     = "PIFLEET_SLACK_AUDIT_LOG"      // path of the JSON-lines audit log
	EnvAPIURL       = "PIFLEET_SLACK_API_URL"        // e.g. https://slack-gov.com/api/
	EnvAdmin        = "PIFLEET_SLACK_ADMIN"          // whom a refused person should ask: <@U…>, <#C…> or a name
)

// DefaultAPIURL is Slack's own Web API base URL.
const DefaultAPIURL = "https://slack.com/api/"

// Config configures the Slack adapter. The zero value plus tokens works:
// ensureDefaults fills in the rest.
type Config struct {
	// XAppToken and XBotToken are the tokens themselves (from the
	// environment). XAppTokenFile and XBotTokenFile name files holding
	// them; a file wins over the environment. Config's String method never
	// prints a token.
	XAppToken, XBotToken         string
	XAppTokenFile, XBotTokenFile string

	// APIURL is the Web API base URL, ending in "/api/". Default
	// DefaultAPIURL; GovSlack workspaces and tests use another.
	APIURL string

	// Channels lists the channel ids (C…, G…, D…) the bot answers in;
	// empty means every channel the bot is a member of, and DMs.
	Channels []string
	// Users lists the user ids (U…, W…) allowed to ask; "*" allows everyone
	// in the workspace. UserGroups lists user group ids (S…) whose members
	// are allowed (needs the usergroups:read scope). With neither, nobody
	// is allowed: the refusal tells the person their user id.
	Users      []string
	UserGroups []string

	// Admin is whom a person who may not ask should ask for access, as
	// Slack shows it: "<@U0123ABC>", "<#C0123ABC>" or plain words.
	// Default: "whoever runs pifleet here".
	Admin string

	// AlertChannel, when set, receives proactive alerts (offline, online,
	// health problems, address changes).
	AlertChannel string
	// AlertLeader, when set, says whether this hub posts alerts now:
	// several hubs on one fleet each decide alerts, and only the holder
	// of the "alerts" lease (hub/internal/lease) posts them. nil: always.
	AlertLeader func() bool
	// Threads, when set, keeps each Pi's alert thread across a restart
	// and a change of the hub that posts alerts (threads.go); the hub
	// wires its JetStream bucket (hub/internal/jobs). nil: this bot's
	// memory only.
	Threads ThreadStore

	// AuditLog receives one JSON line per command. AuditLogPath opens a
	// file (append, 0600) when AuditLog is nil. With neither, the audit
	// lines go to the logger at info level.
	AuditLog     io.Writer
	AuditLogPath string

	// SlashCommand is the slash command's name. Default "/pi".
	SlashCommand string

	// Pacing. Zero values take the defaults in brackets.
	PostInterval     time.Duration // between posts to one channel [1s]
	UpdateInterval   time.Duration // between edits of one message [2s]
	PlaceholderAfter time.Duration // answer slower than this gets a placeholder [1s]
	AskTimeout       time.Duration // longest a command may run [2m]

	// Alerts: the settings of the alert policy (hub/internal/alerts, whose
	// defaults are in brackets).
	FlapWindow  time.Duration // window for counting state changes [10m]
	FlapChanges int           // more changes than this in the window is flapping [4]
	AlertRepeat time.Duration // same alert for the same device is muted this long [30m]
	// AlertQuietStart is how long after start alerts are only summarised
	// (the hub is relearning the fleet from retained messages) [15s].
	AlertQuietStart time.Duration
	// AlertRestartWait: when the retained messages claimed Pis online at
	// start (a restart), the quiet start lasts until every one of them
	// spoke live again or this long after the start, then one message sums
	// up the restart [90s].
	AlertRestartWait time.Duration
	// AlertBurst: more Pis than this with the same kind of event (going
	// offline or coming back; a health problem; a recovery; an address
	// change) within one AlertBurstWindow is a burst, posted as one
	// summary; up to this many get their own messages [5].
	AlertBurst int
	// AlertBurstWindow is how long alerts are held to see whether they are
	// part of a burst, and the pause that ends a burst (a burst that never
	// pauses is summed up every 12 windows) [5s].
	AlertBurstWindow time.Duration

	// DedupSize is how many recent event ids are remembered [1024].
	DedupSize int

	// Claim, when set, is shared by the hubs that hold Socket Mode
	// connections to one Slack app: Slack gives each envelope to one of
	// the app's open connections, and sends it again (maybe to another
	// hub) when it saw no ack in time. Before serving an event, a slash
	// command or a button, the bot claims its keys (an event id, a
	// message, a trigger id, a click); first is true for exactly one
	// claimer of a key across the hubs (the hub wires a create-only key in
	// a replicated JetStream bucket, hub/internal/jobs). The bot's own
	// memory of recent ids is asked first. An error fails open: the
	// command is served (an answer twice is better than none) and the
	// error logged, rate-limited. nil: only the bot's own memory.
	Claim func(ctx context.Context, key string) (first bool, err error)

	// pingInterval overrides socketmode's dead-connection detection (tests).
	pingInterval time.Duration
	// clock is the alert policy's clock and alertTick how often it looks
	// at the time (tests; default time.Now, and a fraction of the windows).
	clock     func() time.Time
	alertTick time.Duration
}

// ConfigFromEnv reads the Slack settings from the environment through
// getenv (os.Getenv, or cli.Env.Getenv). Flags may override the non-secret
// fields afterwards.
func ConfigFromEnv(getenv func(string) string) Config {
	if getenv == nil {
		getenv = os.Getenv
	}
	return Config{
		XAppToken:     strings.TrimSpace(getenv(EnvAppToken)),
		XBotToken:     strings.TrimSpace(getenv(EnvBotToken)),
		XAppTokenFile: getenv(EnvAppTokenFile),
		XBotTokenFile: getenv(EnvBotTokenFile),
		Channels:      SplitList(getenv(EnvChannels)),
		Users:         SplitList(getenv(EnvUsers)),
		UserGroups:    SplitList(getenv(EnvUserGroups)),
		AlertChannel:  strings.TrimSpace(getenv(EnvAlertChannel)),
		Admin:         strings.TrimSpace(getenv(EnvAdmin)),
		AuditLogPath:  getenv(EnvAuditLog),
		APIURL:        strings.TrimSpace(getenv(EnvAPIURL)),
	}
}

// SplitList splits a comma- or space-separated list, dropping empties. The
// hub's flags use it too.
func SplitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' })
}

// Enabled reports whether any Slack token source is configured. A hub
// without one runs without Slack; one with only half the tokens fails in
// LoadTokens with a clear error.
func (c Config) Enabled() bool {
	return c.XAppToken != "" || c.XBotToken != "" || c.XAppTokenFile != "" || c.XBotTokenFile != ""
}

// String describes the configuration without secrets.
func (c Config) String() string {
	return fmt.Sprintf("slack{api=%s app_token=%s bot_token=%s channels=%v users=%v usergroups=%v alerts=%q}",
		c.apiURL(), source(c.XAppToken, c.XAppTokenFile, EnvAppToken), source(c.XBotToken, c.XBotTokenFile, EnvBotToken),
		c.Channels, c.Users, c.UserGroups, c.AlertChannel)
}

// GoString keeps %#v from printing the tokens as well.
func (c Config) GoString() string { return c.String() }

func source(tok, file, env string) string {
	switch {
	case file != "":
		return "file:" + file
	case tok != "":
		return "env:" + env
	}
	return "none"
}

func (c Config) apiURL() string {
	if c.APIURL == "" {
		return DefaultAPIURL
	}
	if !strings.HasSuffix(c.APIURL, "/") {
		return c.APIURL + "/"
	}
	return c.APIURL
}

func (c *Config) ensureDefaults() {
	c.APIURL = c.apiURL()
	if c.SlashCommand == "" {
		c.SlashCommand = "/pi"
	}
	setDur(&c.PostInterval, time.Second)
	setDur(&c.UpdateInterval, 2*time.Second)
	setDur(&c.PlaceholderAfter, time.Second)
	setDur(&c.AskTimeout, 2*time.Minute)
	if c.DedupSize <= 0 {
		c.DedupSize = 1024
	}
}

func setDur(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// tokens are the two secrets, loaded and checked.
type tokens struct{ app, bot string }

// ErrNoTokens means Slack is not configured.
var ErrNoTokens = errors.New("slack is off: no tokens configured")

// loadTokens reads the tokens from their files or the environment and
// checks their kind. Its errors never contain a token.
func (c Config) loadTokens() (tokens, error) {
	if !c.Enabled() {
		return tokens{}, ErrNoTokens
	}
	app, err := loadToken("app-level", c.XAppToken, c.XAppTokenFile, EnvAppToken, EnvAppTokenFile, "xapp-")
	if err != nil {
		return tokens{}, err
	}
	bot, err := loadToken("bot", c.XBotToken, c.XBotTokenFile, EnvBotToken, EnvBotTokenFile, "xoxb-")
	if err != nil {
		return tokens{}, err
	}
	return tokens{app: app, bot: bot}, nil
}

func loadToken(what, tok, file, env, envFile, prefix string) (string, error) {
	from := "$" + env
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			// The *PathError names the file, not its contents.
			return "", fmt.Errorf("read slack %s token: %w", what, err)
		}
		tok, from = strings.TrimSpace(string(b)), file
	}
	if tok == "" {
		return "", fmt.Errorf("slack %s token missing: set $%s or $%s (or the hub's token-file flag) to enable Slack, or unset the other token to run without it", what, env, envFile)
	}
	if !strings.HasPrefix(tok, prefix) {
		return "", fmt.Errorf("slack %s token from %s does not start with %q%s", what, from, prefix, tokenHint(tok))
	}
	if strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("slack %s token from %s contains whitespace: one token per file", what, from)
	}
	return tok, nil
}

// tokenHint names a well-known prefix (only the prefix) so that swapped
// tokens are easy to spot, without ever printing the secret part.
func tokenHint(tok string) string {
	for _, k := range []struct{ prefix, name string }{
		{"xapp-", "an app-level token"},
		{"xoxb-", "a bot token"},
		{"xoxp-", "a user token"},
		{"xoxe", "a refresh/config token"},
	} {
		if strings.HasPrefix(tok, k.prefix) {
			return fmt.Sprintf(" (it looks like %s, %s…: are the two swapped?)", k.name, k.prefix)
		}
	}
	return " (it is not a Slack token; the value is not shown)"
}
