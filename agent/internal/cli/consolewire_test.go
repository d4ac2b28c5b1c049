package cli

import (
	"log/slog"
	"path/filepath"
	"testing"
)

func TestConsoleBannerOff(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, path := range []string{"", "off"} {
		if consoleBanner(log, path) != nil {
			t.Errorf("consoleBanner(%q) is on, want off", path)
		}
	}
	// A path turns it on (what it writes is console's test; calling it
	// here would run agetty --reload on this machine's gettys).
	if consoleBanner(log, filepath.Join(t.TempDir(), "pifleet.issue")) == nil {
		t.Error("consoleBanner(path) is off, want on")
	}
}
