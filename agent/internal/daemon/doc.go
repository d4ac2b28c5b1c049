// Package daemon assembles pifleet-agent: the MQTT link, the address and
// health sources, the command handler, and the reporting loop that turns
// their events into retained status messages.
package daemon
