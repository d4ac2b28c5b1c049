package flagenv

import (
	"flag"
	"strings"
	"testing"
	"time"
)

func TestApply(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	listen := fs.String("http-listen", "127.0.0.1:8080", "")
	broker := fs.String("broker", "", "")
	hb := fs.Duration("heartbeat", time.Second, "")
	if err := fs.Parse([]string{"--broker", "mqtt://flag:1883"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"X_HTTP_LISTEN": "127.0.0.1:9", "X_BROKER": "mqtt://env:1883", "X_HEARTBEAT": "5s"}
	if err := Apply(fs, func(k string) string { return env[k] }, "X_"); err != nil {
		t.Fatal(err)
	}
	if *listen != "127.0.0.1:9" || *broker != "mqtt://flag:1883" || *hb != 5*time.Second {
		t.Errorf("got listen=%s broker=%s heartbeat=%v; want env for unset flags, the command line for set ones", *listen, *broker, *hb)
	}
	env["X_HEARTBEAT"] = "soon"
	fs2 := flag.NewFlagSet("t", flag.ContinueOnError)
	fs2.Duration("heartbeat", time.Second, "")
	if err := Apply(fs2, func(k string) string { return env[k] }, "X_"); err == nil || !strings.Contains(err.Error(), "X_HEARTBEAT") {
		t.Errorf("bad env value: got %v, want an error naming X_HEARTBEAT", err)
	}
}

func TestNewLogger(t *testing.T) {
	var b strings.Builder
	l, err := NewLogger(&b, "warn")
	if err != nil {
		t.Fatal(err)
	}
	l.Info("hidden")
	l.Warn("shown")
	if strings.Contains(b.String(), "hidden") || !strings.Contains(b.String(), "shown") {
		t.Errorf("log = %q", b.String())
	}
	if _, err := NewLogger(&b, "loud"); err == nil {
		t.Error("accepted --log-level loud")
	}
}

func TestParseHelp(t *testing.T) {
	var out, errb strings.Builder
	env := Env{Stdout: &out, Stderr: &errb}
	fs := NewFlagSet("prog", "", "X_")
	fs.String("http-listen", "127.0.0.1:8080", "address")
	fs.Bool("quiet", false, "say less")
	if err := Parse(fs, []string{"-h"}, env); UsageErr(err) != nil || err == nil {
		t.Fatalf("-h: got %v", err)
	}
	want := "usage: prog [flags]\n\nflags:\n  -http-listen string\n    \taddress (default \"127.0.0.1:8080\") (env X_HTTP_LISTEN)\n  -quiet\n    \tsay less (env X_QUIET)\n"
	if out.String() != want || errb.String() != "" {
		t.Errorf("-h: stdout %q stderr %q; want stdout %q", out.String(), errb.String(), want)
	}
	out.Reset()
	if err := Parse(fs, []string{"--nope"}, env); UsageErr(err) != ErrUsage {
		t.Errorf("--nope: got %v", err)
	}
	if out.String() != "" || !strings.Contains(errb.String(), "-nope") {
		t.Errorf("--nope: stdout %q stderr %q; want one line on stderr", out.String(), errb.String())
	}
}
