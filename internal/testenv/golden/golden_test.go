package golden

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// recorder is a testing.TB that records failures; Fatalf ends the
// goroutine as the real one does.
type recorder struct {
	testing.TB
	failures []string
}

func (r *recorder) Helper()      {}
func (r *recorder) Name() string { return "TestX" }
func (r *recorder) Errorf(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}
func (r *recorder) Fatal(args ...any) { r.Fatalf("%s", fmt.Sprint(args...)) }

// check runs Check with a recorder and returns its result and failures.
func check(path string, got []byte) (ok bool, failures []string) {
	r := &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		ok = Check(r, path, got)
	}()
	<-done
	return ok, r.failures
}

// setUpdate sets -update for one test (these tests run the same with or
// without it on the command line).
func setUpdate(t *testing.T, v bool) {
	old := *update
	*update = v
	t.Cleanup(func() { *update = old })
}

func TestCheck(t *testing.T) {
	setUpdate(t, false)
	dir := t.TempDir()
	path := filepath.Join(dir, "x.golden")
	if err := os.WriteFile(path, []byte("same\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, got string
		ok        bool
		failure   string // "" for none
	}{
		{path, "same\n", true, ""},
		{path, "same", false, "differs from the golden file"},
		{filepath.Join(dir, "missing.golden"), "x", false, "-update creates it"},
	} {
		ok, failures := check(tc.path, []byte(tc.got))
		if ok != tc.ok || (tc.failure == "") != (len(failures) == 0) || len(failures) > 0 && !strings.Contains(failures[0], tc.failure) {
			t.Errorf("Check(%s, %q): got %v %q, want %v and a failure saying %q", filepath.Base(tc.path), tc.got, ok, failures, tc.ok, tc.failure)
		}
	}
}

func TestCheckUpdate(t *testing.T) {
	setUpdate(t, true)
	path := filepath.Join(t.TempDir(), "new", "x.golden")
	if ok, failures := check(path, []byte("fresh\n")); !ok || len(failures) > 0 {
		t.Fatalf("Check with -update: got %v %q, want true and no failures", ok, failures)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "fresh\n" {
		t.Errorf("golden file after -update: got %q, %v; want %q", b, err, "fresh\n")
	}
}
