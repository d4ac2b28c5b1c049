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
		name := prefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
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

// Parse parses args into fs. A bad flag is one line on stderr — the
// error and where the flag list is — not the whole list; -h/--help prints
// the list (to stderr) and returns flag.ErrHelp. Either way the caller
// only maps the error to its exit status.
func Parse(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	usage := fs.Usage // the command's own, if it has one
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(stderr)
	fs.Usage = usage
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		if usage != nil {
			usage()
		} else {
			fmt.Fprintf(stderr, "Usage of %s:\n", fs.Name())
			fs.PrintDefaults()
		}
	default:
		fmt.Fprintf(stderr, "%s: %v (%s -h lists the flags)\n", fs.Name(), err, fs.Name())
	}
	return err
}
