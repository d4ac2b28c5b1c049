package slackbot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	goodApp = "xapp-1-A111-222-0123456789abcdef"
	goodBot = "xoxb-111-222-SeCrEtSeCrEt"
)

func env(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

func TestConfigFromEnv(t *testing.T) {
	c := ConfigFromEnv(env(map[string]string{
		EnvAppToken: " " + goodApp + "\n", EnvBotToken: goodBot, EnvChannels: "C1, C2", EnvUsers: "U1 U2,U3",
		EnvUserGroups: "S1", EnvAlertChannel: "C9", EnvAuditLog: "/var/log/pifleet/slack-audit.jsonl", EnvAPIURL: "https://slack-gov.com/api",
	}))
	if !c.Enabled() {
		t.Fatal("Enabled() = false with both tokens set")
	}
	if got := fmt.Sprintln(c.Channels, c.Users, c.UserGroups, c.AlertChannel, c.AuditLogPath); got != "[C1 C2] [U1 U2 U3] [S1] C9 /var/log/pifleet/slack-audit.jsonl\n" {
		t.Errorf("lists = %s", got)
	}
	tok, err := c.loadTokens()
	if err != nil || tok.app != goodApp || tok.bot != goodBot {
		t.Errorf("loadTokens = %v, want the trimmed tokens", err)
	}
	c.ensureDefaults()
	if c.APIURL != "https://slack-gov.com/api/" {
		t.Errorf("APIURL = %q, want a trailing slash added", c.APIURL)
	}
	for _, s := range []string{c.String(), fmt.Sprintf("%v %+v %#v", c, c, c)} {
		if strings.Contains(s, "SeCrEt") || strings.Contains(s, "0123456789abcdef") {
			t.Errorf("printing the config shows a token: %s", s)
		}
	}
}

func TestConfigOff(t *testing.T) {
	c := ConfigFromEnv(env(nil))
	if c.Enabled() {
		t.Error("Enabled() = true without tokens")
	}
	if _, err := c.loadTokens(); !errors.Is(err, ErrNoTokens) {
		t.Errorf("loadTokens = %v, want ErrNoTokens", err)
	}
	if _, err := New(c, nopAsker{}, nil, nil); !errors.Is(err, ErrNoTokens) {
		t.Errorf("New = %v, want ErrNoTokens", err)
	}
}

func TestTokenFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	app, bot := write("app", goodApp+"\n"), write("bot", goodBot+"\n")
	c := Config{XAppTokenFile: app, XBotTokenFile: bot, XBotToken: "xoxb-from-env-loses"}
	tok, err := c.loadTokens()
	if err != nil || tok.app != goodApp || tok.bot != goodBot {
		t.Errorf("loadTokens from files = %+v, %v; want the files' tokens", tok, err)
	}
}

func TestTokenErrorsNeverShowTheToken(t *testing.T) {
	dir := t.TempDir()
	two := filepath.Join(dir, "two")
	if err := os.WriteFile(two, []byte(goodBot+"\n"+goodBot+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"swapped", Config{XAppToken: goodBot, XBotToken: goodApp}, `does not start with "xapp-" (it looks like a bot token`},
		{"user token", Config{XAppToken: goodApp, XBotToken: "xoxp-1-SeCrEtSeCrEt"}, "user token"},
		{"garbage", Config{XAppToken: goodApp, XBotToken: "hunter2-SeCrEt"}, "not a Slack token"},
		{"half", Config{XAppToken: goodApp}, "bot token missing"},
		{"missing file", Config{XAppTokenFile: filepath.Join(dir, "nope"), XBotToken: goodBot}, "no such file"},
		{"two tokens in a file", Config{XAppToken: goodApp, XBotTokenFile: two}, "whitespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.cfg.loadTokens()
			if err == nil {
				t.Fatal("loadTokens succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "SeCrEt") || strings.Contains(err.Error(), "0123456789abcdef") {
				t.Errorf("error shows the token: %q", err)
			}
		})
	}
}
