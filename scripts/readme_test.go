package scripts

import (
	"os"
	"os/exec"
	"path"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// TestReadmeLayoutListsEveryPackage keeps the README's table of packages
// ("Every package, by room") equal to `go list ./...`: a new package must
// get a row, and a row must not name a package that is gone. In a cell,
// "`internal/transport`, `transport/pki`" names internal/transport/pki: a
// path that does not start at the repository's top is relative to the
// parent of the cell's first path.
func TestReadmeLayoutListsEveryPackage(t *testing.T) {
	const module = "github.com/pifleet/pifleet"
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "Every package, by room")
	if !ok {
		t.Fatal(`README.md has no "Every package, by room" table`)
	}
	table, _, _ = strings.Cut(table, "\n## ")
	top := regexp.MustCompile("^(agent|hub|internal|scripts|systemd|firmware-notes)(/|$)")
	code := regexp.MustCompile("`([^`]+)`")
	listed := map[string]bool{}
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 3 {
			continue
		}
		first := ""
		for _, m := range code.FindAllStringSubmatch(cells[1], -1) {
			p := strings.TrimSuffix(strings.TrimSuffix(m[1], "/main.go"), "/")
			if !top.MatchString(p) {
				if first == "" {
					t.Errorf("README table: %q is relative but starts its cell", m[1])
					continue
				}
				p = path.Join(path.Dir(first), p)
			} else if first == "" {
				first = p
			}
			listed[p] = true
		}
	}
	cmd := exec.Command("go", "list", "./...")
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list ./... in the repository: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		rel := strings.TrimPrefix(strings.TrimPrefix(p, module), "/")
		if !listed[rel] {
			t.Errorf("README's package table has no row for %s", rel)
		}
	}
	var stale []string
	for p := range listed {
		if _, err := os.Stat("../" + p); err != nil {
			stale = append(stale, p)
		}
	}
	sort.Strings(stale)
	for _, p := range stale {
		t.Errorf("README's package table names %s, which does not exist", p)
	}
}
