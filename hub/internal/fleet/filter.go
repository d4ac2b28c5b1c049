package fleet

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/pifleet/pifleet/internal/wire"
)

// Filter selects devices: "" or "all", "online", "offline", "problems", or
// "label:NAME" (a bare word that is a known label also works).
func (f *Fleet) Filter(expr string) ([]Device, error) {
	all := f.List()
	expr = strings.ToLower(strings.TrimSpace(expr))
	var keep func(d *Device) bool
	switch {
	case expr == "" || expr == "all":
		return all, nil
	case expr == "online":
		keep = func(d *Device) bool { return d.Online() }
	case expr == "offline":
		keep = func(d *Device) bool { return !d.Online() }
	case expr == "problems" || expr == "unhealthy":
		keep = func(d *Device) bool { return len(d.Problems()) > 0 || !d.Online() }
	default:
		label := strings.TrimPrefix(expr, "label:")
		if label == "" { // "label:" would list nothing, as if no Pi were there
			return nil, errNoLabel
		}
		keep = func(d *Device) bool { return d.Status != nil && slices.Contains(d.Status.Labels, label) }
		if !strings.HasPrefix(expr, "label:") && !f.hasLabel(all, label) {
			return nil, fmt.Errorf("unknown filter %q: use online, offline, problems or label:NAME", expr)
		}
	}
	var out []Device
	for i := range all {
		if keep(&all[i]) {
			out = append(out, all[i])
		}
	}
	return out, nil
}

func (f *Fleet) hasLabel(all []Device, label string) bool {
	for _, d := range all {
		if d.Status != nil && slices.Contains(d.Status.Labels, label) {
			return true
		}
	}
	return false
}

// errNoLabel is "label:" with nothing after it.
var errNoLabel = errors.New("label: needs a label's name, e.g. label:lab")

// Resolve turns a target (one id, a comma list, "all", or a label) into
// device ids. Unknown ids are an error that names the closest known id.
func (f *Fleet) Resolve(target string) ([]string, error) {
	target = strings.TrimSpace(target)
	if target == "" {
		return nil, fmt.Errorf("no target: name a device id, a comma list, a label or all")
	}
	if target == "all" {
		ids := f.IDs()
		if len(ids) == 0 {
			return nil, fmt.Errorf("the fleet is empty")
		}
		return ids, nil
	}
	if label, ok := strings.CutPrefix(target, "label:"); ok {
		if label = strings.TrimSpace(label); label == "" {
			return nil, errNoLabel
		}
		return f.byLabel(label)
	}
	var out []string
	for _, id := range strings.Split(target, ",") {
		id = strings.TrimSpace(id)
		if _, ok := f.Get(id); ok {
			out = append(out, id)
			continue
		}
		if ids, err := f.byLabel(id); err == nil && !strings.Contains(target, ",") {
			return ids, nil
		}
		return nil, f.UnknownID(id)
	}
	return out, nil
}

func (f *Fleet) byLabel(label string) ([]string, error) {
	var out []string
	for _, d := range f.List() {
		if d.Status != nil && slices.Contains(d.Status.Labels, label) {
			out = append(out, d.ID)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no device has the label %q", label)
	}
	return out, nil
}

// UnknownID returns an error for an id that is not in the fleet, naming
// the closest known id when there is a plausible one.
func (f *Fleet) UnknownID(id string) error {
	if problem := wire.IDProblem(id); problem != "" {
		return fmt.Errorf("%q is not a valid device id: %s", id, problem)
	}
	if best := f.Suggest(id); best != "" {
		return fmt.Errorf("no device %q; did you mean %q?", id, best)
	}
	return fmt.Errorf("no device %q", id)
}

// Suggest is the known id closest to an unknown one (the "did you mean"
// of UnknownID), or "".
func (f *Fleet) Suggest(id string) string {
	if wire.IDProblem(id) != "" {
		return ""
	}
	return Closest(id, f.IDs())
}

// Closest returns the candidate nearest to s by edit distance, or "" when
// none is within a third of s's length (+1).
func Closest(s string, candidates []string) string {
	best, bestD := "", len(s)/3+2
	for _, c := range candidates {
		if d := levenshtein(strings.ToLower(s), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
