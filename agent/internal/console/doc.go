// Package console keeps the Raspberry Pi's UART console usable as a rescue
// path: it finds the console UART (serial0 → ttyS0 or ttyAMA0), checks the
// firmware and kernel settings that make a login prompt appear on it
// (config.txt, cmdline.txt, /proc/cmdline), asks systemd whether
// serial-getty@<tty>.service runs (and restarts it when allowed), notices
// console logins in utmp, and keeps an agetty issue snippet — the banner
// printed above "login:" — with the hostname and every usable address, so
// whoever plugs a USB-TTL cable in sees where the Pi is on the network.
//
// Every OS path hangs off a root directory so tests run against fixtures
// of real Pi files; systemd is reached through the small Systemd interface
// (fake in systemdtest). The checks are what `pifleet-agent doctor` prints.
package console
