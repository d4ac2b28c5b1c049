package cli

import (
	"fmt"
	"testing"

	"github.com/pifleet/pifleet/internal/shellwords"
)

// TestAskTextKeepsWords: what the shell split stays split the same way
// when the engine splits it again.
func TestAskTextKeepsWords(t *testing.T) {
	for _, args := range [][]string{
		{"where pi1"},
		{"aws", "pi1", "s3", "ls", "s3://a b"},
		{"aws", "pi1", "it's", `back\slash`, `"q"`, ""},
		{"fleet", "online"},
	} {
		got, err := shellwords.Split(askText(args))
		want := args
		if len(args) == 1 {
			want, _ = shellwords.Split(args[0])
		}
		if err != nil || fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
			t.Errorf("askText(%q) splits into %q, %v; want %q", args, got, err, want)
		}
	}
}
