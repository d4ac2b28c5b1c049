package netwatch

import (
	"bytes"
	"net"
	"net/netip"
	"sort"

	"github.com/pifleet/pifleet/internal/wire"
)

// link is what both snapshot backends learn about one interface.
type link struct {
	Name     string
	MAC      string
	Up       bool // linkUp of its flags
	Loopback bool
	Wireless bool
}

// linkUp is the one rule for "up", shared by both backends: the interface
// is administratively up (IFF_UP) and the kernel says it can pass packets
// (IFF_RUNNING, which the kernel sets from the operational state: UP, or
// UNKNOWN for links without carrier detection such as lo, tun and dummy).
// So an unplugged cable or a Wi-Fi that is not associated is down, even
// though `ip link set up` was done.
//
// A down interface is still listed, and so are its addresses (the kernel
// keeps them; DHCP clients usually remove them themselves), but none of
// them is primary: a stale default route through an unplugged port must
// not send a person to an address that cannot answer.
func linkUp(f net.Flags) bool {
	return f&net.FlagUp != 0 && f&net.FlagRunning != 0
}

// addr is one address as a backend found it.
type addr struct {
	Interface string
	IP        netip.Addr
	Prefix    int
	// Secondary marks IPv6 temporary (privacy) or deprecated addresses:
	// reported, but never primary.
	Secondary bool
}

// defaults names the interfaces holding a default route, per family.
type defaults struct {
	V4, V6 map[string]bool
}

func (d *defaults) add(fam wire.Family, ifname string) {
	m := &d.V4
	if fam == wire.IPv6 {
		m = &d.V6
	}
	if *m == nil {
		*m = map[string]bool{}
	}
	(*m)[ifname] = true
}

// assemble turns backend facts into the wire view, sorted deterministically.
// ssid is called only for wireless interfaces that are up.
func assemble(links []link, addrs []addr, def defaults, ssid func(string) string) ([]wire.Interface, []wire.Address) {
	ifs := make([]wire.Interface, 0, len(links))
	up := make(map[string]bool, len(links))
	for _, l := range links {
		up[l.Name] = l.Up
		wi := wire.Interface{
			Name:         l.Name,
			MAC:          l.MAC,
			Up:           l.Up,
			Loopback:     l.Loopback,
			DefaultRoute: def.V4[l.Name] || def.V6[l.Name],
		}
		if l.Wireless && l.Up && ssid != nil {
			wi.SSID = ssid(l.Name)
		}
		ifs = append(ifs, wi)
	}
	sort.Slice(ifs, func(i, j int) bool { return ifs[i].Name < ifs[j].Name })

	out := make([]wire.Address, 0, len(addrs))
	for _, a := range addrs {
		ip := a.IP.Unmap()
		wa := wire.Address{
			Address:   ip.String(),
			Prefix:    a.Prefix,
			Family:    wire.IPv4,
			Interface: a.Interface,
			LinkLocal: ip.IsLinkLocalUnicast(),
			Loopback:  ip.IsLoopback(),
		}
		if ip.Is6() {
			wa.Family = wire.IPv6
		}
		onDefault := def.V4[a.Interface]
		if wa.Family == wire.IPv6 {
			onDefault = def.V6[a.Interface]
		}
		wa.Primary = onDefault && up[a.Interface] && wa.Usable() && !a.Secondary
		out = append(out, wa)
	}
	sort.Slice(out, func(i, j int) bool { return lessAddr(out[i], out[j]) })
	return ifs, dedupe(out)
}

func lessAddr(a, b wire.Address) bool {
	if a.Interface != b.Interface {
		return a.Interface < b.Interface
	}
	if a.Family != b.Family {
		return a.Family == wire.IPv4
	}
	pa, _ := netip.ParseAddr(a.Address)
	pb, _ := netip.ParseAddr(b.Address)
	if c := pa.Compare(pb); c != 0 {
		return c < 0
	}
	return a.Prefix < b.Prefix
}

// dedupe drops exact repeats (the same address listed twice by a backend).
func dedupe(in []wire.Address) []wire.Address {
	out := in[:0]
	for i, a := range in {
		if i > 0 && a == in[i-1] {
			continue
		}
		out = append(out, a)
	}
	return out
}

// macString formats a hardware address, empty for interfaces without one
// (loopback, tun) or with an all-zero one.
func macString(hw net.HardwareAddr) string {
	if len(hw) == 0 || bytes.Equal(hw, make([]byte, len(hw))) {
		return ""
	}
	return hw.String()
}

// prefixOf converts an IPNet to an address and prefix length.
func prefixOf(n *net.IPNet) (netip.Addr, int, bool) {
	if n == nil {
		return netip.Addr{}, 0, false
	}
	ip, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Addr{}, 0, false
	}
	ip = ip.Unmap()
	ones, _ := n.Mask.Size()
	return ip, ones, true
}
