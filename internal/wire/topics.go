package wire

import (
	"fmt"
	"strings"
)

// Root is the versioned topic namespace. It changes only with an
// incompatible protocol version.
const Root = "pifleet/v1"

// Topic leaves under a device.
const (
	LeafState  = "state"  // retained State: online/offline/lost with epoch (will = lost)
	LeafStatus = "status" // retained Status: addresses, health
	LeafCmd    = "cmd"    // Command from a hub, QoS 1, not retained
	LeafResult = "result" // result/<hub>/<cmd-id>: Chunk and Notice (not retained), Final (retained)
)

// DeviceTopic returns pifleet/v1/devices/<id>/<leaf>.
func DeviceTopic(id, leaf string) string { return Root + "/devices/" + id + "/" + leaf }

// StateTopic returns the retained state topic of a device.
func StateTopic(id string) string { return DeviceTopic(id, LeafState) }

// StatusTopic returns the retained status topic of a device.
func StatusTopic(id string) string { return DeviceTopic(id, LeafStatus) }

// CmdTopic returns the command topic of a device.
func CmdTopic(id string) string { return DeviceTopic(id, LeafCmd) }

// ResultTopic is where device id publishes results of command cmdID for hub.
// It lives under the device's own namespace so a per-device ACL
// ("publish only below pifleet/v1/devices/<me>/") still allows it.
func ResultTopic(id, hub, cmdID string) string {
	return DeviceTopic(id, LeafResult) + "/" + hub + "/" + cmdID
}

// ResultFilter is what hub subscribes to for results addressed to it.
func ResultFilter(hub string) string { return Root + "/devices/+/" + LeafResult + "/" + hub + "/+" }

// HubPresenceTopic is the retained presence topic of a hub.
func HubPresenceTopic(hub string) string { return Root + "/hubs/" + hub + "/presence" }

// Client id roles: the agent on a Pi and a hub.
const (
	ClientAgent = "agent"
	ClientHub   = "hub"
)

// ClientID returns the MQTT client id of a pifleet client:
// pifleet-<role>-<id> with every '.' of id written as '~'. Some brokers
// (nats-server) refuse client ids with a '.'; ids never contain '~', so the
// mapping stays one-to-one (replace '~' by '.' to get the id back), and an
// id without a '.' keeps the client id it always had.
func ClientID(role, id string) string {
	return "pifleet-" + role + "-" + strings.ReplaceAll(id, ".", "~")
}

// Subscription filters a hub uses to rebuild the fleet view.
var (
	FilterAllStates   = Root + "/devices/+/" + LeafState
	FilterAllStatuses = Root + "/devices/+/" + LeafStatus
	FilterAllHubs     = Root + "/hubs/+/presence"
)

// ParsedTopic is a topic split into its parts.
type ParsedTopic struct {
	Device string // device id, for device topics
	Hub    string // hub id, for presence and result topics
	Leaf   string // state, status, cmd, result, presence
	CmdID  string // for result topics
}

// ParseTopic splits a pifleet topic and validates its ids.
func ParseTopic(topic string) (ParsedTopic, error) {
	rest, ok := strings.CutPrefix(topic, Root+"/")
	if !ok {
		return ParsedTopic{}, fmt.Errorf("topic %q: not under %s", topic, Root)
	}
	p := strings.Split(rest, "/")
	switch {
	case len(p) == 3 && p[0] == "devices" && (p[2] == LeafState || p[2] == LeafStatus || p[2] == LeafCmd):
		if err := ValidateID(p[1]); err != nil {
			return ParsedTopic{}, fmt.Errorf("topic %q: %w", topic, err)
		}
		return ParsedTopic{Device: p[1], Leaf: p[2]}, nil
	case len(p) == 5 && p[0] == "devices" && p[2] == LeafResult:
		for _, id := range []string{p[1], p[3], p[4]} {
			if err := ValidateID(id); err != nil {
				return ParsedTopic{}, fmt.Errorf("topic %q: %w", topic, err)
			}
		}
		return ParsedTopic{Device: p[1], Leaf: LeafResult, Hub: p[3], CmdID: p[4]}, nil
	case len(p) == 3 && p[0] == "hubs" && p[2] == "presence":
		if err := ValidateID(p[1]); err != nil {
			return ParsedTopic{}, fmt.Errorf("topic %q: %w", topic, err)
		}
		return ParsedTopic{Hub: p[1], Leaf: "presence"}, nil
	}
	return ParsedTopic{}, fmt.Errorf("topic %q: unknown layout", topic)
}
