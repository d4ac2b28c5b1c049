package enrol_test

import (
	"strings"
	"testing"

	"github.com/pifleet/pifleet/internal/enrol"
)

// FuzzParseToken: the hub parses tokens from the network. Any input is
// refused or parsed, never a panic, and a parsed token prints back as the
// input (trimmed, lower case): one string, one token.
func FuzzParseToken(f *testing.F) {
	tok, _ := enrol.NewToken(enrol.PinOf([]byte("ca")))
	for _, s := range []string{tok.String(), "pft1_", "pft2_abc", "", " " + strings.ToUpper(tok.String()) + "\n", tok.String()[:50]} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := enrol.ParseToken(s)
		if err != nil {
			return
		}
		if want := strings.ToLower(strings.TrimSpace(s)); got.String() != want {
			t.Errorf("ParseToken(%q).String() = %q, want %q", s, got.String(), want)
		}
	})
}
