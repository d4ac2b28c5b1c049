// Package fleetserver keeps the hub's fleet view and serves it: the
// embedded broker (or a connection to an external one), the MQTT ingest
// that feeds the fleet view, the silence sweep, the hub's retained
// presence, and the HTTP API. Everything it knows is rebuilt from the
// broker's retained messages at start. hubd assembles the hub around it.
package fleetserver
