package hubd

// The hub on the LAN: with an enrolment listener and its MQTT listener off
// loopback, the hub advertises itself with mDNS/DNS-SD (_pifleet._tcp) so
// `pifleet-agent join --discover TOKEN` finds it without a host name.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"unicode/utf8"

	"github.com/pifleet/pifleet/internal/discovery"
	"github.com/pifleet/pifleet/internal/transport"
)

// --mdns values.
const (
	MDNSAuto = "auto" // advertise when the MQTT listener is off loopback (the default)
	MDNSOn   = "on"   // advertise even on loopback; fail if the hub cannot
	MDNSOff  = "off"
)

// mdnsPlan is what the hub knows that an advertisement needs.
type mdnsPlan struct {
	Mode        string // MDNSAuto ("" too), MDNSOn or MDNSOff
	ID, Host    string // the hub's id and machine: the instance is "<id> on <host>"
	MQTTListen  string
	EnrolListen string // the enrolment listener's address; "": none
	CAPin       string // hex SHA-256 of the fleet CA; "": none
}

// service returns what to advertise, or nil and why not.
func (p mdnsPlan) service() (*discovery.Service, string, error) {
	switch p.Mode {
	case MDNSOff:
		return nil, "--mdns off", nil
	case "", MDNSAuto, MDNSOn:
	default:
		return nil, "", fmt.Errorf("--mdns %q: want auto, on or off", p.Mode)
	}
	on := p.Mode == MDNSOn
	if p.MQTTListen == "" {
		p.MQTTListen = "127.0.0.1:1883" // fleetserver's default
	}
	if p.EnrolListen == "" || p.CAPin == "" {
		if on {
			return nil, "", fmt.Errorf("--mdns on: the hub advertises its enrolment listener, and it has none (it enrols Pis with its own fleet CA, embedded broker off loopback)")
		}
		return nil, "no enrolment listener", nil
	}
	if !on && transport.IsLoopbackAddr(p.MQTTListen) {
		return nil, "the MQTT listener is on loopback", nil
	}
	mqttHost, mqttPort, err := splitPort(p.MQTTListen)
	if err != nil {
		return nil, "", fmt.Errorf("--mdns: MQTT listener %q: %w", p.MQTTListen, err)
	}
	_, enrolPort, err := splitPort(p.EnrolListen)
	if err != nil {
		return nil, "", fmt.Errorf("--mdns: enrolment listener %q: %w", p.EnrolListen, err)
	}
	ifaces, err := interfacesWith(mqttHost)
	if err != nil {
		return nil, "", fmt.Errorf("--mdns: %w", err)
	}
	return &discovery.Service{Instance: instanceName(p.ID, p.Host), EnrolPort: enrolPort, MQTTPort: mqttPort,
		CAPin: p.CAPin, Interfaces: ifaces}, "", nil
}

func splitPort(addr string) (string, int, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("port %q: want 1-65535", ps)
	}
	return host, port, nil
}

// interfacesWith is where a listener on host is reachable: the
// interface holding that address, or every one (nil) for a wildcard
// address or a name.
func interfacesWith(host string) ([]net.Interface, error) {
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.IsUnspecified() || ip.IsLoopback() {
		return nil, nil
	}
	all, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	for _, ifi := range all {
		addrs, _ := ifi.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if have, ok := netip.AddrFromSlice(n.IP); ok && have.Unmap() == ip.Unmap().WithZone("") {
					return []net.Interface{ifi}, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("no interface has the address %s", host)
}

// instanceName is "<id> on <host>" (the id alone without a host name),
// within one DNS label (63 bytes), cut between characters.
func instanceName(id, host string) string {
	s := id
	if host != "" {
		s += " on " + host
	}
	if len(s) <= 63 {
		return s
	}
	s = s[:63]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// startMDNS advertises the hub as the plan says until stop is called
// (stop sends the goodbye); an auto plan that does not apply says why
// at debug level and does nothing, one that fails warns and does nothing.
func startMDNS(ctx context.Context, p mdnsPlan, log *slog.Logger) (stop func() error, err error) {
	s, why, err := p.service()
	if err != nil {
		return nil, err
	}
	if s == nil {
		log.Debug("not advertising the hub on the LAN (mDNS)", "reason", why)
		return func() error { return nil }, nil
	}
	stop, err = discovery.Advertise(ctx, *s)
	if err != nil && p.Mode == MDNSOn {
		return nil, fmt.Errorf("--mdns on: %w", err)
	}
	if err != nil { // auto: the hub works without; Pis join by name
		log.Warn("cannot advertise the hub on the LAN (mDNS); Pis join by host name", "err", err)
		return func() error { return nil }, nil
	}
	names := "all"
	if s.Interfaces != nil {
		names = s.Interfaces[0].Name
	}
	log.Info("advertising the hub on the LAN (mDNS _pifleet._tcp)", "instance", s.Instance,
		"enrol_port", s.EnrolPort, "mqtt_port", s.MQTTPort, "interfaces", names)
	return stop, nil
}
