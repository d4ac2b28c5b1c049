package console

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// consoleArgs returns the values of every console= argument of a kernel
// command line ("serial0,115200", "tty1").
func consoleArgs(line string) []string {
	var out []string
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, "console="); ok {
			out = append(out, v)
		}
	}
	return out
}

// serialConsole returns the console= value that names a serial device
// (serial0, ttyS*, ttyAMA*) and whether there is one.
func serialConsole(line string) (string, bool) {
	for _, v := range consoleArgs(line) {
		dev, _, _ := strings.Cut(v, ",")
		if dev == "serial0" || strings.HasPrefix(dev, "ttyS") || strings.HasPrefix(dev, "ttyAMA") {
			return v, true
		}
	}
	return "", false
}

// fixedCmdline returns line with the serial console set to console=serial0,115200,
// replacing an existing serial console= or adding it first (as raspi-config does).
func fixedCmdline(line string) string {
	fields := strings.Fields(line)
	out := make([]string, 0, len(fields)+1)
	replaced := false
	for _, f := range fields {
		if _, serial := serialConsole(f); serial {
			if !replaced {
				out = append(out, consoleArg)
				replaced = true
			}
			continue
		}
		out = append(out, f)
	}
	if !replaced {
		out = append([]string{consoleArg}, out...)
	}
	return strings.Join(out, " ")
}

func checkCmdline(root, dir string) []Finding {
	path := filepath.Join(dir, "cmdline.txt")
	b, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		return []Finding{{Check: "cmdline.txt", Status: StatusFix, File: path, Snippet: SnippetCmdline,
			Message: fmt.Sprintf("read %s: %v", path, unwrapPathErr(err))}}
	}
	text := strings.TrimRight(string(b), "\r\n")
	var out []Finding
	lines := strings.Split(text, "\n")
	if len(lines) > 1 {
		joined := strings.Join(strings.Fields(text), " ")
		out = append(out, Finding{Check: "cmdline.txt", Status: StatusFix, File: path, Line: fixedCmdline(joined), Snippet: SnippetCmdline,
			Message: fmt.Sprintf("%s has %d lines: the firmware passes only the first to the kernel; write everything on one line", path, len(lines))})
		return out
	}
	line := strings.TrimSpace(lines[0])
	v, ok := serialConsole(line)
	dev, baud, _ := strings.Cut(v, ",")
	f := Finding{Check: "cmdline.txt", File: path, LineNo: 1, Replace: line, Snippet: SnippetCmdline}
	switch {
	case !ok:
		f.Status, f.Line = StatusFix, fixedCmdline(line)
		f.Message = path + " has no serial console=: the kernel and systemd will not start a login prompt on the UART (reboot after the change)"
	case dev != "serial0":
		f.Status, f.Line = StatusFix, fixedCmdline(line)
		f.Message = fmt.Sprintf("%s names console=%s: use serial0, which follows the UART swap of the Bluetooth overlays", path, v)
	case baud != consoleBaud:
		f.Status, f.Line = StatusFix, fixedCmdline(line)
		f.Message = fmt.Sprintf("%s has console=%s: use %s baud, what pifleet console and most cables expect", path, v, consoleBaud)
	default:
		f.Status, f.Replace, f.LineNo = StatusOK, "", 0
		f.Message = path + " has " + consoleArg
	}
	return append(out, f)
}

// checkKernelCmdline compares /proc/cmdline (what the kernel got: the
// firmware rewrites serial0 to the real tty and adds 8250.nr_uarts=1) with
// the intent; cmdlineOK is the cmdline.txt finding.
func checkKernelCmdline(root string, u UART, cmdline Finding) Finding {
	f := Finding{Check: "kernel"}
	b, err := os.ReadFile(filepath.Join(root, "proc/cmdline"))
	if err != nil {
		f.Status, f.Message = StatusInfo, "cannot read /proc/cmdline: "+unwrapPathErr(err).Error()
		return f
	}
	v, ok := serialConsole(string(bytes.TrimSpace(b)))
	dev, _, _ := strings.Cut(v, ",")
	switch {
	case ok && (u.TTY == "" || dev == u.TTY || dev == "serial0"):
		f.Status, f.Message = StatusOK, "the running kernel has console="+v
	case ok:
		f.Status, f.Action = StatusFix, "sudo reboot"
		f.Message = fmt.Sprintf("the running kernel has console=%s but serial0 is %s now: reboot so that they agree", v, u.TTY)
	case cmdline.Status == StatusOK:
		f.Status, f.Action = StatusFix, "sudo reboot"
		f.Message = "cmdline.txt is right but the running kernel has no serial console=: reboot to apply it"
	default: // counted once, in the cmdline.txt finding
		f.Status, f.Message = StatusInfo, "the running kernel has no serial console= either (reboot after fixing cmdline.txt)"
	}
	return f
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
