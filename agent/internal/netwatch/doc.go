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
// /proc/net/route otherwise; that standard-library lister is the agent's
// only one (the daemon's default AddrSource is a Watcher too).
//
// An interface is up when it is administratively up and running (IFF_UP
// and IFF_RUNNING, the kernel's summary of its operational state), the
// same rule for both backends (linkUp). Every address is reported, a down
// interface's too: link-local and loopback ones are flagged, never
// "primary". Primary addresses are the global ones on an up interface that
// holds the default route of their family. Output is sorted (interfaces by
// name, addresses by interface, family, then address) so that two snapshots
// of the same state compare equal.
package netwatch
