package netwatch

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/pifleet/pifleet/internal/wire"
)

// netlinkSnapshot reads links, addresses and default routes through h.
func (w *Watcher) netlinkSnapshot(h *netlink.Handle) ([]link, []addr, defaults, error) {
	nls, err := h.LinkList()
	if err != nil {
		return nil, nil, defaults{}, fmt.Errorf("netlink list links: %w", err)
	}
	names := make(map[int]string, len(nls))
	links := make([]link, 0, len(nls))
	for _, l := range nls {
		a := l.Attrs()
		names[a.Index] = a.Name
		links = append(links, link{
			Name:     a.Name,
			MAC:      macString(a.HardwareAddr),
			Up:       linkUp(a.Flags),
			Loopback: a.Flags&net.FlagLoopback != 0,
			Wireless: w.isWireless(a.Name),
		})
	}

	nas, err := h.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, nil, defaults{}, fmt.Errorf("netlink list addresses: %w", err)
	}
	addrs := make([]addr, 0, len(nas))
	for _, a := range nas {
		ip, prefix, ok := prefixOf(a.IPNet)
		name, known := names[a.LinkIndex]
		if !ok || !known {
			continue
		}
		addrs = append(addrs, addr{
			Interface: name,
			IP:        ip,
			Prefix:    prefix,
			// IFA_F_TEMPORARY shares its value with IFA_F_SECONDARY, which
			// on IPv4 only means "another address in the same subnet".
			Secondary: ip.Is6() && a.Flags&(unix.IFA_F_TEMPORARY|unix.IFA_F_DEPRECATED) != 0,
		})
	}

	routes, err := h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, nil, defaults{}, fmt.Errorf("netlink list routes: %w", err)
	}
	var def defaults
	for _, r := range routes {
		if !isDefaultRoute(r) {
			continue
		}
		fam := wire.IPv4
		if r.Family == unix.AF_INET6 {
			fam = wire.IPv6
		}
		for _, idx := range routeLinks(r) {
			if n, ok := names[idx]; ok {
				def.add(fam, n)
			}
		}
	}
	return links, addrs, def, nil
}

// isDefaultRoute reports whether r is a usable default route (0.0.0.0/0 or
// ::/0 of unicast type). netlink leaves Dst nil for the default route.
func isDefaultRoute(r netlink.Route) bool {
	if r.Type != 0 && r.Type != unix.RTN_UNICAST {
		return false // unreachable, blackhole, prohibit
	}
	if r.Dst == nil {
		return true
	}
	ones, _ := r.Dst.Mask.Size()
	return ones == 0
}

// routeLinks returns the interface indexes a route goes out of (several
// for a multipath route).
func routeLinks(r netlink.Route) []int {
	if len(r.MultiPath) == 0 {
		return []int{r.LinkIndex}
	}
	out := make([]int, 0, len(r.MultiPath))
	for _, nh := range r.MultiPath {
		out = append(out, nh.LinkIndex)
	}
	return out
}
