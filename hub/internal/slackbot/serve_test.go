package slackbot

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sbt "github.com/pifleet/pifleet/hub/internal/slackbot/slackbottest"
	"github.com/pifleet/pifleet/internal/testenv"
)

func TestFlagsOverrideTheEnvironment(t *testing.T) {
	c := ConfigFromEnv(env(map[string]string{EnvUsers: "U1", EnvChannels: "C1", EnvAlertChannel: "CA"}))
	fs := flag.NewFlagSet("hub", flag.ContinueOnError)
	c.Flags(fs)
	if err := fs.Parse([]string{"--slack-users", "U2,U3", "--slack-app-token-file", "/run/secrets/xapp"}); err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintln(c.Users, c.Channels, c.AlertChannel, c.XAppTokenFile)
	if want := "[U2 U3] [C1] CA /run/secrets/xapp\n"; got != want {
		t.Errorf("after flags: %q, want %q", got, want)
	}
	if fs.Lookup("slack-bot-token") != nil || fs.Lookup("slack-app-token") != nil {
		t.Error("a flag takes a token itself; tokens come from files or the environment only")
	}
}

func TestServeWithoutTokensSaysSlackIsOff(t *testing.T) {
	logs := &testenv.SyncBuffer{}
	bot, done, err := Serve(context.Background(), ConfigFromEnv(env(nil)), &sbt.Engine{}, nil, testLogger(logs))
	if err != nil || bot != nil {
		t.Fatalf("Serve = %v, %v; want no bot and no error", bot, err)
	}
	select {
	case <-done:
	default:
		t.Error("done is open without Slack")
	}
	if n := strings.Count(logs.String(), "Slack is off"); n != 1 {
		t.Errorf("logged 'Slack is off' %d times, want once:\n%s", n, logs)
	}
}

func TestServeRefusesABadTokenAtStart(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bot")
	if err := os.WriteFile(bad, []byte("xoxp-SeCrEt\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := Serve(context.Background(), Config{XAppToken: goodApp, XBotTokenFile: bad}, &sbt.Engine{}, nil, nil)
	if err == nil || strings.Contains(err.Error(), "SeCrEt") {
		t.Errorf("Serve = %v, want an error without the token", err)
	}
}

func TestServeRunsAndStops(t *testing.T) {
	ws := sbt.New(t)
	logs := &testenv.SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	_, done, err := Serve(ctx, testConfig(ws), &sbt.Engine{}, nil, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ws.Mention("EvS", "U1", "C1", "1700000020.000100", "help")
	waitPosts(t, ws, sbt.KindPost, 1, inThread("C1", "1700000020.000100"))
	cancel()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("Serve's adapter did not stop")
	}
	if strings.Contains(logs.String(), "Slack stopped") {
		t.Errorf("a clean stop logged an error:\n%s", logs)
	}
}
