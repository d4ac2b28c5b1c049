// Package health collects the health block of the agent's status: a
// registry of independent probes in the style of node_exporter's
// collectors. Each probe either fills its part of wire.Health ("ok"), finds
// no such hardware or file ("absent": a Pi without hwmon, a PC without a
// Pi thermal zone) or fails ("failed": unreadable, garbage). One probe
// failing or panicking never stops the others; every outcome is recorded in
// Health.Probes, and failures are logged when a probe's state changes (not
// on every sample: logs are disk writes on an SD card).
//
// Every /sys, /proc, /boot, /dev and /var path hangs off Options.Root, so
// tests run against real Raspberry Pi files in testdata/. Syscalls and
// programs (statfs, adjtimex, vcgencmd, the Docker socket) are injectable.
//
// Units: probes compute with periph.io/x/conn/v3/physic types (Temperature,
// Frequency) and put plain numbers with the unit in the field name on the
// wire (temp_c, cpu_freq_mhz).
//
// Problems: after the probes ran, the bad flags become Problem codes:
// under-voltage, throttled, frequency capped or soft temperature limit *now*
// (the "occurred since boot" bits are reported, not listed as problems),
// hot (TempC ≥ Options.HotC, default 80 °C), read-only root, clock not
// synchronised, a disk above Options.DiskFullPercent (default 90 %), and
// Docker: "unreachable" (a socket that does not answer: Docker is installed
// but down; or DOCKER_HOST names an engine that does not answer, since the
// probe asks through the runner's own Docker client) is always a problem, "absent" only when Options.ExpectDocker is
// set (the agent runs commands in Docker, so where that is enabled a
// missing daemon matters; on a Pi that only reports it does not).
package health
