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

// TestReadmeBenchFiguresAgree keeps the README's fleet figures for the
// code as it is in step: the 10,000-Pi embedded row of the bench table,
// the last row of the table of steps that got there, and the runs the
// text lists must give the same memory and CPU.
func TestReadmeBenchFiguresAgree(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "\n## How many Pis")
	if !ok {
		t.Fatal(`README.md has no "How many Pis" section`)
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	row := func(prefix string) []string {
		for _, l := range strings.Split(sec, "\n") {
			if strings.HasPrefix(l, prefix) {
				cells := strings.Split(l, "|")
				for i := range cells {
					cells[i] = strings.TrimSpace(cells[i])
				}
				return cells
			}
		}
		t.Fatalf("no table row starting %q", prefix)
		return nil
	}
	bench := row("| embedded (nats-server") // | engine | Pis | exact | RSS | CPU | …
	steps := row("| the hub's GC settings") // the last step: the code as it is
	if bench[2] != "10,000" {
		t.Fatalf("the embedded row is for %s Pis, want 10,000", bench[2])
	}
	if bench[4] != steps[2] {
		t.Errorf("hub RSS: bench table %q, table of steps %q", bench[4], steps[2])
	}
	rng := regexp.MustCompile(`^(\d+\.\d)–(\d+\.\d) %`)
	bm, sm := rng.FindStringSubmatch(bench[5]), rng.FindStringSubmatch(steps[3])
	if bm == nil || sm == nil || bm[0] != sm[0] {
		t.Fatalf("hub CPU: bench table %q, table of steps %q", bench[5], steps[3])
	}
	runs := regexp.MustCompile(`the other \w+ are ([\d., and]+) %`).FindStringSubmatch(sec)
	if runs == nil {
		t.Fatal(`the text no longer lists the runs ("the other … are … %")`)
	}
	nums := regexp.MustCompile(`\d+\.\d`).FindAllString(runs[1], -1)
	if len(nums) == 0 || nums[0] != bm[1] || nums[len(nums)-1] != bm[2] {
		t.Errorf("the runs the text lists (%s %%) do not span the table's %s", runs[1], bm[0])
	}
}
