package shellwords

import (
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The errors Split returns; their text is written for a person (the chat
// engine shows it as "I could not read that: …").
var (
	ErrUnclosedSingle    = errors.New("unclosed single quote")
	ErrUnclosedDouble    = errors.New("unclosed double quote")
	ErrTrailingBackslash = errors.New("backslash at the end escapes nothing")
)

// Split breaks s into words by the rules in the package documentation.
// Text without words (empty, or only spaces) gives nil.
func Split(s string) ([]string, error) {
	var (
		words  []string
		cur    strings.Builder
		inWord bool // a word has started (even an empty quoted one)
	)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		switch {
		case unicode.IsSpace(r):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case r == '\\':
			if i == len(s) {
				return nil, ErrTrailingBackslash
			}
			if m := newline(s[i:]); m > 0 {
				i += m
				continue
			}
			_, m := utf8.DecodeRuneInString(s[i:])
			cur.WriteString(s[i : i+m])
			i += m
			inWord = true
		case isSingle(r):
			j := strings.IndexFunc(s[i:], isSingle)
			if j < 0 {
				return nil, ErrUnclosedSingle
			}
			cur.WriteString(s[i : i+j])
			_, m := utf8.DecodeRuneInString(s[i+j:])
			i += j + m
			inWord = true
		case isDouble(r):
			m, err := double(&cur, s[i:])
			if err != nil {
				return nil, err
			}
			i += m
			inWord = true
		default:
			cur.WriteString(s[i-n : i])
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// double copies the inside of a double-quoted string that starts at s
// (just after the opening quote) to cur and returns how much of s it used,
// the closing quote included.
func double(cur *strings.Builder, s string) (int, error) {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case isDouble(r):
			return i + n, nil
		case r == '\\' && i+n < len(s):
			if m := newline(s[i+n:]); m > 0 {
				i += n + m
				continue
			}
			if e, m := utf8.DecodeRuneInString(s[i+n:]); e == '\\' || isDouble(e) {
				cur.WriteString(s[i+n : i+n+m])
				i += n + m
				continue
			}
		}
		cur.WriteString(s[i : i+n])
		i += n
	}
	return 0, ErrUnclosedDouble
}

// newline returns the length of the line break that s starts with: 1 for
// "\n", 2 for "\r\n", 0 for none.
func newline(s string) int {
	switch {
	case strings.HasPrefix(s, "\n"):
		return 1
	case strings.HasPrefix(s, "\r\n"):
		return 2
	}
	return 0
}

func isSingle(r rune) bool { return r == '\'' || r == '‘' || r == '’' }
func isDouble(r rune) bool { return r == '"' || r == '“' || r == '”' }
