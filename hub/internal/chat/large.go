package chat

import (
	"fmt"
	"sort"
	"strings"

	"github.com/pifleet/pifleet/hub/internal/fleet"
	"github.com/pifleet/pifleet/internal/wire"
)

// LargeFleet is the number of matched devices above which `fleet` answers
// with a summary and the devices that need attention, and gives the whole
// list only as a file (fleet.txt): never thousands of lines in a message.
// Up to LargeFleet devices the answer lists every device.
const LargeFleet = 50

// Inline limits of a large fleet answer: at most AttentionRows devices
// needing attention, and no more than attentionBytes of their lines (long
// ids and many addresses make long lines), so the message stays well
// within a chat message's size; summaryTop entries per summary line.
const (
	AttentionRows  = 30
	attentionBytes = 6000
	summaryTop     = 8
)

// attentionRank orders the devices needing attention: lost sessions
// first (a Pi that died), then online Pis with health problems, then those
// whose state is unknown, then those shut down cleanly.
func attentionRank(d *fleet.Device) int {
	switch {
	case d.State == wire.StateLost:
		return 0
	case d.Online():
		return 1
	case d.State == "":
		return 2
	}
	return 3
}

// needsAttention: not online, or reporting a health problem (the
// `fleet problems` filter).
func needsAttention(d *fleet.Device) bool { return !d.Online() || len(d.Problems()) > 0 }

// largeFleet answers `fleet` for more than LargeFleet devices: the title,
// the summary, the devices needing attention (the first AttentionRows
// inline), and fleet.txt with the whole summary, every device needing
// attention and then every device.
func (e *Engine) largeFleet(devs []fleet.Device, title string) Reply {
	sum := fleet.Summarize(devs)
	var attn []*fleet.Device
	for i := range devs {
		if needsAttention(&devs[i]) {
			attn = append(attn, &devs[i])
		}
	}
	sort.SliceStable(attn, func(i, j int) bool { return attentionRank(attn[i]) < attentionRank(attn[j]) })

	lines := make([]string, len(attn))
	for i, d := range attn {
		lines[i] = e.DeviceLine(d)
	}
	inline, size := 0, 0
	for inline < len(attn) && inline < AttentionRows {
		// Both forms count: the CLI prints the plain line, Slack the marked.
		n := max(len(lines[inline]), len(e.deviceMarked(attn[inline])))
		if size+n > attentionBytes {
			break
		}
		size += n + 1
		inline++
	}

	type row struct {
		label       string
		short, full []string
	}
	rows := []row{
		{"States", countsText(stateCounts(sum), summaryTop, nil), countsText(stateCounts(sum), 0, nil)},
		{"Problems", countsText(sum.Problems.Sorted(), summaryTop, problemWord), countsText(sum.Problems.Sorted(), 0, problemWord)},
		{"Models", countsText(sum.Models.Sorted(), summaryTop, nil), countsText(sum.Models.Sorted(), 0, nil)},
		{"Agent versions", countsText(sum.AgentVersions.Sorted(), summaryTop, nil), countsText(sum.AgentVersions.Sorted(), 0, nil)},
		{"Labels", countsText(sum.Labels.Sorted(), summaryTop, nil), countsText(sum.Labels.Sorted(), 0, nil)},
	}
	var attnHead string
	switch {
	case len(attn) == 0:
		attnHead = fmt.Sprintf("All %s devices are online and healthy.", fleet.Thousands(len(devs)))
	case inline == len(attn):
		attnHead = fmt.Sprintf("Needing attention: %s (lost, unhealthy, unknown or offline):", fleet.Thousands(len(attn)))
	default:
		attnHead = fmt.Sprintf("Needing attention: %s (lost, unhealthy, unknown or offline); the first %d:", fleet.Thousands(len(attn)), inline)
	}

	var text, file strings.Builder
	fmt.Fprintln(&text, "Fleet: "+title)
	fmt.Fprintln(&file, "Fleet: "+title)
	var fields []Field
	for _, r := range rows {
		fmt.Fprintf(&text, "  %-16s %s\n", r.label+":", strings.Join(r.short, ", "))
		fmt.Fprintf(&file, "  %-16s %s\n", r.label+":", strings.Join(r.full, ", "))
		fields = append(fields, Field{Label: r.label, Value: strings.Join(r.short, "\n")})
	}
	fmt.Fprintln(&text, attnHead)
	secs := []Section{{Fields: fields}, {Text: attnHead}}
	for i, l := range lines[:inline] {
		fmt.Fprintln(&text, "  "+l)
		sec := Section{Text: e.deviceMarked(attn[i])}
		if i < ButtonRows {
			sec.Actions = DeviceActions(attn[i].ID)
		}
		secs = append(secs, sec)
	}

	if len(attn) > 0 {
		fmt.Fprintf(&file, "\nNeeding attention (%s):\n", fleet.Thousands(len(attn)))
		for _, l := range lines {
			fmt.Fprintln(&file, "  "+l)
		}
	}
	fmt.Fprintf(&file, "\nAll devices (%s):\n", fleet.Thousands(len(devs)))
	for i := range devs {
		fmt.Fprintln(&file, "  "+e.DeviceLine(&devs[i]))
	}

	ctx := fmt.Sprintf("The whole list (%s, those needing attention first) is attached as fleet.txt.", fleet.Thousands(len(devs))+" devices")
	if inline < len(attn) {
		ctx = fmt.Sprintf("Showing %d of the %s devices needing attention. ", inline, fleet.Thousands(len(attn))) + ctx
	}
	return Reply{Text: text.String(), Title: title, Sections: secs, Context: ctx,
		Files: []File{{Name: "fleet.txt", Content: file.String()}}}
}

// stateCounts lists the states in a fixed order, leaving out those no
// device is in.
func stateCounts(s fleet.Summary) []fleet.Count {
	var out []fleet.Count
	for _, st := range []string{string(wire.StateOnline), string(wire.StateLost), string(wire.StateOffline), fleet.Unknown} {
		if n := s.States[st]; n > 0 {
			out = append(out, fleet.Count{Name: st, N: n})
		}
	}
	return out
}

func problemWord(p string) string { return fleet.ProblemWords(wire.Problem(p)) }

// countsText renders counts as "12 name" entries; top > 0 keeps the first
// top and sums up the rest as one "and N more" entry. None is "none".
func countsText(cs []fleet.Count, top int, word func(string) string) []string {
	if len(cs) == 0 {
		return []string{"none"}
	}
	var out []string
	for i, c := range cs {
		if top > 0 && i == top {
			out = append(out, "and "+fleet.Thousands(len(cs)-i)+" more")
			break
		}
		name := c.Name
		if word != nil {
			name = word(name)
		}
		out = append(out, fleet.Thousands(c.N)+" "+name)
	}
	return out
}
