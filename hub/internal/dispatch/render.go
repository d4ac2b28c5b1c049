package dispatch

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pifleet/pifleet/hub/internal/chat"
	"github.com/pifleet/pifleet/internal/policy"
	"github.com/pifleet/pifleet/internal/wire"
)

// DefaultFirstLines is how many lines of each Pi's output are shown inline
// unless Options.FirstLines says otherwise.
const DefaultFirstLines = 6

// RenderLate renders one result that arrived after Handle answered (or
// after a hub restart) like a Pi's part of a normal answer, headed
// "⏳ Late result from <pi> for `<tool> <argv>`: <outcome>": its first
// lines inline (lines ≤ 0: DefaultFirstLines) and its whole output as
// a file when there is more. Adapters add who asked in their own way.
func RenderLate(r Result, lines int) chat.Reply {
	if lines <= 0 {
		lines = DefaultFirstLines
	}
	cmdline := strings.TrimSpace(r.Tool + " " + strings.Join(r.Argv, " "))
	if cmdline == "" {
		cmdline = "command " + r.ID
	}
	head := status(r)
	first, more := firstLines(r.Output, lines)
	body := fmt.Sprintf("⏳ Late result from *%s* for `%s`: %s", r.Device, cmdline, head)
	text := fmt.Sprintf("⏳ Late result from %s for `%s`: %s\n", r.Device, cmdline, head)
	if first != "" {
		body += "\n```\n" + first + "\n```"
		for _, l := range strings.Split(first, "\n") {
			text += "  " + l + "\n"
		}
	}
	reply := chat.Reply{Text: text, Sections: []chat.Section{{Text: body}}, Problem: !succeeded(r)}
	if more || r.Final.Truncated {
		tool := r.Tool
		if tool == "" {
			tool = "command"
		}
		reply.Files = []chat.File{{Name: outputFileName(r.Device, tool, r.Argv), Content: r.Output}}
		reply.Context = "The whole output is attached."
	}
	return reply
}

func succeeded(r Result) bool {
	return r.Final.Outcome == wire.OutcomeExited && r.Final.ExitCode == 0 && !r.Missing
}

// render aggregates per Pi: outcome, exit code, duration and the first
// lines inline; the whole output of each Pi as a file.
func (d *Dispatcher) render(tool string, dec policy.Decision, results []Result) chat.Reply {
	sort.Slice(results, func(i, j int) bool { return results[i].Device < results[j].Device })
	cmdline := tool + " " + strings.Join(dec.Argv, " ")
	ok := 0
	var text strings.Builder
	var secs []chat.Section
	var files []chat.File
	for _, r := range results {
		head := status(r)
		if succeeded(r) {
			ok++
		}
		first, more := firstLines(r.Output, d.o.FirstLines)
		body := fmt.Sprintf("*%s* %s", r.Device, head)
		fmt.Fprintf(&text, "%s: %s\n", r.Device, head)
		if first != "" {
			body += "\n```\n" + first + "\n```"
			for _, l := range strings.Split(first, "\n") {
				fmt.Fprintf(&text, "  %s\n", l)
			}
		}
		if more || r.Final.Truncated {
			files = append(files, chat.File{Name: outputFileName(r.Device, tool, r.Argv), Content: r.Output})
		}
		secs = append(secs, chat.Section{Text: body})
	}
	title := fmt.Sprintf("%s: %d of %d Pis succeeded", cmdline, ok, len(results))
	reply := chat.Reply{Title: title, Text: title + "\n" + text.String(), Sections: secs, Files: files,
		Problem: ok < len(results)}
	if len(files) > 0 {
		reply.Context = "The whole output of each Pi is attached."
	}
	return reply
}

func status(r Result) string {
	f := r.Final
	dur := time.Duration(f.DurationMS) * time.Millisecond
	switch {
	case r.Missing:
		return "⚠ " + f.Error
	case f.Outcome == wire.OutcomeExited && f.ExitCode == 0:
		return fmt.Sprintf("✅ exit 0 in %v%s", dur.Round(time.Millisecond*100), truncNote(f))
	case f.Outcome == wire.OutcomeExited:
		return fmt.Sprintf("❌ exit %d in %v%s", f.ExitCode, dur.Round(time.Millisecond*100), truncNote(f))
	case f.Outcome == wire.OutcomeTimeout:
		return fmt.Sprintf("⏱ killed after %v: %s", dur.Round(time.Second), f.Error)
	case f.Outcome == wire.OutcomeRejected:
		return "⛔ rejected by the Pi: " + f.Error
	default:
		return "⚠ could not run: " + f.Error
	}
}

func truncNote(f wire.Final) string {
	if f.Truncated {
		return fmt.Sprintf(" (output truncated; %d bytes in all)", f.Bytes)
	}
	return ""
}

// firstLines returns up to n lines of s and whether there were more.
func firstLines(s string, n int) (string, bool) {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "", false
	}
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		return strings.Join(lines[:n], "\n"), true
	}
	return s, false
}

// outputFileName names a Pi's whole output after the Pi and the command,
// as a person would save it: "pi-kitchen-ec2-describe-instances.txt".
// The command's first words only (no flags, no values that may be long or
// private), letters, digits and '-'.
func outputFileName(device, tool string, argv []string) string {
	name := device
	words := 0
	for _, w := range argv {
		if words == 3 || strings.HasPrefix(w, "-") {
			break
		}
		clean := strings.Map(func(r rune) rune {
			if r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, w)
		if clean == "" || len(name)+len(clean) > 80 {
			break
		}
		name += "-" + clean
		words++
	}
	if words == 0 {
		name += "-" + tool
	}
	return name + ".txt"
}
