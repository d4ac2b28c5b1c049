// Package hubd runs the hub: the embedded broker (or a connection to an
// external one), the MQTT ingest that feeds the fleet view, the hub's
// retained presence, and the HTTP API. Everything the hub knows is
// rebuilt from the broker's retained messages at start.
package hubd
