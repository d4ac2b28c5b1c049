package broker

import (
	"strings"

	"github.com/pifleet/pifleet/internal/wire"
)

// Role is what an authenticated identity may do.
type Role string

// Roles.
const (
	RoleDevice Role = "device" // a pifleet-agent: its own topics only
	RoleHub    Role = "hub"    // a pifleet hub: reads everything, sends commands
)

// Identity is an authenticated MQTT client: a device or a hub and its id.
type Identity struct {
	Role Role
	ID   string
}

// CanWrite reports whether the identity may publish to topic.
//
// A device publishes only below pifleet/v1/devices/<its id>/ — its state,
// status and results — and never a command, not even to itself. A hub
// publishes commands to any device, its own presence, and clears results
// addressed to it (an empty retained message on result/<hub>/<id>).
func (i Identity) CanWrite(topic string) bool {
	p, err := wire.ParseTopic(topic)
	if err != nil {
		return false
	}
	switch i.Role {
	case RoleDevice:
		return p.Device == i.ID && (p.Leaf == wire.LeafState || p.Leaf == wire.LeafStatus || p.Leaf == wire.LeafResult)
	case RoleHub:
		switch p.Leaf {
		case wire.LeafCmd:
			return true
		case "presence", wire.LeafResult:
			return p.Hub == i.ID
		}
	}
	return false
}

// CanRead reports whether the identity may subscribe to filter, or
// receive a message on topic (mochi asks both ways).
//
// A device reads only its own command topic, its own state (the agent
// checks its retained state on connect: a stale will, a deletion or a
// forgery is answered with a fresh birth) and hub presence (public). A hub
// reads everything under pifleet/v1/.
func (i Identity) CanRead(filter string) bool {
	switch i.Role {
	case RoleDevice:
		if filter == wire.CmdTopic(i.ID) || filter == wire.StateTopic(i.ID) || filter == wire.FilterAllHubs {
			return true
		}
		p, err := wire.ParseTopic(filter)
		return err == nil && p.Leaf == "presence"
	case RoleHub:
		return strings.HasPrefix(filter, wire.Root+"/")
	}
	return false
}

// ClientIDAllowed reports whether a client may use clientID. A device may
// only use its own wire.ClientID, its bare id, or "pifleet-agent-<id>"
// with the '.' left in (agents before wire.ClientID, during a rollout), so
// that it cannot take over (and so disconnect) another device's session:
// no id holds a '~' and no wire.ClientID holds a '.', so none of these is
// another device's. Hubs are trusted, but may not pose as an agent.
func (i Identity) ClientIDAllowed(clientID string) bool {
	agentPrefix := wire.ClientID(wire.ClientAgent, "")
	if i.Role == RoleHub {
		return !strings.HasPrefix(clientID, agentPrefix)
	}
	return clientID == i.ID || clientID == wire.ClientID(wire.ClientAgent, i.ID) || clientID == agentPrefix+i.ID
}
