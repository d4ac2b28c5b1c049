// Package console is the laptop side of the Raspberry Pi UART console: it
// finds the USB-TTL cable among the serial ports (go.bug.st/serial and its
// enumerator), opens it at 115200 8N1 with errors that say what to do, runs
// an interactive raw-terminal session with an ssh-like escape (Enter ~.),
// and finds a Pi's IP addresses by waking its getty and reading the
// pifleet banner above "login:" — or, without a banner, by logging in and
// running `hostname -I`.
package console
