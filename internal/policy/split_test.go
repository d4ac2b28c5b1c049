package policy

import (
	"errors"
	"reflect"
	"testing"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"   ", nil},
		{"ec2 describe-instances", []string{"ec2", "describe-instances"}},
		{"  a\t b\n c  ", []string{"a", "b", "c"}},
		{`--query 'Reservations[].Instances[].InstanceId'`, []string{"--query", "Reservations[].Instances[].InstanceId"}},
		{`"a b" 'c d'`, []string{"a b", "c d"}},
		{`a"b c"d`, []string{"ab cd"}},
		{`""`, []string{""}},
		{`'' x`, []string{"", "x"}},
		{`a\ b`, []string{"a b"}},
		{`\'`, []string{"'"}},
		{`"say \"hi\" \\ \n"`, []string{`say "hi" \ \n`}},
		{`'no \escape'`, []string{`no \escape`}},
		{`trailing\`, []string{`trailing\`}},
		// Nothing is interpreted: metacharacters are literal words.
		{`; rm -rf /`, []string{";", "rm", "-rf", "/"}},
		{`$(id) ${HOME} $HOME`, []string{"$(id)", "${HOME}", "$HOME"}},
		{"`id`", []string{"`id`"}},
		{`a|b&&c>d<e *.txt ~ ?`, []string{"a|b&&c>d<e", "*.txt", "~", "?"}},
		{`x;y`, []string{"x;y"}},
		// Chat clients' typographic quotes.
		{"“a b” ‘c d’", []string{"a b", "c d"}},
		{"a\u00a0b", []string{"a", "b"}},
	}
	for _, tt := range tests {
		got, err := Split(tt.in)
		if err != nil {
			t.Errorf("Split(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Split(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSplitUnterminated(t *testing.T) {
	for _, in := range []string{`'abc`, `"abc`, `a "b\"`, "“x"} {
		if _, err := Split(in); !errors.Is(err, ErrUnterminated) {
			t.Errorf("Split(%q) error = %v, want ErrUnterminated", in, err)
		}
	}
}

func FuzzSplit(f *testing.F) {
	for _, s := range []string{`a 'b' "c\"d" e\ f`, "“x”", `\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = Split(s) // never panics
	})
}
