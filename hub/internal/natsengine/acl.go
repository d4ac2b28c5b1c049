package natsengine

import (
	"slices"
	"strings"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/pifleet/pifleet/internal/wire"
)

// role is what an authenticated identity may do.
type role string

const (
	roleDevice role = "device" // a pifleet-agent: its own topics only
	roleHub    role = "hub"    // a pifleet hub: reads everything, sends commands
)

// identity is an authenticated MQTT client: a device or a hub and its id.
type identity struct {
	role role
	id   string
}

// token is id as one NATS subject token: nats-server turns an MQTT topic
// into a subject with '/' → '.' and, inside a level, '.' → "//" (so device
// pi.kitchen is the single token pi//kitchen and '*' still matches it).
func token(id string) string { return strings.ReplaceAll(id, ".", "//") }

// root is wire.Root as a subject.
const root = "pifleet.v1"

// permissions is the fleet's topic policy (the same as the Mosquitto ACL
// that broker.MosquittoConfig writes) as subject permissions on the
// converted topics:
//
//   - a device publishes its own state, status and result/<hub>/<cmd>,
//     never a command, not even to itself; it reads its own command
//     topic, its own state (the agent checks the broker's retained copy of
//     it) and hub presence;
//   - a hub publishes commands to any device, its own presence and the
//     results addressed to it (clearing a retained Final); it reads
//     everything under pifleet/v1.
//
// nats-server answers a forbidden subscription with SUBACK 0x80 and
// PUBACKs a forbidden QoS 1 publish but drops it (a will included).
func (i identity) permissions() *server.Permissions {
	allow := func(pub, sub []string) *server.Permissions {
		return &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: pub},
			Subscribe: &server.SubjectPermission{Allow: sub},
		}
	}
	t := token(i.id)
	if i.role == roleHub {
		return allow(
			[]string{
				root + ".devices.*." + wire.LeafCmd,
				root + ".hubs." + t + ".presence",
				root + ".devices.*." + wire.LeafResult + "." + t + ".*",
			},
			// pifleet/v1/# also subscribes pifleet/v1 itself.
			[]string{root + ".>", root},
		)
	}
	dev := root + ".devices." + t + "."
	return allow(
		[]string{dev + wire.LeafState, dev + wire.LeafStatus, dev + wire.LeafResult + ".*.*"},
		[]string{dev + wire.LeafCmd, dev + wire.LeafState, root + ".hubs.*.presence"},
	)
}

// clientIDAllowed reports whether the identity may use clientID. A device
// may only use its own ids, so that it cannot take over (and so
// disconnect) another device's session; hubs are trusted but may not pose
// as an agent. nats-server refuses '.' in client ids, so a dotted id is
// written with '~' as wire.ClientID does (pifleet-agent-pi~kitchen).
func (i identity) clientIDAllowed(clientID string) bool {
	agentPrefix := wire.ClientID(wire.ClientAgent, "")
	if i.role == roleHub {
		return !strings.HasPrefix(clientID, agentPrefix)
	}
	return slices.Contains(i.clientIDs(), clientID)
}

// clientIDs are the MQTT client ids a device may use.
func (i identity) clientIDs() []string {
	return []string{strings.ReplaceAll(i.id, ".", "~"), wire.ClientID(wire.ClientAgent, i.id)}
}
