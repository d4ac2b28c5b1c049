// Package golden compares what a test produced with a golden file under
// the package's testdata/, and rewrites the file instead when the test
// runs with -update (go test ./pkg -update). It is stdlib-only and imports
// nothing of pifleet, so any package's tests can use it, internal/wire's
// included.
package golden

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files instead of comparing with them")

// Check compares got with the file at path (relative to the package, e.g.
// testdata/golden/x.json) byte for byte and fails t when they differ or the
// file is missing. With -update it writes got to path first (creating its
// directory). It reports whether they matched, so a caller can add what a
// difference means.
func Check(t testing.TB, path string, got []byte) bool {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (go test -run '%s' -update creates it): %v", t.Name(), err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", path, got, want)
		return false
	}
	return true
}
