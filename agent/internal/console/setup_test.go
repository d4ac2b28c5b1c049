package console

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const roots = "testdata/roots/"

func TestFindUART(t *testing.T) {
	tests := []struct {
		root, tty, kind, via string
	}{
		{"bookworm-good", "ttyS0", "mini UART", "/dev/serial0"},
		{"bookworm-shipped", "ttyS0", "mini UART", "/proc/device-tree/aliases/serial0"}, // UART off: no udev symlink
		{"bookworm-disable-bt", "ttyAMA0", "PL011", "/dev/serial0"},
		{"bookworm-miniuart-bt", "ttyAMA0", "PL011", "/dev/serial0"},
	}
	for _, tt := range tests {
		u, err := FindUART(roots + tt.root)
		if err != nil {
			t.Fatalf("%s: %v", tt.root, err)
		}
		if u.TTY != tt.tty || u.Kind != tt.kind || u.Via != tt.via {
			t.Errorf("%s: got %s %q via %s, want %s %q via %s", tt.root, u.TTY, u.Kind, u.Via, tt.tty, tt.kind, tt.via)
		}
	}
	u, err := FindUART(t.TempDir())
	if err != nil || u.TTY != "" {
		t.Errorf("empty root: got %+v, %v; want no UART, no error", u, err)
	}
}

// TestFindUARTAliasOnly reads the device-tree alias after the Bluetooth
// overlays swapped serial0 and serial1 (no udev symlink yet).
func TestFindUARTAliasOnly(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "proc/device-tree/aliases/serial0", "/soc/serial@7e201000\x00")
	u, _ := FindUART(root)
	if u.TTY != "ttyAMA0" {
		t.Errorf("got %q, want ttyAMA0", u.TTY)
	}
}

func TestCheckSetupFixtures(t *testing.T) {
	type want struct {
		status  Status
		line    string // Line or Action for FIX
		replace string
	}
	tests := []struct {
		root  string
		fixes int
		want  map[string]want // by check name; checks not named must not be FIX
	}{
		{"bookworm-good", 0, map[string]want{"enable_uart": {StatusOK, "", ""}, "cmdline.txt": {StatusOK, "", ""}, "kernel": {StatusOK, "", ""}}},
		{"bookworm-disable-bt", 0, map[string]want{"overlay": {StatusOK, "", ""}, "kernel": {StatusInfo, "", ""}}},
		{"bookworm-miniuart-bt", 0, map[string]want{"overlay": {StatusOK, "", ""}}},
		{"bookworm-shipped", 1, map[string]want{"enable_uart": {StatusFix, "enable_uart=1", ""}}},
		{"bookworm-miniuart-bt-no-core-freq", 1, map[string]want{"overlay": {StatusFix, "core_freq=250", ""}}},
		{"bookworm-no-serial-console", 1, map[string]want{
			"cmdline.txt": {StatusFix, "console=serial0,115200 console=tty1 root=PARTUUID=020c3677-02 rootfstype=ext4 fsck.repair=yes rootwait",
				"console=tty1 root=PARTUUID=020c3677-02 rootfstype=ext4 fsck.repair=yes rootwait"},
			"kernel": {StatusInfo, "", ""}}},
		{"bullseye-reboot-pending", 1, map[string]want{"cmdline.txt": {StatusOK, "", ""}, "kernel": {StatusFix, "sudo reboot", ""}}},
		{"cmdline-two-lines", 1, map[string]want{"cmdline.txt": {StatusFix, "console=serial0,115200 console=tty1 root=PARTUUID=020c3677-02 rootfstype=ext4 fsck.repair=yes rootwait", ""}}},
		{"stretch-overlay-typo", 2, map[string]want{"overlay": {StatusFix, "dtoverlay=miniuart-bt", "dtoverlay=pi3\u2010miniuart\u2010bt"}, "enable_uart": {StatusOK, "", ""}}},
	}
	for _, tt := range tests {
		u, _ := FindUART(roots + tt.root)
		fs := CheckSetup(roots+tt.root, u)
		fixes := 0
		seen := map[string]bool{}
		for _, f := range fs {
			if f.Status == StatusFix {
				fixes++
			}
			w, ok := tt.want[f.Check]
			if !ok || seen[f.Check] {
				continue // the table describes the first finding of each check
			}
			seen[f.Check] = true
			if f.Status != w.status {
				t.Errorf("%s %s: got %s (%s), want %s", tt.root, f.Check, f.Status, f.Message, w.status)
				continue
			}
			if got := f.Line + f.Action; w.status == StatusFix && got != w.line {
				t.Errorf("%s %s: got fix %q, want %q", tt.root, f.Check, got, w.line)
			}
			if w.replace != "" && f.Replace != w.replace {
				t.Errorf("%s %s: got replace %q, want %q", tt.root, f.Check, f.Replace, w.replace)
			}
		}
		if fixes != tt.fixes {
			t.Errorf("%s: got %d FIX findings, want %d: %+v", tt.root, fixes, tt.fixes, fs)
		}
	}
}

