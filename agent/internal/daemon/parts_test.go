package daemon

import (
	"log/slog"
	"path/filepath"
	"testing"
)

func TestBannerOff(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, path := range []string{"", "off"} {
		if newBanner(log, path, nil) != nil {
			t.Errorf("newBanner(%q) is on, want off", path)
		}
	}
	// A path turns it on (what it writes is console's test, and the
	// daemon's clean-stop test with a fake agetty reload).
	if newBanner(log, filepath.Join(t.TempDir(), "pifleet.issue"), nil) == nil {
		t.Error("newBanner(path) is off, want on")
	}
}
