package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// envPrefixes are the commands whose flags also come from the environment
// (flagenv.Apply): their -h must name the variable of every flag.
var envPrefixes = map[string]string{"hub": hubEnvPrefix, "sim": simEnvPrefix}

func runCaptured(args ...string) (stdout, stderr string, err error) {
	var o, e bytes.Buffer
	err = Run(context.Background(), Env{Stdin: strings.NewReader(""), Stdout: &o, Stderr: &e, Getenv: func(string) string { return "" }}, args)
	return o.String(), e.String(), err
}

// Help asked for is output: stdout, exit 0, for the program and every
// registered subcommand (issue 15).
func TestHelpGoesToStdout(t *testing.T) {
	cases := [][]string{{"-h"}, {"--help"}, {"help"}}
	for _, n := range commands.Names() {
		cases = append(cases, []string{n, "-h"}, []string{n, "--help"})
	}
	for _, args := range cases {
		out, errOut, err := runCaptured(args...)
		if err != nil || errOut != "" || !strings.HasPrefix(out, "usage: pifleet") {
			t.Errorf("pifleet %s: err=%v stderr=%q stdout=%q; want usage on stdout, nothing on stderr, exit 0",
				strings.Join(args, " "), err, errOut, firstLine(out))
		}
	}
	out, _, _ := runCaptured("-h")
	for _, n := range commands.Names() {
		if !strings.Contains(out, "  "+n+" ") {
			t.Errorf("pifleet -h does not list the subcommand %s:\n%s", n, out)
		}
	}
}

// A usage error is not help: the message goes to stderr, exit status 2.
func TestUsageErrorGoesToStderr(t *testing.T) {
	cases := [][]string{{}, {"no-such-command"}}
	for _, n := range commands.Names() {
		cases = append(cases, []string{n, "--no-such-flag"})
	}
	for _, args := range cases {
		out, errOut, err := runCaptured(args...)
		if err != ErrUsage || out != "" || errOut == "" {
			t.Errorf("pifleet %s: err=%v stdout=%q stderr=%q; want ErrUsage, the message on stderr only",
				strings.Join(args, " "), err, out, firstLine(errOut))
		}
	}
}

func TestVersionFlag(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"-version"}, {"version"}} {
		out, errOut, err := runCaptured(args...)
		if err != nil || errOut != "" || !strings.HasPrefix(out, "pifleet "+Version+" (protocol v") {
			t.Errorf("pifleet %s: err=%v stdout=%q stderr=%q", strings.Join(args, " "), err, out, errOut)
		}
	}
}

// -h names the environment variable of every flag that has one.
func TestHelpNamesEnvVars(t *testing.T) {
	for cmd, prefix := range envPrefixes {
		out, _, _ := runCaptured(cmd, "-h")
		checkEnvNamed(t, "pifleet "+cmd, out, func(flag string) string {
			return prefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
		})
	}
	for _, cmd := range []string{"devices", "ask"} {
		out, _, _ := runCaptured(cmd, "-h")
		if !strings.Contains(out, "PIFLEET_HUB)") && !strings.Contains(out, "(env PIFLEET_HUB;") {
			t.Errorf("pifleet %s -h does not name PIFLEET_HUB:\n%s", cmd, out)
		}
	}
}

// checkEnvNamed checks that the description of every flag in help names
// the variable envName(flag).
func checkEnvNamed(t *testing.T, prog, help string, envName func(string) string) {
	t.Helper()
	flags := 0
	for _, block := range strings.Split(help, "\n  -")[1:] {
		name, _, _ := strings.Cut(block, "\n")
		name, _, _ = strings.Cut(name, " ")
		flags++
		if want := "(env " + envName(name) + ")"; !strings.Contains(block, want) {
			t.Errorf("%s -h: flag -%s does not say %s:\n  -%s", prog, name, want, block)
		}
	}
	if flags < 3 {
		t.Errorf("%s -h lists %d flags:\n%s", prog, flags, help)
	}
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }
