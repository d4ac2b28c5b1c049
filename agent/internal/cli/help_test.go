package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func runCaptured(args ...string) (stdout, stderr string, err error) {
	var o, e bytes.Buffer
	err = Run(context.Background(), Env{Stdin: strings.NewReader(""), Stdout: &o, Stderr: &e, Getenv: func(string) string { return "" }}, args)
	return o.String(), e.String(), err
}

// Help asked for is output: stdout, exit 0, for the agent and every
// registered subcommand (issue 15); the agent's lists the subcommands and
// the environment variable of every flag.
func TestHelpGoesToStdout(t *testing.T) {
	cases := [][]string{{"-h"}, {"--help"}, {"help"}}
	for _, n := range commands.Names() {
		cases = append(cases, []string{n, "-h"}, []string{n, "--help"})
	}
	for _, args := range cases {
		out, errOut, err := runCaptured(args...)
		if err != nil || errOut != "" || !strings.HasPrefix(out, "usage: pifleet-agent") {
			t.Errorf("pifleet-agent %s: err=%v stderr=%q stdout=%q; want usage on stdout, nothing on stderr, exit 0",
				strings.Join(args, " "), err, errOut, out)
		}
	}
	out, _, _ := runCaptured("-h")
	for _, n := range commands.Names() {
		if !strings.Contains(out, "  "+n+" ") {
			t.Errorf("pifleet-agent -h does not list the subcommand %s:\n%s", n, out)
		}
	}
	flags := 0
	for _, block := range strings.Split(out, "\n  -")[1:] {
		name, _, _ := strings.Cut(block, "\n")
		name, _, _ = strings.Cut(name, " ")
		flags++
		if want := "(env " + agentEnvPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_")) + ")"; !strings.Contains(block, want) {
			t.Errorf("pifleet-agent -h: flag -%s does not say %s:\n  -%s", name, want, block)
		}
	}
	if flags < 10 {
		t.Errorf("pifleet-agent -h lists %d flags:\n%s", flags, out)
	}
}

// A usage error is not help: the message goes to stderr, exit status 2.
func TestUsageErrorGoesToStderr(t *testing.T) {
	cases := [][]string{{"--no-such-flag"}, {"no-such-command"}}
	for _, n := range commands.Names() {
		cases = append(cases, []string{n, "--no-such-flag"})
	}
	for _, args := range cases {
		out, errOut, err := runCaptured(args...)
		if err != ErrUsage || out != "" || errOut == "" {
			t.Errorf("pifleet-agent %s: err=%v stdout=%q stderr=%q; want ErrUsage, the message on stderr only",
				strings.Join(args, " "), err, out, errOut)
		}
	}
}

func TestVersionFlag(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"-version"}, {"version"}} {
		out, errOut, err := runCaptured(args...)
		if err != nil || errOut != "" || !strings.HasPrefix(out, "pifleet-agent "+Version+" (protocol v") {
			t.Errorf("pifleet-agent %s: err=%v stdout=%q stderr=%q", strings.Join(args, " "), err, out, errOut)
		}
	}
}
