package wire

import (
	"reflect"
	"time"
)

// Lifecycle is the value of State.State.
type Lifecycle string

// Lifecycle values (Homie's $state / Sparkplug birth-death, simplified).
const (
	StateOnline  Lifecycle = "online"  // birth: published retained on every connect
	StateOffline Lifecycle = "offline" // clean shutdown (SIGTERM)
	StateLost    Lifecycle = "lost"    // the MQTT will: the broker saw the session die
)

// Valid reports whether l is a known lifecycle value.
func (l Lifecycle) Valid() bool {
	return l == StateOnline || l == StateOffline || l == StateLost
}

// State is retained on StateTopic. Epoch grows on every connect of the
// agent (also across restarts); a lost or offline State whose epoch is
// older than the epoch of the current online State is stale and ignored.
type State struct {
	V      int       `json:"v"`
	State  Lifecycle `json:"state"`
	Epoch  uint64    `json:"epoch"`
	Time   time.Time `json:"ts"`
	BootID string    `json:"boot_id,omitempty"`
}

func (m *State) version() int { return m.V }

// DecodeState decodes and validates a State payload.
func DecodeState(b []byte) (State, error) {
	var m State
	if err := decode(b, &m); err != nil {
		return State{}, err
	}
	if !m.State.Valid() {
		return State{}, errorf("state %q: not one of online, offline, lost", m.State)
	}
	return m, nil
}

// Status is retained on StatusTopic: the facts about one device.
type Status struct {
	V            int       `json:"v"`
	ID           string    `json:"id"`
	Hostname     string    `json:"hostname"`
	AgentVersion string    `json:"agent_version"`
	BootTime     time.Time `json:"boot_time"`
	Time         time.Time `json:"ts"`
	Seq          uint64    `json:"seq"`
	Epoch        uint64    `json:"epoch"`
	// HeartbeatS is how often (seconds) the agent re-sends its status at
	// the latest. A hub takes a session that stays silent for
	// SilenceAfter(HeartbeatS) as lost even when no will arrived.
	HeartbeatS int      `json:"heartbeat_s,omitempty"`
	Labels     []string `json:"labels,omitempty"`
	// Tools are the tools the agent runs signed commands for (e.g. "aws");
	// empty when commands are disabled (no hub key configured).
	Tools      []string    `json:"tools,omitempty"`
	Interfaces []Interface `json:"interfaces"`
	Addresses  []Address   `json:"addresses"`
	Health     Health      `json:"health"`
}

func (m *Status) version() int { return m.V }

// DecodeStatus decodes and validates a Status payload. Its strings are
// the device's words and come out Clean.
func DecodeStatus(b []byte) (Status, error) {
	var m Status
	if err := decode(b, &m); err != nil {
		return Status{}, err
	}
	if err := ValidateID(m.ID); err != nil {
		return Status{}, err
	}
	cleanStrings(reflect.ValueOf(&m).Elem())
	return m, nil
}

// Interface is one network interface of a device.
type Interface struct {
	Name         string `json:"name"`
	MAC          string `json:"mac,omitempty"`
	Up           bool   `json:"up"`
	DefaultRoute bool   `json:"default_route,omitempty"` // holds a default route
	SSID         string `json:"ssid,omitempty"`          // Wi-Fi network, when known
	Loopback     bool   `json:"loopback,omitempty"`
}

// Family of an address.
type Family string

// Family values.
const (
	IPv4 Family = "ipv4"
	IPv6 Family = "ipv6"
)

// Address is one IP address of a device. Link-local and loopback addresses
// are reported but flagged; they are never "the" address of a device.
type Address struct {
	Address   string `json:"address"`
	Prefix    int    `json:"prefix"`
	Family    Family `json:"family"`
	Interface string `json:"interface"`
	LinkLocal bool   `json:"link_local,omitempty"`
	Loopback  bool   `json:"loopback,omitempty"`
	Primary   bool   `json:"primary,omitempty"` // on the default-route interface, global scope
}

// Usable reports whether the address is one a person could reach the
// device on (not loopback, not link-local).
func (a Address) Usable() bool { return !a.LinkLocal && !a.Loopback }

// HubPresence is retained on HubPresenceTopic.
type HubPresence struct {
	V       int       `json:"v"`
	Hub     string    `json:"hub"`
	State   Lifecycle `json:"state"`
	Epoch   uint64    `json:"epoch"`
	Time    time.Time `json:"ts"`
	Version string    `json:"version,omitempty"`
}

func (m *HubPresence) version() int { return m.V }

// DecodeHubPresence decodes and validates a HubPresence payload.
func DecodeHubPresence(b []byte) (HubPresence, error) {
	var m HubPresence
	if err := decode(b, &m); err != nil {
		return HubPresence{}, err
	}
	if err := ValidateID(m.Hub); err != nil {
		return HubPresence{}, err
	}
	return m, nil
}

// DefaultHeartbeat is the heartbeat assumed for a status without
// heartbeat_s (agents before it was reported).
const DefaultHeartbeat = 30 * time.Second

// SilenceAfter is how long a session may stay silent before a hub takes it
// as lost without a will: one heartbeat plus half of one (at least 5 s)
// for delivery delays. A status carrying heartbeat_s sets the heartbeat;
// 0 means DefaultHeartbeat.
func SilenceAfter(heartbeatS int) time.Duration {
	hb := DefaultHeartbeat
	if heartbeatS > 0 {
		hb = time.Duration(heartbeatS) * time.Second
	}
	return hb + max(hb/2, 5*time.Second)
}
