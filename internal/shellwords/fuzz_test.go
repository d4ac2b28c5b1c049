package shellwords

import (
	"slices"
	"strings"
	"testing"
	"unicode"
)

// FuzzSplit checks Split against its rules on any text: it never panics;
// text with nothing special is split exactly at white space; only text with
// a quote or backslash can fail; and whatever Quote and Join write, Split
// reads back unchanged.
func FuzzSplit(f *testing.F) {
	for _, s := range []string{
		"", "   ", "a b", `a 'b' "c\"d" e\ f`, "“x”", `\`, "it’s",
		"a\u00a0b", "a\\\nb", "a\\\r\nb", `"a\`, `'' ""`, "a\xffb", `$(id) ; rm -rf /`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words, err := Split(s)
		if strings.IndexFunc(s, func(r rune) bool { return r == '\\' || isSingle(r) || isDouble(r) }) < 0 {
			// Nothing quoted or escaped: exactly the white-space fields.
			want := strings.FieldsFunc(s, unicode.IsSpace)
			if len(want) == 0 {
				want = nil
			}
			if err != nil || !slices.Equal(words, want) || (words == nil) != (want == nil) {
				t.Fatalf("Split(%q): got %q, %v; want %q", s, words, err, want)
			}
		}
		if err == nil {
			if again, err := Split(Join(words)); err != nil || !slices.Equal(again, words) {
				t.Fatalf("Split(Join(%q)) = %q, %v", words, again, err)
			}
		} else if words != nil {
			t.Fatalf("Split(%q): words %q with error %v", s, words, err)
		}
		// Any text, quoted, is one word: itself.
		if got, err := Split(Quote(s)); err != nil || len(got) != 1 || got[0] != s {
			t.Fatalf("Split(Quote(%q)) = %q, %v; want the one word", s, got, err)
		}
	})
}
