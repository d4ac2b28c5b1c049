// Package netwatch tells the agent the device's network interfaces and
// addresses, and when they change. It implements daemon.AddrSource.
//
// Changes are watched through rtnetlink (address, link and default-route
// events, github.com/vishvananda/netlink), so a new DHCP lease reaches the
// hub in milliseconds instead of at the next poll. Where a netlink
// subscription cannot be made (some containers, qemu-user, seccomp
// sandboxes) the Watcher falls back by itself to polling net.Interfaces
// every PollInterval, behind the same interface. Snapshots come from a
// netlink handle when there is one (injectable, so tests can point it into a
// network namespace they made) and from the standard library plus
// /proc/net/route otherwise.
//
// Every address is reported: link-local and loopback ones are flagged, never
// "primary". Primary addresses are the global ones on the interface that
// holds the default route of their family. Output is sorted (interfaces by
// name, addresses by interface, family, then address) so that two snapshots
// of the same state compare equal.
package netwatch
