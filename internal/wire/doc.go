// Package wire is the contract between pifleet-agent and the pifleet hub:
// MQTT topics, message types, the protocol version and explicit enum values.
//
// It imports only the standard library (a test enforces this) so that both
// sides, simulators and third-party tools can depend on it cheaply.
// PROTOCOL.md beside this file describes the protocol in prose; the golden
// JSON files in testdata/ are the normative examples.
//
// Enum values are explicit strings, never iota: they travel over the network
// and are retained by brokers for as long as a device lives.
package wire
