package cli

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pifleet/pifleet/internal/exitcode"
	"github.com/pifleet/pifleet/internal/testenv"
)

// A hub that cannot start says so in one line, without the INFO lines
// of the steps that went well before (issue 15).
func TestHubCannotStartOneLine(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	free := func() string { return fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)) }
	for _, c := range []struct{ what, http, mqtt, want string }{
		{"HTTP port in use", busy.Addr().String(), free(), "pifleet: HTTP API: listen on " + busy.Addr().String()},
		{"MQTT port in use", free(), busy.Addr().String(), "pifleet: embedded broker: MQTT listen on " + busy.Addr().String()},
	} {
		code, stdout, stderr := pifleet(t, nil, "hub", "--http-listen", c.http, "--mqtt-listen", c.mqtt,
			"--state-dir", t.TempDir(), "--mqtt-data", "off")
		if code != 1 || stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, c.want) {
			t.Errorf("%s: exit %d, stdout %q, stderr:\n%s\nwant exit 1 and the one line %q…", c.what, code, stdout, stderr, c.want)
		}
	}
}

// A hub that starts shows its INFO lines once it is up, and its clean stop.
func TestHubStartLogShownOnceUp(t *testing.T) {
	var errb testenv.SyncBuffer
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	go func() {
		err := Run(ctx, Env{Stdin: strings.NewReader(""), Stdout: &errb, Stderr: &errb, Getenv: func(string) string { return "" }},
			[]string{"hub", "--http-listen", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
				"--mqtt-listen", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), "--state-dir", t.TempDir(), "--mqtt-data", "off"})
		done <- exitcode.Report(&errb, "pifleet", err)
	}()
	testenv.Eventually(t, 10*time.Second, func() string {
		if !strings.Contains(errb.String(), "connected to MQTT broker") {
			return "no start lines yet:\n" + errb.String()
		}
		return ""
	})
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d after a clean stop", code)
	}
	for _, want := range []string{"pifleet hub starting", "HTTP API listening", "pifleet hub stopped"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, errb.String())
		}
	}
}

// --engine stays for old configs: nats, the embedded engine, starts the
// hub (TestHubStartLogShownOnceUp starts it without the flag); the mochi
// broker it once chose is gone, and says so in one line, from the flag or
// the environment.
func TestHubEngineFlag(t *testing.T) {
	const gone = "--engine mochi: the mochi broker was removed; the embedded engine is nats-server (drop --engine)"
	code, stdout, stderr := pifleet(t, nil, "hub", "--engine", "mochi")
	wantOneErrorLine(t, "--engine mochi", code, stdout, stderr, gone)
	code, stdout, stderr = pifleet(t, map[string]string{"PIFLEET_HUB_ENGINE": "mochi"}, "hub")
	wantOneErrorLine(t, "PIFLEET_HUB_ENGINE=mochi", code, stdout, stderr, gone)
	code, stdout, stderr = pifleet(t, nil, "hub", "--engine", "emqx")
	wantOneErrorLine(t, "--engine emqx", code, stdout, stderr, `--engine "emqx": the only embedded engine is nats`)

	var errb testenv.SyncBuffer
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Env{Stdin: strings.NewReader(""), Stdout: &errb, Stderr: &errb, Getenv: func(string) string { return "" }},
			[]string{"hub", "--engine", "nats", "--http-listen", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
				"--mqtt-listen", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), "--state-dir", t.TempDir(), "--mqtt-data", "off"})
	}()
	testenv.Eventually(t, 10*time.Second, func() string {
		if !strings.Contains(errb.String(), "embedded nats engine listening") {
			return "--engine nats: no engine yet:\n" + errb.String()
		}
		return ""
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("--engine nats: %v", err)
	}
}
