package console

import (
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"syscall"

	"go.bug.st/serial"
	"go.bug.st/serial/enumerator"
)

// Cable is a known USB-TTL console cable chip.
type Cable struct {
	VID, PID string // lower-case hex
	Chip     string
}

// KnownCables are the USB-TTL chips of console cables: Adafruit #954 ships
// with a PL2303 or (newer) a CP2102; FTDI and CH340 cables are common too.
var KnownCables = []Cable{
	{"067b", "2303", "PL2303"},
	{"10c4", "ea60", "CP210x"},
	{"0403", "6001", "FTDI FT232R"},
	{"1a86", "7523", "CH340"},
}

// Port is a serial port on this machine.
type Port struct {
	Name    string // /dev/ttyUSB0
	USB     bool
	VID     string // lower-case hex, "" when not USB
	PID     string
	Serial  string
	Product string
	Chip    string // from KnownCables, "" when unknown
}

// Known reports whether the port is a known console cable.
func (p Port) Known() bool { return p.Chip != "" }

func (p Port) String() string {
	s := p.Name
	if p.USB {
		s += fmt.Sprintf("  %s:%s", p.VID, p.PID)
	}
	if p.Chip != "" {
		s += "  " + p.Chip
	}
	if p.Product != "" {
		s += "  " + p.Product
	}
	if p.Serial != "" {
		s += "  serial " + p.Serial
	}
	return s
}

// ListPorts returns the serial ports, known console cables first.
func ListPorts() ([]Port, error) {
	details, err := enumerator.GetDetailedPortsList()
	if err != nil {
		return nil, fmt.Errorf("list serial ports: %w", err)
	}
	var out []Port
	for _, d := range details {
		p := Port{Name: d.Name, USB: d.IsUSB, VID: strings.ToLower(d.VID), PID: strings.ToLower(d.PID), Serial: d.SerialNumber, Product: d.Product}
		for _, c := range KnownCables {
			if p.USB && p.VID == c.VID && p.PID == c.PID {
				p.Chip = c.Chip
			}
		}
		out = append(out, p)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Known() != out[j].Known() {
			return out[i].Known()
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// Errors of PickPort and Open. Each wrapped error carries the hint.
var (
	ErrNoCable     = errors.New("no console cable found")
	ErrManyCables  = errors.New("more than one console cable")
	ErrPortBusy    = errors.New("serial port busy")
	ErrPermission  = errors.New("permission denied")
	ErrPortMissing = errors.New("serial port not found")
)

// PickPort returns the one known console cable among ports.
func PickPort(ports []Port) (Port, error) {
	var known []Port
	for _, p := range ports {
		if p.Known() {
			known = append(known, p)
		}
	}
	switch len(known) {
	case 1:
		return known[0], nil
	case 0:
		return Port{}, fmt.Errorf("%w: no USB serial port with a known USB-TTL chip (%s); plug the cable in, or name the port with --port%s",
			ErrNoCable, knownList(), portList(ports))
	}
	return Port{}, fmt.Errorf("%w: choose one with --port%s", ErrManyCables, portList(known))
}

func knownList() string {
	var s []string
	for _, c := range KnownCables {
		s = append(s, fmt.Sprintf("%s %s:%s", c.Chip, c.VID, c.PID))
	}
	return strings.Join(s, ", ")
}

func portList(ports []Port) string {
	if len(ports) == 0 {
		return " (this machine has no serial ports)"
	}
	var b strings.Builder
	b.WriteString("; ports:")
	for _, p := range ports {
		b.WriteString("\n  " + p.String())
	}
	return b.String()
}

// DefaultBaud is the Pi console's speed (8N1).
const DefaultBaud = 115200

// Open opens a serial port at baud, 8N1, and turns the failures people
// meet into errors that say what to do.
func Open(name string, baud int) (serial.Port, error) {
	p, err := serial.Open(name, &serial.Mode{BaudRate: baud, DataBits: 8, Parity: serial.NoParity, StopBits: serial.OneStopBit})
	if err != nil {
		return nil, openError(name, err)
	}
	// Drop what the adapter buffered before we came: an old banner must
	// not pass for the current one.
	if err := p.ResetInputBuffer(); err != nil {
		p.Close()
		return nil, fmt.Errorf("flush %s: %w", name, err)
	}
	return p, nil
}

func openError(name string, err error) error {
	var pe *serial.PortError
	code := serial.PortErrorCode(-1)
	if errors.As(err, &pe) {
		code = pe.Code()
	}
	switch {
	case code == serial.PortBusy || errors.Is(err, syscall.EBUSY):
		return fmt.Errorf("%w: %s is open in another program (screen, minicom, another pifleet console, ModemManager?): close it and retry", ErrPortBusy, name)
	case code == serial.PermissionDenied || errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%w: cannot open %s: add yourself to the dialout group (sudo usermod -aG dialout $USER), then log out and in again", ErrPermission, name)
	case code == serial.PortNotFound || errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %s does not exist: is the cable plugged in? (pifleet console --list)", ErrPortMissing, name)
	}
	return fmt.Errorf("open %s: %w", name, err)
}
