package fleet

import (
	"slices"
	"sort"
	"strings"

	"github.com/pifleet/pifleet/internal/wire"
)

// Unknown is the key under which Summary counts a device whose state,
// model or agent version the hub does not know (no state or no status
// message yet, or an agent that does not report it).
const Unknown = "unknown"

// Summary counts the devices of a fleet (or of a filtered part of it). It
// is the body of GET /api/summary and the head of a large `fleet` answer.
type Summary struct {
	// Total is the number of devices counted.
	Total int `json:"total"`
	// Online is States["online"], for convenience.
	Online int `json:"online"`
	// WithProblems is the number of devices reporting at least one health
	// problem (in their last status, also when they are offline now).
	WithProblems int `json:"with_problems"`
	// Unconfirmed counts the online devices shown so only because a
	// retained state replayed after a hub or broker restart says so: not
	// heard live since (PROTOCOL.md, "How a hub keeps the view true").
	Unconfirmed int `json:"unconfirmed"`
	// States counts devices by lifecycle state: always the four keys
	// online, offline, lost and unknown (no state message yet).
	States Counts `json:"states"`
	// Problems counts, per problem code, the devices reporting it.
	Problems Counts `json:"problems"`
	// Models counts devices by health.model ("unknown" when not reported).
	Models Counts `json:"models"`
	// AgentVersions counts devices by agent version ("unknown" when not
	// reported).
	AgentVersions Counts `json:"agent_versions"`
	// Labels counts, per label, the devices carrying it; a device with
	// several labels is counted under each, one without none under any.
	Labels Counts `json:"labels"`
}

// Counts maps a name to how many devices have it. It encodes as a JSON
// object (keys sorted); Sorted gives the order to show it to people in.
type Counts map[string]int

// Count is one entry of Counts.
type Count struct {
	Name string `json:"name"`
	N    int    `json:"n"`
}

// Sorted returns the entries with a count above zero, the largest first
// (ties by name, in natural order: room-4 before room-10).
func (c Counts) Sorted() []Count {
	out := make([]Count, 0, len(c))
	for k, n := range c {
		if n > 0 {
			out = append(out, Count{k, n})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].N != out[j].N {
			return out[i].N > out[j].N
		}
		return NaturalCompare(out[i].Name, out[j].Name) < 0
	})
	return out
}

// Summarize counts devs (e.g. the result of Filter).
func Summarize(devs []Device) Summary {
	s := Summary{
		Total:         len(devs),
		States:        Counts{string(wire.StateOnline): 0, string(wire.StateOffline): 0, string(wire.StateLost): 0, Unknown: 0},
		Problems:      Counts{},
		Models:        Counts{},
		AgentVersions: Counts{},
		Labels:        Counts{},
	}
	for i := range devs {
		d := &devs[i]
		state := string(d.State)
		if state == "" {
			state = Unknown
		}
		s.States[state]++
		if d.Unconfirmed() {
			s.Unconfirmed++
		}
		model, version := Unknown, Unknown
		if st := d.Status; st != nil {
			if m := strings.TrimSpace(st.Health.Model); m != "" {
				model = m
			}
			if v := strings.TrimSpace(st.AgentVersion); v != "" {
				version = v
			}
			for j, l := range st.Labels {
				if !slices.Contains(st.Labels[:j], l) { // a label listed twice is one device
					s.Labels[l]++
				}
			}
			ps := st.Health.Problems
			for j, p := range ps {
				if !slices.Contains(ps[:j], p) {
					s.Problems[string(p)]++
				}
			}
			if len(ps) > 0 {
				s.WithProblems++
			}
		}
		s.Models[model]++
		s.AgentVersions[version]++
	}
	s.Online = s.States[string(wire.StateOnline)]
	return s
}

// Summary counts the whole fleet.
func (f *Fleet) Summary() Summary { return Summarize(f.List()) }
