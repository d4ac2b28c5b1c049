// Package daemon assembles pifleet-agent from a Config: the MQTT link, the
// address watcher (netwatch) and health probes with the serial console's
// watcher, the command handler (cmdexec and the Docker runner), systemd
// notification, the console banner and the status LED, around the
// reporting loop that turns their events into retained status messages.
// Each part is a seam in Config, so tests run the assembly with fakes.
package daemon
