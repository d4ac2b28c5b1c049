// Package e2e holds end-to-end tests of the real binaries (pifleet and
// pifleet-agent) against real brokers: the hub's embedded broker and a
// Mosquitto started by the test. It has no non-test code.
package e2e
