package natsengine

import "testing"

// TestClientIDAllowed: a device may use only its own client ids (so it
// cannot take over, and so disconnect, another device's session); a hub
// may use any but an agent's.
func TestClientIDAllowed(t *testing.T) {
	dev := identity{roleDevice, "pi-a"}
	hub := identity{roleHub, "hub"}
	dotted := identity{roleDevice, "pi.a"}
	for _, tc := range []struct {
		who  identity
		cid  string
		want bool
	}{
		{dev, "pifleet-agent-pi-a", true}, {dev, "pi-a", true}, {dev, "pifleet-agent-pi-b", false},
		{hub, "pifleet-hub-hub", true}, {hub, "pifleet-agent-pi-a", false},
		{dotted, "pifleet-agent-pi~a", true}, {dotted, "pi~a", true},
		{dotted, "pifleet-agent-pi-a", false}, {dotted, "pifleet-agent-pi~b", false}, {dev, "pifleet-agent-pi~a", false},
		{hub, "pifleet-agent-pi~a", false},
	} {
		if got := tc.who.clientIDAllowed(tc.cid); got != tc.want {
			t.Errorf("%s client id %q: got %v, want %v", tc.who.id, tc.cid, got, tc.want)
		}
	}
}
