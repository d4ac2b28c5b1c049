package cli

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pifleet/pifleet/internal/testenv"
)

// TestHTTPTokenFile: an empty token file is refused; one others can read,
// or a token short enough to guess, is taken with a warning; a good one
// silently.
func TestHTTPTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if _, err := readSecretFile(write("empty", " \n", 0o600)); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty token file: err = %v, want refused as empty", err)
	}
	for _, tc := range []struct {
		name, content string
		mode          os.FileMode
		want          []string // in the log; none: no warning
	}{
		{"good", strings.Repeat("ab", 32) + "\n", 0o600, nil},
		{"world-readable", strings.Repeat("ab", 32), 0o644, []string{"readable by other users", "mode=-rw-r--r--"}},
		{"five bytes", "12345\n", 0o600, []string{"only 5 characters"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := write(tc.name, tc.content, tc.mode)
			token, err := readSecretFile(p)
			if err != nil || token != strings.TrimSpace(tc.content) {
				t.Fatalf("readSecretFile = %q, %v", token, err)
			}
			logs := &testenv.SyncBuffer{}
			warnWeakToken(slog.New(slog.NewTextHandler(logs, nil)), p, token)
			if len(tc.want) == 0 && logs.String() != "" {
				t.Errorf("warned about a good token file: %s", logs)
			}
			for _, w := range tc.want {
				if !strings.Contains(logs.String(), w) {
					t.Errorf("log %q lacks %q", logs, w)
				}
			}
			if strings.Contains(logs.String(), token) {
				t.Errorf("the token itself is in the log: %s", logs)
			}
		})
	}
}
