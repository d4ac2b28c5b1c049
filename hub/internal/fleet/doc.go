// Package fleet is the hub's view of the fleet: pure logic that turns the
// retained state and status messages of the broker into devices. It has no
// I/O, so a hub rebuilds exactly the same view from the broker's retained
// messages after a restart, and several hubs sharing one broker agree.
package fleet
