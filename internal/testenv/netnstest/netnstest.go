// Package netnstest makes throwaway network namespaces for tests: a named
// namespace (ip netns add) with loopback up and a veth pair v0/v0p inside
// (the dummy link type is missing on some kernels), or two namespaces joined
// by a veth pair (Pair). Tests need root and the
// ip command (iproute2); without them they fail, never skip. Everything the
// namespace holds dies with it in t.Cleanup, and no traffic leaves it.
package netnstest

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/pifleet/pifleet/internal/testenv"
)

// NS is a network namespace made for one test.
type NS struct {
	Name   string
	Handle netns.NsHandle
	ip     string
	t      testing.TB
}

var seq atomic.Int64

// New makes a namespace with lo, v0 and v0p up, removed when the test ends.
func New(t testing.TB) *NS {
	t.Helper()
	n := bare(t)
	n.IP("link", "add", "v0", "type", "veth", "peer", "name", "v0p")
	n.IP("link", "set", "v0", "up")
	n.IP("link", "set", "v0p", "up")
	return n
}

// Pair makes two namespaces joined by a veth pair, like two machines on
// one LAN: link "va" in a and "vb" in b, both up (multicast on), and lo
// up; the caller adds addresses. Nothing else is in either namespace.
func Pair(t testing.TB) (a, b *NS) {
	t.Helper()
	a, b = bare(t), bare(t)
	a.IP("link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", b.Name)
	a.IP("link", "set", "va", "multicast", "on", "up")
	b.IP("link", "set", "vb", "multicast", "on", "up")
	return a, b
}

// bare makes a namespace with only lo, up.
func bare(t testing.TB) *NS {
	t.Helper()
	testenv.RequireRoot(t, "network namespaces")
	ip := testenv.RequireCommand(t, "ip", "iproute2")
	n := &NS{Name: fmt.Sprintf("pifleet-t%d-%d", os.Getpid(), seq.Add(1)), ip: ip, t: t}
	if out, err := exec.Command(ip, "netns", "add", n.Name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", n.Name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(ip, "netns", "delete", n.Name).CombinedOutput(); err != nil {
			t.Errorf("ip netns delete %s: %v\n%s", n.Name, err, out)
		}
	})
	h, err := netns.GetFromName(n.Name)
	if err != nil {
		t.Fatalf("open namespace %s: %v", n.Name, err)
	}
	n.Handle = h
	t.Cleanup(func() { h.Close() })
	n.IP("link", "set", "lo", "up")
	return n
}

// IP runs `ip -n NAME args…` and fails the test on error.
func (n *NS) IP(args ...string) {
	n.t.Helper()
	if out, err := n.TryIP(args...); err != nil {
		n.t.Fatalf("ip -n %s %s: %v\n%s", n.Name, strings.Join(args, " "), err, out)
	}
}

// TryIP runs `ip -n NAME args…` and returns its output and error.
func (n *NS) TryIP(args ...string) ([]byte, error) {
	return exec.Command(n.ip, append([]string{"-n", n.Name}, args...)...).CombinedOutput()
}

// Command returns a command that runs name with args inside the namespace
// (ip netns exec; no shell).
func (n *NS) Command(name string, args ...string) *exec.Cmd {
	return exec.Command(n.ip, append([]string{"netns", "exec", n.Name, name}, args...)...)
}
