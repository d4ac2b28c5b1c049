package alerts

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/pifleet/pifleet/hub/internal/fleet"
	"github.com/pifleet/pifleet/internal/wire"
)

// fileNames names a summary's File after the kind of its first list.
var fileNames = map[string]string{
	BurstLost:      "pifleet-lost.txt",
	BurstBack:      "pifleet-back-online.txt",
	BurstBlip:      "pifleet-went-and-came-back.txt",
	BurstRelapse:   "pifleet-came-back-briefly.txt",
	BurstProblem:   "pifleet-health-problems.txt",
	BurstRecovered: "pifleet-recovered.txt",
	BurstAddress:   "pifleet-address-changes.txt",
	BurstOther:     "pifleet-alerts.txt",
	Restart:        "pifleet-still-away.txt",
}

// burstAlert is the summary of a burst of kind at at; entries are the
// file's lines (default: the ids).
func burstAlert(kind, head string, at time.Time, ids, entries []string) Alert {
	s := &Summary{Head: head, Timed: true, Lines: []string{names(ids, len(ids))}, Count: len(ids), Devices: ids}
	if len(ids) > MaxListed {
		if entries == nil {
			entries = ids
		}
		s.addFile(kind, head+" at "+at.UTC().Format(time.RFC3339), entries)
	}
	return Alert{Kind: kind, Time: at, Detail: head, Summary: s}
}

// also adds a second list (as a line, and to the file when there is one
// or when the list does not fit inline).
func (s *Summary) also(kind, what string, ids []string) {
	s.Lines = append(s.Lines, what+": "+names(ids, len(ids)))
	if s.File != nil || len(ids) > MaxListed {
		s.addFile(kind, what, ids)
	}
}

// addFile adds a titled list to the summary's file (named after kind when
// it is the first).
func (s *Summary) addFile(kind, title string, lines []string) {
	if s.File == nil {
		s.File = &File{Name: fileNames[kind]}
	} else {
		s.File.Content += "\n"
	}
	s.File.Content += title + ":\n" + strings.Join(lines, "\n") + "\n"
}

// causeLine is "298 connection lost · 10 went silent", most first.
func causeLine(counts map[string]int) string {
	words := map[string]string{"lost": "connection lost", detailSilent: "went silent", "offline": "shut down"}
	keys := slices.SortedFunc(maps.Keys(counts), func(x, y string) int {
		return cmp.Or(cmp.Compare(counts[y], counts[x]), cmp.Compare(x, y))
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		w := words[k]
		if w == "" {
			w = fleet.ProblemWords(wire.Problem(k))
		}
		parts[i] = fleet.Thousands(counts[k]) + " " + w
	}
	return strings.Join(parts, " · ")
}

// names lists the first MaxListed of xs, and how many more of total.
func names(xs []string, total int) string {
	if len(xs) > MaxListed {
		xs = xs[:MaxListed]
	}
	s := strings.Join(xs, ", ")
	if more := total - len(xs); more > 0 {
		s += " and " + fleet.Thousands(more) + " more"
	}
	return s
}

// pis is "1 Pi", "2,000 Pis".
func pis(n int) string {
	if n == 1 {
		return "1 Pi"
	}
	return fleet.Thousands(n) + " Pis"
}
