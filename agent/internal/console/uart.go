package console

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// UART is the console UART, the one /dev/serial0 names.
type UART struct {
	TTY   string // ttyS0, ttyAMA0; "" when not found
	Kind  string // "mini UART", "PL011" or "" when unknown
	Via   string // how it was found: the symlink or the device-tree alias path
	Alias string // the device-tree node serial0 points at, e.g. /soc/serial@7e215040
}

// Device-tree nodes of the Pi 3 UARTs (bcm283x.dtsi): uart1, the mini UART,
// becomes ttyS0 through the 8250 driver; uart0, the PL011, becomes ttyAMA0.
// The same bus addresses hold on the Pi 4's first UARTs.
var dtUARTs = map[string]struct{ tty, kind string }{
	"serial@7e215040": {"ttyS0", "mini UART"},
	"serial@7e201000": {"ttyAMA0", "PL011"},
}

// FindUART returns the console UART below root. It reads the udev symlink
// /dev/serial0 first (what the running system uses), then the device-tree
// alias serial0 as gokrazy does (which also works before udev ran or when
// the UART is disabled and the symlink is missing). Neither found is not
// an error — a machine that is no Pi has no serial0 — but TTY is empty.
func FindUART(root string) (UART, error) {
	var u UART
	alias, err := readDTString(filepath.Join(root, "proc/device-tree/aliases/serial0"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return u, err
	}
	u.Alias = alias
	if target, err := os.Readlink(filepath.Join(root, "dev/serial0")); err == nil {
		u.TTY = filepath.Base(target)
		u.Via = "/dev/serial0"
		u.Kind = kindOf(u.TTY)
		return u, nil
	}
	if alias == "" {
		return u, nil
	}
	if m, ok := dtUARTs[filepath.Base(alias)]; ok {
		u.TTY, u.Kind = m.tty, m.kind
		u.Via = "/proc/device-tree/aliases/serial0"
	}
	return u, nil
}

func kindOf(tty string) string {
	switch {
	case strings.HasPrefix(tty, "ttyS"):
		return "mini UART"
	case strings.HasPrefix(tty, "ttyAMA"):
		return "PL011"
	}
	return ""
}

// readDTString reads a device-tree string property (NUL-terminated).
func readDTString(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return strings.TrimSpace(string(b)), nil
}
