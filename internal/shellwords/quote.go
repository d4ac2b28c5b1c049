package shellwords

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Quote returns s as one word that Split reads back as s: unchanged when
// nothing in it is special to Split, otherwise in single quotes; a single
// quote (', ‘ or ’) inside ends the quoted part, follows escaped by a
// backslash, and a new quoted part begins:
//
//	it's → 'it'\''s'
func Quote(s string) string {
	if s != "" && strings.IndexFunc(s, special) < 0 {
		return s
	}
	var b strings.Builder
	b.WriteByte('\'')
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if isSingle(r) {
			b.WriteString(`'\` + s[i:i+n] + `'`)
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	b.WriteByte('\'')
	return b.String()
}

// Join quotes each word and joins them with spaces; Split(Join(w)) gives
// w back.
func Join(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = Quote(w)
	}
	return strings.Join(q, " ")
}

// special reports whether r means something to Split outside quotes.
func special(r rune) bool {
	return unicode.IsSpace(r) || r == '\\' || isSingle(r) || isDouble(r)
}
