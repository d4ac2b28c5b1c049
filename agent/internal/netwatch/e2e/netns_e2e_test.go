package e2e

import (
	"fmt"
	"testing"
	"time"
)

// TestNetnsHubFollowsAddresses adds, replaces and removes addresses and the
// default route inside the namespace and checks the hub's view follows.
// How long each change took to reach the hub is logged; the benchmark
// BenchmarkNetnsAddrToHub measures it properly.
func TestNetnsHubFollowsAddresses(t *testing.T) {
	const id = "pi-netns"
	w := newWorld(t, id)
	w.wait(id, 20*time.Second, func(d device) string {
		if !d.Online {
			return "agent not online yet"
		}
		// The health block travels too: the real probes ran on this machine.
		if d.Health == nil || d.Health.Probes["uptime"] != "ok" || d.Health.Probes["meminfo"] != "ok" {
			return fmt.Sprintf("no health block with probes from the agent: %+v", d.Health)
		}
		return ""
	})

	type want struct {
		addr    string
		prefix  int
		ifname  string
		primary bool
	}
	has := func(ws ...want) func(device) string {
		return func(d device) string {
			for _, x := range ws {
				a := findAddr(d, x.addr)
				if a == nil {
					return fmt.Sprintf("%s not on the hub yet (have %v)", x.addr, d.Addresses)
				}
				if a.Prefix != x.prefix || a.Interface != x.ifname || a.Primary != x.primary {
					return fmt.Sprintf("%s: hub has %+v, want /%d on %s primary=%v", x.addr, *a, x.prefix, x.ifname, x.primary)
				}
			}
			return ""
		}
	}
	gone := func(addrs ...string) func(device) string {
		return func(d device) string {
			for _, a := range addrs {
				if findAddr(d, a) != nil {
					return a + " still on the hub"
				}
			}
			return ""
		}
	}
	all := func(conds ...func(device) string) func(device) string {
		return func(d device) string {
			for _, c := range conds {
				if m := c(d); m != "" {
					return m
				}
			}
			return ""
		}
	}
	step := func(name string, cond func(device) string, cmds ...[]string) {
		t.Helper()
		start := time.Now()
		for _, c := range cmds {
			w.ns.IP(c...)
		}
		w.wait(id, 10*time.Second, cond)
		t.Logf("%-28s on the hub after %v", name, time.Since(start).Round(time.Millisecond))
	}
	ip := func(args ...string) []string { return args }

	step("add 192.0.2.10/24", has(want{"192.0.2.10", 24, "v0", false}),
		ip("addr", "add", "192.0.2.10/24", "dev", "v0"))
	step("default route via v0", all(has(want{"192.0.2.10", 24, "v0", true}), func(d device) string {
		for _, i := range d.Interfaces {
			if i.Name == "v0" && i.DefaultRoute {
				return ""
			}
		}
		return "v0 not marked default_route"
	}), ip("route", "add", "default", "via", "192.0.2.1", "dev", "v0"))
	step("add 2001:db8::10/64", has(want{"2001:db8::10", 64, "v0", false}),
		ip("-6", "addr", "add", "2001:db8::10/64", "dev", "v0", "nodad"))
	step("renumber (DHCP-like burst)", all(has(want{"198.51.100.10", 24, "v0", false}), gone("192.0.2.10")),
		ip("addr", "del", "192.0.2.10/24", "dev", "v0"),
		ip("addr", "add", "198.51.100.10/24", "dev", "v0"))
	step("second interface", has(want{"198.51.100.77", 24, "v0p", false}),
		ip("addr", "add", "198.51.100.77/24", "dev", "v0p"))
	step("remove IPv6", gone("2001:db8::10"),
		ip("-6", "addr", "del", "2001:db8::10/64", "dev", "v0"))
	step("link down", func(d device) string {
		for _, i := range d.Interfaces {
			if i.Name == "v0p" {
				if i.Up {
					return "v0p still up on the hub"
				}
				return ""
			}
		}
		return "v0p not on the hub"
	}, ip("link", "set", "v0p", "down"))
	step("loopback flagged", func(d device) string {
		a := findAddr(d, "127.0.0.1")
		if a == nil || !a.Loopback || a.Primary {
			return fmt.Sprintf("127.0.0.1: %+v, want loopback and not primary", a)
		}
		return ""
	})
}
