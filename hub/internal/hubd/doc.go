// Package hubd assembles the pifleet hub from a Config: the fleet server
// (broker, ingest, HTTP API), the command dispatcher and where late
// results go, the Slack bot, systemd notification and watchdog, credential
// reload on SIGHUP, the secure-by-default fleet CA and enrolment listener,
// the mDNS advertisement on the LAN (mdns.go) and the optional profiler.
// cli turns flags into its Config; hubd.Run runs it.
package hubd
