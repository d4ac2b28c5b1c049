package runner

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
)

// Redacted replaces a secret in output.
const Redacted = "[REDACTED]"

var (
	// AWS access key ids: a 4-letter kind prefix and 16 base-32 characters.
	reKeyID = regexp.MustCompile(`\b(AKIA|ASIA|AIDA|AROA|AGPA|ANPA|ANVA|AIPA|ABIA|ACCA)[A-Z0-9]{16,17}\b`)
	// A secret after a label, in ini, env, JSON or YAML form:
	// aws_secret_access_key = X, "SecretAccessKey": "X", AWS_SESSION_TOKEN=X.
	reLabeled = regexp.MustCompile(`(?i)((?:aws_?)?(?:secret_?access_?key|session_?token|security_?token|secret)["']?\s*[:=]\s*["']?)([A-Za-z0-9/+=]{16,})`)
	// STS session tokens start with these base64 prefixes.
	reSTSToken = regexp.MustCompile(`(?:IQoJb3JpZ2lu|FwoGZXIvYXdz|FQoGZXIvYXdz)[A-Za-z0-9/+=]{20,}`)
)

// Redactor removes secrets from output text.
//
// A literal secret (a value of the credentials file) is found however a
// tool prints it: in any letter case, with each '/' escaped as `\/` (JSON),
// and split by one line break anywhere in it. The collector gives it the
// text of a stream with both sides of such a break (MayContinue).
type Redactor struct {
	literals []*regexp.Regexp // longest secret first, so a value containing another is redacted whole
	lower    []string         // the secrets in lower case, for MayContinue
}

// NewRedactor returns a redactor that also removes each literal (values
// shorter than 8 bytes are ignored: they would hide ordinary words).
func NewRedactor(literals []string) *Redactor {
	var ls []string
	for _, l := range literals {
		if len(l) >= 8 {
			ls = append(ls, l)
		}
	}
	sort.Slice(ls, func(i, j int) bool { return len(ls[i]) > len(ls[j]) })
	r := &Redactor{}
	for _, l := range ls {
		r.literals = append(r.literals, literalPattern(l))
		r.lower = append(r.lower, strings.ToLower(l))
	}
	return r
}

// literalPattern matches l case-insensitively, with '/' optionally
// escaped as `\/` and at most one line break (\n or \r\n) between any
// two of its characters.
func literalPattern(l string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("(?i)")
	for i, c := range l {
		if i > 0 {
			b.WriteString(`(?:\r?\n)?`)
		}
		if c == '/' {
			b.WriteString(`\\?/`)
			continue
		}
		b.WriteString(regexp.QuoteMeta(string(c)))
	}
	return regexp.MustCompile(b.String())
}

// Redact returns s with secrets replaced by Redacted.
func (r *Redactor) Redact(s string) string {
	if len(r.literals) > 0 {
		// A literal's pattern runs only where its first characters
		// appear, in any case, escaping or line breaking: the patterns of
		// long secrets (session tokens) are slow to run over every
		// megabyte of ordinary output.
		flat := strings.NewReplacer(`\/`, "/", "\r", "", "\n", "").Replace(strings.ToLower(s))
		for i, re := range r.literals {
			if strings.Contains(flat, r.lower[i][:min(8, len(r.lower[i]))]) {
				s = re.ReplaceAllLiteralString(s, Redacted)
			}
		}
	}
	s = reLabeled.ReplaceAllString(s, "${1}"+Redacted)
	s = reSTSToken.ReplaceAllString(s, Redacted)
	s = reKeyID.ReplaceAllStringFunc(s, func(k string) string { return k[:4] + Redacted })
	return s
}

// MayContinue reports whether text (a stream's output up to a line break)
// ends with the first characters of a literal secret, at least 4 of them:
// the next line could hold the rest, so the collector holds text back.
func (r *Redactor) MayContinue(text string) bool {
	tail := strings.ToLower(strings.TrimRight(text, "\r\n"))
	tail = strings.ReplaceAll(tail, `\/`, "/")
	for _, l := range r.lower {
		for k := min(len(l)-1, len(tail)); k >= 4; k-- {
			if strings.HasSuffix(tail, l[:k]) {
				return true
			}
		}
	}
	return false
}

// EnvFile is a parsed KEY=VALUE credential file.
type EnvFile map[string]string

// nonSecretKeys are env-file keys whose values are not redacted from
// output (a region name would otherwise vanish from every answer).
var nonSecretKeys = []string{"REGION", "OUTPUT", "PROFILE", "PAGER"}

// ReadEnvFile reads path: KEY=VALUE lines, '#' comments, an optional
// "export " and optional quotes around the value. It is read at every run
// so rotated credentials take effect without a restart.
func ReadEnvFile(path string) (EnvFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read env file: %w", err)
	}
	defer f.Close()
	env := EnvFile{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("env file %s line %d: not KEY=VALUE", path, n)
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		env[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("env file %s: %w", path, err)
	}
	return env, nil
}

// Secrets returns the values that must never appear in output.
func (e EnvFile) Secrets() []string {
	var out []string
	for k, v := range e {
		secret := true
		for _, s := range nonSecretKeys {
			if strings.HasSuffix(strings.ToUpper(k), s) {
				secret = false
			}
		}
		if secret && v != "" {
			out = append(out, v)
		}
	}
	return out
}
