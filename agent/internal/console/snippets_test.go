package console

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSnippetsExist keeps doctor's "see …" advice pointing at files the
// agent's package installs: each snippet is a file of the repository's
// firmware-notes/ (which scripts/nfpm-agent.yaml ships to NotesDir), and
// the README section it names is a heading there.
func TestSnippetsExist(t *testing.T) {
	for _, s := range []string{SnippetEnableUART, SnippetDisableBT, SnippetMiniUARTBT, SnippetCmdline, SnippetSerialGetty} {
		rel, ok := strings.CutPrefix(s, NotesDir)
		if !ok {
			t.Errorf("snippet %q is not under %s", s, NotesDir)
			continue
		}
		name, section, _ := strings.Cut(rel, " ")
		b, err := os.ReadFile(filepath.Join("..", "..", "..", "firmware-notes", name))
		if err != nil {
			t.Errorf("snippet %q: %v", s, err)
			continue
		}
		if section != "" {
			heading := strings.Trim(section, `()"`)
			if !strings.Contains(string(b), "\n## "+heading) {
				t.Errorf("snippet %q: firmware-notes/%s has no heading starting %q", s, name, heading)
			}
		}
	}
}
