package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Settings of pi-gen bookworm's config.txt (no comments copied) and the
// cmdline.txt of a bookworm Lite image after firstboot; see
// agent/internal/console/testdata/SOURCES.md.
const (
	bookwormConfig = "dtparam=audio=on\ncamera_auto_detect=1\ndisplay_auto_detect=1\nauto_initramfs=1\n" +
		"dtoverlay=vc4-kms-v3d\nmax_framebuffers=2\ndisable_fw_kms_setup=1\ndisable_overscan=1\narm_boost=1\n\n" +
		"[cm4]\notg_mode=1\n\n[cm5]\ndtoverlay=dwc2,dr_mode=host\n\n[all]\n"
	liteCmdline         = "console=serial0,115200 console=tty1 root=PARTUUID=020c3677-02 rootfstype=ext4 fsck.repair=yes rootwait\n"
	liteCmdlineNoSerial = "console=tty1 root=PARTUUID=020c3677-02 rootfstype=ext4 fsck.repair=yes rootwait\n"
)

func piRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	files["proc/device-tree/model"] = "Raspberry Pi 3 Model B Rev 1.2\x00"
	files["proc/device-tree/aliases/serial0"] = "/soc/serial@7e215040\x00"
	for rel, content := range files {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func runDoctorOn(t *testing.T, root string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := Run(context.Background(), Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}, []string{"doctor", "--root", root})
	if errb.Len() > 0 {
		t.Logf("stderr: %s", errb.String())
	}
	return out.String(), err
}

func TestDoctorGood(t *testing.T) {
	root := piRoot(t, map[string]string{
		"boot/firmware/config.txt":  bookwormConfig + "enable_uart=1\n",
		"boot/firmware/cmdline.txt": liteCmdline,
	})
	out, err := runDoctorOn(t, root)
	if err != nil {
		t.Fatalf("got %v, want success\n%s", err, out)
	}
	for _, want := range []string{"OK    uart         serial0 is ttyS0 (mini UART)", "OK    enable_uart", "OK    cmdline.txt", "The serial console is set up"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "FIX") {
		t.Errorf("got a FIX line for a good setup:\n%s", out)
	}
}

func TestDoctorBroken(t *testing.T) {
	root := piRoot(t, map[string]string{
		"boot/firmware/config.txt":  bookwormConfig + "dtoverlay=miniuart-bt\n",
		"boot/firmware/cmdline.txt": liteCmdlineNoSerial,
	})
	out, err := runDoctorOn(t, root)
	if err == nil || !strings.Contains(err.Error(), "2 console setting(s) need fixing") {
		t.Fatalf("got error %v, want 2 settings to fix\n%s", err, out)
	}
	for _, want := range []string{
		// miniuart-bt makes the PL011 primary, so enable_uart may stay unset
		"OK    enable_uart  enable_uart is not set, which defaults to 1",
		"FIX   overlay",
		"in /boot/firmware/config.txt, add this line at the end (after [all]):\n                       core_freq=250\n",
		"see /usr/share/doc/pifleet-agent/firmware-notes/config.txt-miniuart-bt",
		"FIX   cmdline.txt",
		"in /boot/firmware/cmdline.txt, replace line 1\n                       console=tty1 root=PARTUUID=020c3677-02 rootfstype=ext4 fsck.repair=yes rootwait\n" +
			"                   with\n                       console=serial0,115200 console=tty1 root=PARTUUID=020c3677-02 rootfstype=ext4 fsck.repair=yes rootwait\n",
		"see /usr/share/doc/pifleet-agent/firmware-notes/cmdline.txt-serial-console",
		"2 thing(s) to fix",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestDoctorReplaceLine(t *testing.T) {
	root := piRoot(t, map[string]string{
		"boot/config.txt":  "enable_uart=0\n",
		"boot/cmdline.txt": liteCmdline,
	})
	out, err := runDoctorOn(t, root)
	if err == nil {
		t.Fatalf("got success, want failure\n%s", out)
	}
	want := "in /boot/config.txt, replace line 1\n                       enable_uart=0\n                   with\n                       enable_uart=1\n"
	if !strings.Contains(out, want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
}

func TestDoctorBadFlag(t *testing.T) {
	var out, errb bytes.Buffer
	err := Run(context.Background(), Env{Stdout: &out, Stderr: &errb}, []string{"doctor", "--bogus"})
	if err != ErrUsage {
		t.Errorf("got %v, want ErrUsage", err)
	}
}
