package console

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode"
)

// Status is the verdict of one check.
type Status string

// Status values. Only StatusFix makes the setup wrong; StatusInfo is a fact
// worth knowing (or a check that could not run) and is never a failure.
const (
	StatusOK   Status = "OK"
	StatusFix  Status = "FIX"
	StatusInfo Status = "INFO"
)

// Finding is the result of one check, with the exact change when something
// must be fixed.
type Finding struct {
	Check   string // short name: uart, config.txt, enable_uart, overlay, cmdline.txt, kernel, getty, login
	Status  Status
	Message string // what was found
	File    string // file to edit, as a path on the Pi
	LineNo  int    // line to replace (0: add a line)
	Replace string // the current line that Line replaces ("" to add Line)
	Line    string // the exact line to write (for cmdline.txt: the whole new line)
	Action  string // a command to run instead of an edit, e.g. "sudo reboot"
	Snippet string // firmware-notes/ file with the context, as installed on the Pi (NotesDir)
}

// NotesDir is where the agent's .deb installs the repository's
// firmware-notes/, so that the advice doctor prints names a file the Pi
// has (scripts/nfpm-agent.yaml ships it; scripts/deb_test.go checks that
// every snippet named here is in the package).
const NotesDir = "/usr/share/doc/pifleet-agent/firmware-notes/"

// Snippets in firmware-notes/ that the advice names.
const (
	SnippetEnableUART   = NotesDir + "config.txt-enable_uart"
	SnippetDisableBT    = NotesDir + "config.txt-disable-bt"
	SnippetMiniUARTBT   = NotesDir + "config.txt-miniuart-bt"
	SnippetCmdline      = NotesDir + "cmdline.txt-serial-console"
	SnippetSerialGetty  = NotesDir + "README.md (\"The login prompt\")"
	consoleBaud         = "115200"
	consoleArg          = "console=serial0," + consoleBaud
	miniUARTCoreFreqKey = "core_freq"
)

// overlays that move Bluetooth off the PL011 so that it drives GPIO14/15
// (the pi3- names are the old aliases, still mapped by the firmware).
var pl011Overlays = map[string]bool{"disable-bt": true, "pi3-disable-bt": true, "miniuart-bt": true, "pi3-miniuart-bt": true}

// CheckSetup checks the firmware and kernel settings of the serial console
// below root. uart is what FindUART returned.
func CheckSetup(root string, uart UART) []Finding {
	var out []Finding
	out = append(out, uartFinding(uart))
	dir, err := FindBootDir(root)
	if err != nil {
		return append(out, Finding{Check: "config.txt", Status: StatusFix,
			Message: err.Error() + "; is the boot partition mounted?", Snippet: SnippetEnableUART})
	}
	cfg, err := ReadBootConfig(root, dir, ReadModel(root))
	if err != nil {
		return append(out, Finding{Check: "config.txt", Status: StatusFix, Message: err.Error()})
	}
	out = append(out, checkOverlays(root, cfg)...)
	out = append(out, checkEnableUART(cfg))
	out = append(out, checkCmdline(root, dir)...)
	out = append(out, checkKernelCmdline(root, uart, out[len(out)-1]))
	return out
}

func uartFinding(u UART) Finding {
	if u.TTY == "" {
		return Finding{Check: "uart", Status: StatusInfo,
			Message: "no /dev/serial0 and no device-tree alias serial0: not a Raspberry Pi, or /dev and /proc are not mounted"}
	}
	kind := u.Kind
	if kind == "" {
		kind = "unknown UART"
	}
	return Finding{Check: "uart", Status: StatusOK, Message: fmt.Sprintf("serial0 is %s (%s), from %s", u.TTY, kind, u.Via)}
}

// primaryIsPL011 reports whether an overlay made the PL011 the console UART.
func primaryIsPL011(cfg *BootConfig) bool {
	for _, l := range cfg.Overlays() {
		if pl011Overlays[overlayName(l.Value)] {
			return true
		}
	}
	return false
}

func checkEnableUART(cfg *BootConfig) Finding {
	f := Finding{Check: "enable_uart", File: cfg.Path, Snippet: SnippetEnableUART}
	l, set := cfg.Last("enable_uart")
	switch {
	case set && l.Value == "1":
		f.Status, f.Message = StatusOK, fmt.Sprintf("enable_uart=1 (%s line %d)", l.File, l.No)
	case set:
		f.Status, f.File, f.LineNo, f.Replace, f.Line = StatusFix, l.File, l.No, l.Text, "enable_uart=1"
		f.Message = fmt.Sprintf("%s line %d says %q: the console UART is off", l.File, l.No, l.Text)
	case primaryIsPL011(cfg):
		f.Status = StatusOK
		f.Message = "enable_uart is not set, which defaults to 1 when an overlay makes the PL011 the console UART"
	default:
		f.Status, f.Line = StatusFix, "enable_uart=1"
		f.Message = "enable_uart is not set: the mini UART (ttyS0) stays off and its clock would follow the GPU's"
		for _, c := range cfg.Conditional {
			if c.Key == "enable_uart" {
				f.Message += fmt.Sprintf(" (line %d sets it only under a conditional section)", c.No)
			}
		}
	}
	return f
}

