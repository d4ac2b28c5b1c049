package policy

import (
	"errors"
	"fmt"
	"strings"
)

// ErrUnterminated is returned by Split for an unclosed quote.
var ErrUnterminated = errors.New("unterminated quote")

// Split splits s into words like a POSIX shell splits a simple command,
// without interpreting anything: words are separated by unquoted white
// space; '…' quotes everything literally; "…" quotes everything except
// \" and \\; outside quotes a backslash makes the next character literal.
// The typographic quotes that chat clients substitute (“…” and ‘…’) count
// as " and '. $, `, ;, |, &, <, >, *, ? and ~ are ordinary characters.
func Split(s string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		inW   bool // a word has started (even an empty quoted one)
	)
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\u00a0':
			if inW {
				words = append(words, cur.String())
				cur.Reset()
				inW = false
			}
		case r == '\\':
			inW = true
			if i+1 < len(rs) {
				i++
				if rs[i] != '\n' { // backslash-newline joins lines
					cur.WriteRune(rs[i])
				}
			} else {
				cur.WriteRune('\\')
			}
		case r == '\'' || r == '‘' || r == '’':
			inW = true
			j := i + 1
			for ; j < len(rs) && rs[j] != '\'' && rs[j] != '’' && rs[j] != '‘'; j++ {
				cur.WriteRune(rs[j])
			}
			if j == len(rs) {
				return nil, fmt.Errorf("split %q: %w (')", s, ErrUnterminated)
			}
			i = j
		case r == '"' || r == '“' || r == '”':
			inW = true
			j := i + 1
			for ; j < len(rs) && rs[j] != '"' && rs[j] != '”' && rs[j] != '“'; j++ {
				if rs[j] == '\\' && j+1 < len(rs) && (rs[j+1] == '"' || rs[j+1] == '\\') {
					j++
				}
				cur.WriteRune(rs[j])
			}
			if j == len(rs) {
				return nil, fmt.Errorf("split %q: %w (\")", s, ErrUnterminated)
			}
			i = j
		default:
			inW = true
			cur.WriteRune(r)
		}
	}
	if inW {
		words = append(words, cur.String())
	}
	return words, nil
}