func TestCheckSetupNoBootPartition(t *testing.T) {
	fs := CheckSetup(t.TempDir(), UART{})
	last := fs[len(fs)-1]
	if last.Check != "config.txt" || last.Status != StatusFix || !strings.Contains(last.Message, "/boot/firmware or /boot") {
		t.Errorf("got %+v, want a config.txt FIX naming both places", last)
	}
}

func TestBootConfigSections(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "boot/firmware/config.txt", strings.Join([]string{
		"enable_uart=0",
		"[pi4]",
		"enable_uart=1 # Pi 4 only",
		"[pi3]",
		"core_freq=250",
		"[gpio4=1]",
		"enable_uart=1",
		"[all]",
		"include extra.txt",
		"include missing.txt",
		"[none]",
		"dtoverlay=disable-bt",
	}, "\n"))
	writeFile(t, root, "boot/firmware/extra.txt", "dtoverlay=miniuart-bt,krnbt=on\n")
	for _, tt := range []struct {
		model       string
		enableUART  string
		coreFreq    bool
		overlays    string
		conditional int
	}{
		{"Raspberry Pi 3 Model B Rev 1.2\x00", "0", true, "miniuart-bt", 1},
		{"Raspberry Pi 3 Model B Plus Rev 1.3", "0", true, "miniuart-bt", 1},
		{"Raspberry Pi 4 Model B Rev 1.4", "1", false, "miniuart-bt", 0}, // [gpio4=1] follows [pi3]: not for a Pi 4
		{"", "0", true, "miniuart-bt", 1},
	} {
		cfg, err := ReadBootConfig(root, "/boot/firmware", strings.TrimRight(tt.model, "\x00"))
		if err != nil {
			t.Fatal(err)
		}
		l, _ := cfg.Last("enable_uart")
		_, cf := cfg.Last("core_freq")
		var ov []string
		for _, o := range cfg.Overlays() {
			ov = append(ov, overlayName(o.Value))
		}
		if l.Value != tt.enableUART || cf != tt.coreFreq || strings.Join(ov, ",") != tt.overlays || len(cfg.Conditional) != tt.conditional {
			t.Errorf("model %q: got enable_uart=%s core_freq=%v overlays=%v conditional=%d, want %s %v %s %d",
				tt.model, l.Value, cf, ov, len(cfg.Conditional), tt.enableUART, tt.coreFreq, tt.overlays, tt.conditional)
		}
	}
}

func TestEnableUARTOnlyConditional(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "boot/config.txt", "[gpio4=1]\nenable_uart=1\n[all]\n")
	cfg, _ := ReadBootConfig(root, "/boot", "")
	f := checkEnableUART(cfg)
	if f.Status != StatusFix || !strings.Contains(f.Message, "conditional") {
		t.Errorf("got %s %q, want FIX naming the conditional section", f.Status, f.Message)
	}
}

func TestMissingOverlayFile(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "boot/firmware/config.txt", "enable_uart=1\ndtoverlay=disable-bt\n")
	writeFile(t, root, "boot/firmware/overlays/miniuart-bt.dtbo", "")
	writeFile(t, root, "boot/firmware/cmdline.txt", "console=serial0,115200 root=/dev/mmcblk0p2\n")
	var got []Finding
	for _, f := range CheckSetup(root, UART{}) {
		if f.Check == "overlay" {
			got = append(got, f)
		}
	}
	if len(got) != 1 || got[0].Status != StatusFix || !strings.Contains(got[0].Message, "disable-bt.dtbo does not exist") {
		t.Errorf("got %+v, want one FIX for the missing disable-bt.dtbo", got)
	}
}

func TestFixedCmdline(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"console=tty1 root=/dev/mmcblk0p2 rootwait", "console=serial0,115200 console=tty1 root=/dev/mmcblk0p2 rootwait"},
		{"console=ttyAMA0,115200 console=tty1 rootwait", "console=serial0,115200 console=tty1 rootwait"},
		{"console=serial0,9600 console=ttyS0,115200 rootwait", "console=serial0,115200 rootwait"},
		{"", "console=serial0,115200"},
	} {
		if got := fixedCmdline(tt.in); got != tt.want {
			t.Errorf("fixedCmdline(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCmdlineWrongBaudAndDevice(t *testing.T) {
	for _, tt := range []struct{ line, msg string }{
		{"console=serial0,9600 console=tty1 rootwait", "9600"},
		{"console=ttyAMA0,115200 console=tty1 rootwait", "use serial0"},
	} {
		root := t.TempDir()
		writeFile(t, root, "boot/cmdline.txt", tt.line+"\n")
		fs := checkCmdline(root, "/boot")
		if len(fs) != 1 || fs[0].Status != StatusFix || !strings.Contains(fs[0].Message, tt.msg) || fs[0].Line != "console=serial0,115200 console=tty1 rootwait" {
			t.Errorf("%q: got %+v, want FIX mentioning %q", tt.line, fs, tt.msg)
		}
	}
}

func writeFile(t *testing.T, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
