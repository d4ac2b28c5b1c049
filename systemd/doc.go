// Package systemd holds pifleet's systemd units, their default environment
// files, the serial-getty drop-in and the polkit rule, and a test that runs
// systemd-analyze verify on every unit. There is no Go code here to import;
// the Go side of sd_notify is internal/sdnotify.
package systemd
