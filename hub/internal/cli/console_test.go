package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestConsoleUsage(t *testing.T) {
	for _, args := range [][]string{{"--baud", "0"}, {"extra"}, {"--timeout", "-1s", "--find-ip"}, {"--bogus"}} {
		var out, errb bytes.Buffer
		err := Run(context.Background(), Env{Stdout: &out, Stderr: &errb}, append([]string{"console"}, args...))
		if err != ErrUsage {
			t.Errorf("%v: got %v, want ErrUsage", args, err)
		}
	}
	var outb bytes.Buffer
	if err := Run(context.Background(), Env{Stdout: &outb, Stderr: &bytes.Buffer{}}, []string{"console", "-h"}); err != nil {
		t.Errorf("-h: got %v, want nil", err)
	}
	if !strings.Contains(outb.String(), "~.") || !strings.Contains(outb.String(), envConsolePassword) {
		t.Errorf("help lacks the escape or the credentials variables:\n%s", outb.String())
	}
}

func TestConsoleCredentials(t *testing.T) {
	env := func(m map[string]string) Env {
		return Env{Stdin: strings.NewReader(""), Getenv: func(k string) string { return m[k] }}
	}
	c := consoleLogin(env(map[string]string{envConsoleUser: "pi", envConsolePassword: "pw"}))
	if c == nil {
		t.Fatal("got no credentials from the environment")
	}
	if u, p, err := c(); u != "pi" || p != "pw" || err != nil {
		t.Errorf("got %q %q %v, want pi pw", u, p, err)
	}
	// Without both variables and without a terminal there is no login:
	// never a prompt on a pipe, never a flag.
	if c := consoleLogin(env(map[string]string{envConsoleUser: "pi"})); c != nil {
		t.Error("got credentials with no password and no terminal, want none")
	}
}

func TestConsoleMissingPort(t *testing.T) {
	var errb bytes.Buffer
	err := Run(context.Background(), Env{Stdout: &bytes.Buffer{}, Stderr: &errb, Getenv: func(string) string { return "" }},
		[]string{"console", "--find-ip", "--port", "/nonexistent/ttyUSB7"})
	if err == nil || !strings.Contains(err.Error(), "is the cable plugged in?") {
		t.Errorf("got %v, want the missing-port hint", err)
	}
}
