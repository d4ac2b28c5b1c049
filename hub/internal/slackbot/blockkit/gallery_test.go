package blockkit

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/testenv/golden"
)

// goldenDir holds slackbot's golden messages, one JSON file per message
// shape the hub posts (written by slackbot's tests with -update).
const goldenDir = "../testdata/golden"

// galleryPath is the committed gallery, relative to the repository root.
const galleryPath = "docs/slack/gallery.html"

// goldenItems reads every golden message, sorted by file name.
func goldenItems(t *testing.T) []Item {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(goldenDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatalf("no golden messages in %s", goldenDir)
	}
	var items []Item
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		m, err := Decode(bytes.NewReader(b))
		if err != nil {
			// With go test ./... -update the slackbot package may be
			// rewriting this file right now: run -update once more.
			t.Fatalf("%s: %v (a new field needs drawing in package blockkit)", p, err)
		}
		items = append(items, Item{Name: strings.TrimSuffix(filepath.Base(p), ".json"), Message: m})
	}
	return items
}

// galleryHTML renders the gallery of every golden message.
func galleryHTML(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	err := Gallery(&b, Page{
		Title: "pifleet in Slack: every message",
		Intro: "Each message the hub posts, drawn from its golden file in hub/internal/slackbot/testdata/golden " +
			"at phone width. Regenerate: go test ./hub/internal/slackbot/... -run 'TestGallery' -update",
		Items: goldenItems(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestGalleryGolden keeps docs/slack/gallery.html in step with the golden
// messages: it fails when a golden file changed and the gallery was not
// regenerated (-update rewrites it).
func TestGalleryGolden(t *testing.T) {
	path := filepath.Join(testenv.ModuleRoot(t), galleryPath)
	got := galleryHTML(t)
	if updating() {
		golden.Check(t, path, got)
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read the gallery (go test ./hub/internal/slackbot/... -run TestGallery -update writes it): %v", err)
	}
	if bytes.Equal(got, want) {
		return
	}
	gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	i := 0
	for i < len(gl) && i < len(wl) && gl[i] == wl[i] {
		i++
	}
	line := func(l []string) string {
		if i < len(l) {
			return l[i]
		}
		return "(end of file)"
	}
	t.Errorf("%s is stale: the golden messages changed (go test ./hub/internal/slackbot/... -run TestGallery -update rewrites it and the screenshot)\nfirst difference, line %d:\n  now:       %s\n  committed: %s",
		galleryPath, i+1, line(gl), line(wl))
}

// updating reports whether the tests run with -update (the golden package's
// flag).
func updating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}
