package fleet

import (
	"slices"
	"strings"
	"time"

	"github.com/pifleet/pifleet/internal/wire"
)

// diff lists the alerts between two statuses of one device: new problems,
// recovered problems, and a change of usable addresses.
func diff(old, next *wire.Status, now time.Time) []Alert {
	var out []Alert
	var added, gone []wire.Problem
	for _, p := range next.Health.Problems {
		if !slices.Contains(old.Health.Problems, p) {
			added = append(added, p)
		}
	}
	for _, p := range old.Health.Problems {
		if !slices.Contains(next.Health.Problems, p) {
			gone = append(gone, p)
		}
	}
	if len(added) > 0 {
		out = append(out, Alert{Kind: "problem", Device: next.ID, Detail: problemList(added), Time: now})
	}
	if len(gone) > 0 {
		out = append(out, Alert{Kind: "recovered", Device: next.ID, Detail: problemList(gone), Time: now})
	}
	if o, n := UsableAddresses(old), UsableAddresses(next); !slices.Equal(o, n) {
		out = append(out, Alert{Kind: "address", Device: next.ID, Detail: strings.Join(n, ", "), Time: now})
	}
	return out
}

func problemList(ps []wire.Problem) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = string(p)
	}
	return strings.Join(s, ", ")
}

// sidePrefixes name the interfaces of containers and virtual networks on
// a Pi: their addresses reach nothing from outside (docker0's 172.17.0.1
// is on every Pi with Docker).
var sidePrefixes = []string{"docker", "br-", "veth", "ifb", "virbr", "cni", "flannel", "vxlan", "kube", "lxc", "lxd"}

// SideInterface reports whether an interface is a container bridge or
// another virtual network a person cannot reach the Pi on.
func SideInterface(name string) bool {
	for _, p := range sidePrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// UsableAddresses returns the addresses a person can reach the device on
// (no loopback, no link-local), primary first.
func UsableAddresses(st *wire.Status) []string {
	if st == nil {
		return nil
	}
	var prim, rest []string
	for _, a := range st.Addresses {
		if !a.Usable() || SideInterface(a.Interface) {
			continue
		}
		if a.Primary {
			prim = append(prim, a.Address)
		} else {
			rest = append(rest, a.Address)
		}
	}
	return append(prim, rest...)
}
