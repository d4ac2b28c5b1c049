package netwatch

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/pifleet/pifleet/internal/wire"
)

// Route flags from linux/route.h (ipv6_route uses the same values).
const (
	rtfUp     = 0x0001
	rtfReject = 0x0200
)

// stdlibSnapshot reads links and addresses with the standard library
// (Options.Interfaces) and default routes from /proc/net/route and
// /proc/net/ipv6_route. It is the snapshot used when no netlink handle
// could be made, and the agent's only standard-library address lister.
func (w *Watcher) stdlibSnapshot() ([]link, []addr, defaults, error) {
	ifaces, err := w.opts.Interfaces()
	if err != nil {
		return nil, nil, defaults{}, fmt.Errorf("list interfaces: %w", err)
	}
	var links []link
	var addrs []addr
	for _, ifc := range ifaces {
		links = append(links, link{
			Name:     ifc.Name,
			MAC:      macString(ifc.HardwareAddr),
			Up:       linkUp(ifc.Flags),
			Loopback: ifc.Flags&net.FlagLoopback != 0,
			Wireless: w.isWireless(ifc.Name),
		})
		as, err := ifc.Addrs()
		if err != nil {
			w.log.Debug("list addresses", "interface", ifc.Name, "err", err)
			continue
		}
		for _, a := range as {
			n, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			if ip, prefix, ok := prefixOf(n); ok {
				addrs = append(addrs, addr{Interface: ifc.Name, IP: ip, Prefix: prefix})
			}
		}
	}
	var def defaults
	if b, err := os.ReadFile(w.path("proc/net/route")); err == nil {
		for _, n := range parseRouteV4(b) {
			def.add(wire.IPv4, n)
		}
	}
	if b, err := os.ReadFile(w.path("proc/net/ipv6_route")); err == nil {
		for _, n := range parseRouteV6(b) {
			def.add(wire.IPv6, n)
		}
	}
	return links, addrs, def, nil
}

// parseRouteV4 returns the interfaces holding an IPv4 default route in
// /proc/net/route (destination and mask 0, route up, not reject).
func parseRouteV4(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 8 || f[0] == "Iface" {
			continue
		}
		flags, err := strconv.ParseUint(f[3], 16, 32)
		if err != nil || flags&rtfUp == 0 || flags&rtfReject != 0 {
			continue
		}
		if f[1] == "00000000" && f[7] == "00000000" {
			out = append(out, f[0])
		}
	}
	return out
}

// parseRouteV6 returns the interfaces holding an IPv6 default route in
// /proc/net/ipv6_route (::/0, up, not reject: the kernel lists an
// unreachable ::/0 on lo).
func parseRouteV6(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 {
			continue
		}
		flags, err := strconv.ParseUint(f[8], 16, 32)
		if err != nil || flags&rtfUp == 0 || flags&rtfReject != 0 {
			continue
		}
		if strings.Trim(f[0], "0") == "" && f[1] == "00" {
			out = append(out, f[9])
		}
	}
	return out
}