func checkOverlays(root string, cfg *BootConfig) []Finding {
	var out []Finding
	bt := false
	for _, l := range cfg.Overlays() {
		name := overlayName(l.Value)
		if hasLookalike(name) {
			bt = bt || pl011Overlays[asciiHyphens(name)]
			out = append(out, Finding{Check: "overlay", Status: StatusFix, File: l.File, LineNo: l.No, Replace: l.Text,
				Line:    "dtoverlay=" + strings.TrimPrefix(asciiHyphens(l.Value), "pi3-"),
				Message: fmt.Sprintf("%s line %d: overlay name %q has non-ASCII characters (a typographic hyphen?); the firmware will not find it", l.File, l.No, name),
				Snippet: snippetFor(asciiHyphens(name))})
			// Say now what the corrected line will need too.
			if fixed := asciiHyphens(name); pl011Overlays[fixed] {
				if f := overlayFinding(cfg, l, fixed); f.Status == StatusFix {
					out = append(out, f)
				}
			}
			continue
		}
		if !pl011Overlays[name] {
			continue
		}
		bt = true
		if missingOverlay(root, cfg.Dir, name) {
			out = append(out, Finding{Check: "overlay", Status: StatusFix, File: l.File, LineNo: l.No, Replace: l.Text,
				Line:    "dtoverlay=" + strings.TrimPrefix(l.Value, "pi3-"),
				Message: fmt.Sprintf("%s line %d: %s/overlays/%s.dtbo does not exist", l.File, l.No, cfg.Dir, name),
				Snippet: snippetFor(name)})
			continue
		}
		out = append(out, overlayFinding(cfg, l, name))
	}
	if !bt {
		out = append(out, Finding{Check: "overlay", Status: StatusOK,
			Message: "no Bluetooth overlay: the mini UART (ttyS0) is the console and enable_uart=1 pins its clock"})
	}
	return out
}

func overlayFinding(cfg *BootConfig, l ConfigLine, name string) Finding {
	if strings.HasSuffix(name, "disable-bt") {
		return Finding{Check: "overlay", Status: StatusOK, Snippet: SnippetDisableBT,
			Message: fmt.Sprintf("%s line %d: %s puts the PL011 (ttyAMA0) on GPIO14/15 and turns Bluetooth off (also run: sudo systemctl disable hciuart)", l.File, l.No, l.Text)}
	}
	if cf, ok := cfg.Last(miniUARTCoreFreqKey); ok && cf.Value == "250" {
		return Finding{Check: "overlay", Status: StatusOK, Snippet: SnippetMiniUARTBT,
			Message: fmt.Sprintf("%s line %d: %s with core_freq=250 (line %d): PL011 on GPIO14/15, Bluetooth on the mini UART", l.File, l.No, l.Text, cf.No)}
	}
	if ft, ok := cfg.Last("force_turbo"); ok && ft.Value == "1" {
		return Finding{Check: "overlay", Status: StatusOK, Snippet: SnippetMiniUARTBT,
			Message: fmt.Sprintf("%s line %d: %s with force_turbo=1: the core clock is fixed", l.File, l.No, l.Text)}
	}
	f := Finding{Check: "overlay", Status: StatusFix, File: cfg.Path, Line: "core_freq=250", Snippet: SnippetMiniUARTBT,
		Message: fmt.Sprintf("%s line %d: %s moves Bluetooth to the mini UART, whose baud rate follows the core clock: it needs core_freq=250", l.File, l.No, l.Text)}
	if cf, ok := cfg.Last(miniUARTCoreFreqKey); ok {
		f.File, f.LineNo, f.Replace = cf.File, cf.No, cf.Text
	}
	return f
}

func snippetFor(name string) string {
	if strings.Contains(name, "miniuart-bt") {
		return SnippetMiniUARTBT
	}
	return SnippetDisableBT
}

// missingOverlay reports whether the boot partition has an overlays
// directory that lacks name.dtbo (no directory: cannot tell, not missing).
func missingOverlay(root, dir, name string) bool {
	od := filepath.Join(root, dir, "overlays")
	if _, err := os.Stat(od); err != nil {
		return false
	}
	_, err := os.Stat(filepath.Join(od, name+".dtbo"))
	return err != nil
}

func hasLookalike(s string) bool {
	for _, r := range s {
		if r > unicode.MaxASCII {
			return true
		}
	}
	return false
}

// asciiHyphens replaces Unicode dashes (U+2010…U+2015, U+2212) by '-'.
func asciiHyphens(s string) string {
	return strings.Map(func(r rune) rune {
		if (r >= 0x2010 && r <= 0x2015) || r == 0x2212 {
			return '-'
		}
		return r
	}, s)
}
