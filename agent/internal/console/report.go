package console

import (
	"fmt"
	"io"
)

// WriteReport prints the findings as `pifleet-agent doctor` shows them: one
// line per check with OK/FIX/INFO, and under each FIX the exact change —
// the file, the line to replace or add, or the command to run — and the
// firmware-notes snippet that explains it.
func WriteReport(w io.Writer, r Report) {
	for _, f := range r.Findings {
		fmt.Fprintf(w, "%-4s  %-11s  %s\n", f.Status, f.Check, f.Message)
		if f.Status != StatusFix {
			continue
		}
		const ind = "                   "
		switch {
		case f.Replace != "" && f.LineNo > 0:
			fmt.Fprintf(w, "%sin %s, replace line %d\n%s    %s\n%swith\n%s    %s\n", ind, f.File, f.LineNo, ind, f.Replace, ind, ind, f.Line)
		case f.Line != "" && f.File != "" && isCmdline(f):
			fmt.Fprintf(w, "%smake %s this one line:\n%s    %s\n", ind, f.File, ind, f.Line)
		case f.Line != "" && f.File != "":
			fmt.Fprintf(w, "%sin %s, add this line at the end (after [all]):\n%s    %s\n", ind, f.File, ind, f.Line)
		}
		if f.Action != "" {
			fmt.Fprintf(w, "%srun: %s\n", ind, f.Action)
		}
		if f.Snippet != "" {
			fmt.Fprintf(w, "%ssee %s\n", ind, f.Snippet)
		}
	}
	if n := r.Fixes(); n > 0 {
		fmt.Fprintf(w, "\n%d thing(s) to fix: until then the serial console may not offer a login.\n", n)
	} else {
		fmt.Fprintln(w, "\nThe serial console is set up: 115200 8N1 on GPIO14 (TXD) / GPIO15 (RXD).")
	}
}

func isCmdline(f Finding) bool { return f.Check == "cmdline.txt" }
