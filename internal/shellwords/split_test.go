package shellwords

import (
	"errors"
	"fmt"
	"testing"
)

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		// No words.
		{"", nil},
		{"   ", nil},
		{" \t\r\n\u00a0 ", nil},
		// What separates words.
		{"ec2 describe-instances", []string{"ec2", "describe-instances"}},
		{"a b  c", []string{"a", "b", "c"}},
		{"  a\t b\n c  ", []string{"a", "b", "c"}},
		{"a\r\nb", []string{"a", "b"}},
		{"a\u00a0b", []string{"a", "b"}},             // Slack's non-breaking space
		{"a\u202fb\u3000c", []string{"a", "b", "c"}}, // narrow no-break, ideographic space
		{"a\u200bb", []string{"a\u200bb"}},           // zero-width space is not white space
		// Single and double quotes.
		{`--query 'Reservations[].Instances[].InstanceId'`, []string{"--query", "Reservations[].Instances[].InstanceId"}},
		{`"a b" 'c d'`, []string{"a b", "c d"}},
		{`a "b c" 'd e'`, []string{"a", "b c", "d e"}},
		{"'a\u00a0b'", []string{"a\u00a0b"}},
		{`""`, []string{""}},
		{`'' x`, []string{"", "x"}},
		{`'no \escape'`, []string{`no \escape`}},
		{`"a\"b"`, []string{`a"b`}},
		{`"say \"hi\" \\ \n"`, []string{`say "hi" \ \n`}},
		{`"it's"`, []string{"it's"}},
		{`'say "hi"'`, []string{`say "hi"`}},
		// Quotes inside words join with the text around them.
		{`a"b c"d`, []string{"ab cd"}},
		{`it'` + `s a'b`, []string{"its ab"}},
		{`--name="my pi"`, []string{"--name=my pi"}},
		// Chat clients' typographic quotes.
		{"“smart quotes”", []string{"smart quotes"}},
		{"“a b” ‘c d’", []string{"a b", "c d"}},
		{"‘a’b’c’", []string{"abc"}},
		{"'a’ “b\"", []string{"a", "b"}},
		{`"a \“b\” c"`, []string{"a “b” c"}},
		// Backslash outside quotes.
		{`a\ b`, []string{"a b"}},
		{`\'`, []string{"'"}},
		{`\\`, []string{`\`}},
		{`\"x\"`, []string{`"x"`}},
		{"a\\\u00a0b", []string{"a\u00a0b"}},
		{`\é`, []string{"é"}},
		// Backslash-newline continues the line.
		{"a\\\nb", []string{"ab"}},
		{"a\\\r\nb", []string{"ab"}},
		{"ec2 \\\n  describe-instances", []string{"ec2", "describe-instances"}},
		{"a \\\n", []string{"a"}},
		{"\\\n", nil},
		{"\"a\\\nb\"", []string{"ab"}},
		{"'a\\\nb'", []string{"a\\\nb"}},
		// Nothing is interpreted: metacharacters are literal words.
		{`; rm -rf /`, []string{";", "rm", "-rf", "/"}},
		{`'$(id)' ; rm -rf / ` + "`x`", []string{"$(id)", ";", "rm", "-rf", "/", "`x`"}},
		{`$(id) ${HOME} $HOME`, []string{"$(id)", "${HOME}", "$HOME"}},
		{"`id`", []string{"`id`"}},
		{`a|b&&c>d<e *.txt ~ ?`, []string{"a|b&&c>d<e", "*.txt", "~", "?"}},
		{`x;y`, []string{"x;y"}},
		{`a #b`, []string{"a", "#b"}},
		// Bytes that are not UTF-8 stay as they are.
		{"a\xff b\xc3", []string{"a\xff", "b\xc3"}},
	} {
		got, err := Split(tc.in)
		if err != nil || fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tc.want) {
			t.Errorf("Split(%q): got %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestSplitErrors(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want error
	}{
		{`'abc`, ErrUnclosedSingle},
		{`'open`, ErrUnclosedSingle},
		{`it's`, ErrUnclosedSingle},
		{"it’s", ErrUnclosedSingle},
		{`"abc`, ErrUnclosedDouble},
		{`"open`, ErrUnclosedDouble},
		{`a "b\"`, ErrUnclosedDouble},
		{"“x", ErrUnclosedDouble},
		{`"a\`, ErrUnclosedDouble},
		{`where "unterminated`, ErrUnclosedDouble},
		{`trailing\`, ErrTrailingBackslash},
		{`\`, ErrTrailingBackslash},
		{`a \`, ErrTrailingBackslash},
		{`"a" \`, ErrTrailingBackslash},
	} {
		got, err := Split(tc.in)
		if !errors.Is(err, tc.want) || got != nil {
			t.Errorf("Split(%q): got %q, %v; want error %v", tc.in, got, err, tc.want)
		}
	}
}

func TestQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "''"},
		{"plain", "plain"},
		{"$(id);|&*~#", "$(id);|&*~#"},
		{"é", "é"},
		{"a b", "'a b'"},
		{"a\u00a0b", "'a\u00a0b'"},
		{"a\nb", "'a\nb'"},
		{`back\slash`, `'back\slash'`},
		{`"q"`, `'"q"'`},
		{"it's", `'it'\''s'`},
		{"it’s", `'it'\’'s'`},
		{"“x”", "'“x”'"},
	} {
		if got := Quote(tc.in); got != tc.want {
			t.Errorf("Quote(%q): got %s, want %s", tc.in, got, tc.want)
		}
	}
	words := []string{"aws", "pi1", "it's", `back\slash`, `"q"`, ""}
	if got, err := Split(Join(words)); err != nil || fmt.Sprintf("%q", got) != fmt.Sprintf("%q", words) {
		t.Errorf("Split(Join(%q)): got %q, %v", words, got, err)
	}
}
