package policy

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"

	"github.com/pifleet/pifleet/internal/shellwords"
)

// Policy classifies commands. It is immutable and safe for concurrent use.
type Policy struct {
	c Config
}

// Class is how a command is classified.
type Class string

// Class values.
const (
	Read     Class = "read"     // runs without a role or confirmation
	Mutating Class = "mutating" // needs a role that grants it, and a confirmation on the hub
	Denied   Class = "denied"   // never runs
)

// Errors wrapped by Check.
var (
	ErrDenied      = errors.New("denied")
	ErrNeedsRole   = errors.New("needs a role")
	ErrUnknownTool = errors.New("unknown tool")
)

// Decision is the outcome of Check.
type Decision struct {
	Tool  string
	Argv  []string // after alias expansion: what the entrypoint gets
	Verb  string   // the verb words joined by spaces ("ec2 describe-instances")
	Class Class
	// Role is the role that allows a mutating command (empty for Read).
	Role string
	// Reason explains a Denied or role-less Mutating decision.
	Reason string
}

// Expand applies an alias to argv's first word (for tool) and returns a
// new slice.
func (p *Policy) Expand(tool string, argv []string) []string {
	if len(argv) == 0 {
		return nil
	}
	exp, ok := p.c.Aliases[tool+"."+argv[0]]
	if !ok {
		exp, ok = p.c.Aliases[argv[0]]
	}
	if !ok {
		return append([]string(nil), argv...)
	}
	words, err := shellwords.Split(exp)
	if err != nil {
		return append([]string(nil), argv...)
	}
	return append(words, argv[1:]...)
}

// Check expands aliases in argv and classifies it for a person holding
// roles. The error is nil only for a command that may run: Read, or
// Mutating with Decision.Role set. Otherwise it wraps ErrDenied,
// ErrNeedsRole or ErrUnknownTool with the reason.
func (p *Policy) Check(tool string, argv []string, roles []string) (Decision, error) {
	t, ok := p.c.Tools[tool]
	if !ok {
		return Decision{Tool: tool, Class: Denied, Reason: "unknown tool"},
			fmt.Errorf("%w %q (configured: %s)", ErrUnknownTool, tool, strings.Join(p.ToolNames(), ", "))
	}
	argv = p.Expand(tool, argv)
	d := Decision{Tool: tool, Argv: argv}
	deny := func(format string, a ...any) (Decision, error) {
		d.Class = Denied
		d.Reason = fmt.Sprintf(format, a...)
		return d, fmt.Errorf("%s %s: %w: %s", tool, d.Verb, ErrDenied, d.Reason)
	}
	if len(argv) == 0 {
		return deny("no arguments")
	}
	if len(argv) > p.c.MaxArgs {
		return deny("%d arguments, at most %d", len(argv), p.c.MaxArgs)
	}
	for _, a := range argv {
		if len(a) > p.c.MaxArgLen {
			return deny("an argument of %d bytes, at most %d", len(a), p.c.MaxArgLen)
		}
		if strings.ContainsRune(a, 0) {
			return deny("an argument contains a NUL byte")
		}
	}
	verb, pos, err := splitVerb(t, argv)
	for i := range verb {
		verb[i] = strings.ToLower(verb[i]) // match as the CLI would never run "IAM"
	}
	d.Verb = strings.Join(verb, " ")
	if err != nil {
		return deny("%v", err)
	}
	if reason := checkArgs(t, argv); reason != "" {
		return deny("%s", reason)
	}
	if len(verb) == 0 {
		if matchesNoArgs(t, argv) {
			d.Class = Read
			return d, nil
		}
		return deny("no command (give %d words, e.g. \"ec2 describe-instances\")", t.VerbWords)
	}
	for _, pat := range t.Deny {
		if match(pat, verb) {
			return deny("%q is never allowed (matches %q)", d.Verb, pat)
		}
	}
	for _, lp := range t.LocalPathVerbs {
		if match(lp, verb) && len(verb) == len(strings.Fields(lp)) {
			for _, a := range pos {
				if a != "-" && !strings.HasPrefix(a, t.RemotePrefix) {
					return deny("%q with the local path %q is never allowed", d.Verb, a)
				}
			}
		}
	}
	for _, pat := range t.Read {
		if match(pat, verb) {
			d.Class = Read
			return d, nil
		}
	}
	if len(verb) < t.VerbWords {
		return deny("incomplete command %q (give %d words, e.g. \"ec2 describe-instances\")", d.Verb, t.VerbWords)
	}
	d.Class = Mutating
	for _, r := range roles {
		for _, pat := range p.c.Roles[r] {
			ptool, rest, _ := strings.Cut(pat, " ")
			if ptool == tool && match(rest, verb) {
				d.Role = r
				return d, nil
			}
		}
	}
	d.Reason = fmt.Sprintf("%q changes things and none of the roles %v grants it", d.Verb, roles)
	if len(roles) == 0 {
		d.Reason = fmt.Sprintf("%q changes things and needs a role that grants it", d.Verb)
	}
	return d, fmt.Errorf("%s %s: %w: %s", tool, d.Verb, ErrNeedsRole, d.Reason)
}

