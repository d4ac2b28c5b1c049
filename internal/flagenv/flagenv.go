// Package flagenv is what the pifleet and pifleet-agent command lines share:
// the subcommand registry and Env, flag parsing with one-line errors, flags
// that can also come from the environment (how systemd's EnvironmentFile=
// configures the units) and the --log-level logger. Standard library only.
package flagenv

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
)

// Apply sets every flag of fs that was not given on the command line from
// the environment variable PREFIX + NAME (upper case, '-' → '_'), e.g.
// --http-listen ← PIFLEET_HUB_HTTP_LISTEN. A bad value is one clear error
// naming the variable.
func Apply(fs *flag.FlagSet, getenv func(string) string, prefix string) error {
	if getenv == nil {
		return nil
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		name := EnvName(prefix, f.Name)
		if v := getenv(name); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, e)
			}
		}
	})
	return err
}

// NewLogger returns a text logger to w at the level named by --log-level.
func NewLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// NewFlagSet returns the flag set of the command name. Its -h (see Parse)
// prints synopsis — the lines above the flags; "" for "usage: NAME
// [flags]" — then every flag, each naming the environment variable
// envPrefix+NAME that also sets it (see Apply; none when envPrefix is "").
// fs.Usage writes to fs.Output(), so a command calling it after a bad
// argument prints to stderr.
func NewFlagSet(name, synopsis, envPrefix string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	if synopsis == "" {
		synopsis = "usage: " + name + " [flags]"
	}
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintln(w, strings.TrimRight(synopsis, "\n"))
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintln(w, "\nflags:")
			PrintDefaults(fs, envPrefix)
		}
	}
	return fs
}

// EnvName is the environment variable Apply reads for the flag name.
func EnvName(prefix, name string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// PrintDefaults is flag.PrintDefaults to fs.Output() with, after each
// flag's default, the environment variable that also sets it.
func PrintDefaults(fs *flag.FlagSet, envPrefix string) {
	w := fs.Output()
	fs.VisitAll(func(f *flag.Flag) {
		var b strings.Builder
		fmt.Fprintf(&b, "  -%s", f.Name)
		typ, usage := flag.UnquoteUsage(f)
		if typ != "" {
			b.WriteString(" " + typ)
		}
		b.WriteString("\n    \t")
		b.WriteString(strings.ReplaceAll(usage, "\n", "\n    \t"))
		if !isZeroValue(f) {
			if typ == "string" {
				fmt.Fprintf(&b, " (default %q)", f.DefValue)
			} else {
				fmt.Fprintf(&b, " (default %v)", f.DefValue)
			}
		}
		if envPrefix != "" {
			fmt.Fprintf(&b, " (env %s)", EnvName(envPrefix, f.Name))
		}
		fmt.Fprintln(w, b.String())
	})
}

// isZeroValue says whether f's default is its type's zero value (which
// flag.PrintDefaults does not show).
func isZeroValue(f *flag.Flag) bool {
	t := reflect.TypeOf(f.Value)
	var z reflect.Value
	if t.Kind() == reflect.Pointer {
		z = reflect.New(t.Elem())
	} else {
		z = reflect.Zero(t)
	}
	v, ok := z.Interface().(flag.Value)
	if !ok {
		return f.DefValue == ""
	}
	defer func() { _ = recover() }() // a Value whose String needs fields set
	return f.DefValue == v.String()
}

// Parse parses args into fs. -h/--help prints fs.Usage to env.Stdout (help
// asked for is output, not an error) and returns flag.ErrHelp; a bad flag
// is one line on env.Stderr — the error and where the flag list is — not
// the whole list. Either way the caller only maps the error to its exit
// status (see UsageErr). Afterwards fs.Output() is env.Stderr.
func Parse(fs *flag.FlagSet, args []string, env Env) error {
	usage := fs.Usage // the command's own
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.Usage = usage
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(env.Stdout)
		usage()
	default:
		fmt.Fprintf(env.Stderr, "%s: %v (%s -h lists the flags)\n", fs.Name(), err, fs.Name())
	}
	fs.SetOutput(env.Stderr)
	return err
}

// UsageErr maps Parse's error to a command's result: nil after -h (help
// was shown: exit 0), ErrUsage after a bad flag (exit 2).
func UsageErr(err error) error {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return ErrUsage
}