// splitVerb returns the first VerbWords positional words and the
// positional words after them. Before the verb is complete only known
// global flags are allowed, because for an unknown flag the policy could
// not tell whether the next word is its value or the service.
func splitVerb(t Tool, argv []string) (verb, rest []string, err error) {
	for i := 0; i < len(argv); i++ {
		a := argv[i]
		if strings.HasPrefix(a, "-") && a != "-" {
			if len(verb) < t.VerbWords {
				name, _, hasVal := strings.Cut(a, "=")
				takes, known := t.GlobalFlags[name]
				if !known {
					return verb, nil, fmt.Errorf("the option %q is not allowed before the command", name)
				}
				if takes && !hasVal {
					i++ // skip its value
				}
			}
			continue
		}
		if len(verb) < t.VerbWords {
			verb = append(verb, a)
		} else {
			rest = append(rest, a)
		}
	}
	return verb, rest, nil
}

// checkArgs applies the flag and value rules to every argument.
func checkArgs(t Tool, argv []string) string {
	for i, a := range argv {
		name, val, hasVal := strings.Cut(a, "=")
		if strings.HasPrefix(a, "-") {
			for _, f := range t.DenyFlags {
				if flagIs(name, f) {
					return fmt.Sprintf("the option %s is never allowed", f)
				}
			}
			if t.EndpointFlag != "" && flagIs(name, t.EndpointFlag) {
				if !hasVal {
					if i+1 >= len(argv) {
						return fmt.Sprintf("%s needs a URL", name)
					}
					val = argv[i+1]
				}
				if !endpointAllowed(t, val) {
					return fmt.Sprintf("%s %q: only hosts %v are allowed", name, val, t.EndpointHosts)
				}
			}
		}
		for _, p := range t.DenyValuePrefixes {
			if strings.HasPrefix(a, p) || (hasVal && strings.HasPrefix(val, p)) {
				return fmt.Sprintf("arguments starting with %s read local files and are never allowed", p)
			}
		}
	}
	return ""
}

// flagIs reports whether name is flag f or an abbreviation of it: the
// CLIs' argument parsers (Python argparse) accept unambiguous prefixes, so
// "--prof" must count as "--profile".
func flagIs(name, f string) bool {
	return name == f || (len(name) > 3 && strings.HasPrefix(f, name))
}

func endpointAllowed(t Tool, raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	for _, h := range t.EndpointHosts {
		if u.Hostname() == h {
			return true
		}
	}
	return false
}

func matchesNoArgs(t Tool, argv []string) bool {
	for _, n := range t.NoArgs {
		if strings.Join(argv, " ") == n {
			return true
		}
	}
	return false
}

// match reports whether the space-separated glob pattern matches verb.
// A pattern with fewer words than verb matches its prefix; one with more
// words never matches.
func match(pattern string, verb []string) bool {
	pw := strings.Fields(pattern)
	if len(pw) == 0 || len(pw) > len(verb) {
		return false
	}
	for i, p := range pw {
		if ok, err := path.Match(p, verb[i]); err != nil || !ok {
			return false
		}
	}
	return true
}
