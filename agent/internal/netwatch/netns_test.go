package netwatch

// Tests in this file need root and make network namespaces; their names
// start with TestNetns so the qemu-arm run can exclude them (-skip TestNetns).

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/testenv/netnstest"
	"github.com/pifleet/pifleet/internal/wire"
)

func nsWatcher(t *testing.T, ns *netnstest.NS) *Watcher {
	t.Helper()
	h, err := netlink.NewHandleAt(ns.Handle, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", ns.Name, err)
	}
	t.Cleanup(h.Close)
	nsh := ns.Handle
	return New(Options{Handle: h, Namespace: &nsh})
}

func findAddr(addrs []wire.Address, a string) *wire.Address {
	for i := range addrs {
		if addrs[i].Address == a {
			return &addrs[i]
		}
	}
	return nil
}

func TestNetnsSnapshot(t *testing.T) {
	ns := netnstest.New(t)
	ns.IP("addr", "add", "192.0.2.10/24", "dev", "v0")
	ns.IP("addr", "add", "198.51.100.5/24", "dev", "v0p")
	ns.IP("-6", "addr", "add", "2001:db8::10/64", "dev", "v0", "nodad")
	ns.IP("route", "add", "default", "via", "192.0.2.1", "dev", "v0")
	w := nsWatcher(t, ns)

	ifs, addrs, err := w.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	var names []string
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	if got, want := strings.Join(names, ","), "lo,v0,v0p"; got != want {
		t.Fatalf("interfaces: got %s, want %s", got, want)
	}
	if !ifs[0].Loopback || !ifs[0].Up {
		t.Errorf("lo: got %+v, want up loopback", ifs[0])
	}
	if !ifs[1].DefaultRoute || ifs[1].MAC == "" || !ifs[1].Up {
		t.Errorf("v0: got %+v, want up, with MAC, holding the default route", ifs[1])
	}
	if ifs[2].DefaultRoute {
		t.Errorf("v0p: got %+v, want no default route", ifs[2])
	}
	for _, tc := range []struct {
		addr    string
		prefix  int
		ifname  string
		primary bool
	}{
		{"192.0.2.10", 24, "v0", true},
		{"198.51.100.5", 24, "v0p", false},
		{"2001:db8::10", 64, "v0", false}, // no IPv6 default route
		{"127.0.0.1", 8, "lo", false},
	} {
		a := findAddr(addrs, tc.addr)
		if a == nil {
			t.Errorf("%s missing from %+v", tc.addr, addrs)
			continue
		}
		if a.Prefix != tc.prefix || a.Interface != tc.ifname || a.Primary != tc.primary {
			t.Errorf("%s: got %+v, want /%d on %s primary=%v", tc.addr, *a, tc.prefix, tc.ifname, tc.primary)
		}
	}
	ll := 0
	for _, a := range addrs {
		if strings.HasPrefix(a.Address, "fe80:") {
			ll++
			if !a.LinkLocal || a.Primary {
				t.Errorf("link-local %s: got %+v, want flagged link_local, not primary", a.Address, a)
			}
		}
	}
	if ll == 0 {
		t.Logf("no IPv6 link-local address yet (DAD pending); flags checked by TestAssemble")
	}
}

// TestNetnsWatch changes addresses and routes inside the namespace and
// checks that each change notifies and shows in the next snapshot.
func TestNetnsWatch(t *testing.T) {
	ns := netnstest.New(t)
	w := nsWatcher(t, ns)
	var n atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Watch(ctx, func() { n.Add(1) }) }()
	testenv.Eventually(t, 5*time.Second, func() string {
		if w.Mode() != ModeNetlink {
			return fmt.Sprintf("mode %q, want netlink", w.Mode())
		}
		return ""
	})

	step := func(desc string, check func([]wire.Interface, []wire.Address) string, ipArgs ...string) {
		t.Helper()
		before := n.Load()
		ns.IP(ipArgs...)
		testenv.Eventually(t, 5*time.Second, func() string {
			if n.Load() == before {
				return desc + ": no notification"
			}
			ifs, addrs, err := w.Snapshot()
			if err != nil {
				return err.Error()
			}
			return check(ifs, addrs)
		})
	}
	has := func(a string, primary bool) func([]wire.Interface, []wire.Address) string {
		return func(_ []wire.Interface, addrs []wire.Address) string {
			got := findAddr(addrs, a)
			if got == nil {
				return a + " not in snapshot"
			}
			if got.Primary != primary {
				return fmt.Sprintf("%s primary=%v, want %v", a, got.Primary, primary)
			}
			return ""
		}
	}
	gone := func(a string) func([]wire.Interface, []wire.Address) string {
		return func(_ []wire.Interface, addrs []wire.Address) string {
			if findAddr(addrs, a) != nil {
				return a + " still in snapshot"
			}
			return ""
		}
	}
	step("add v4", has("192.0.2.10", false), "addr", "add", "192.0.2.10/24", "dev", "v0")
	step("default route", has("192.0.2.10", true), "route", "add", "default", "via", "192.0.2.1", "dev", "v0")
	step("add v6", has("2001:db8::10", false), "-6", "addr", "add", "2001:db8::10/64", "dev", "v0", "nodad")
	step("replace v4", has("192.0.2.20", true), "addr", "add", "192.0.2.20/24", "dev", "v0")
	step("remove v4", gone("192.0.2.10"), "addr", "del", "192.0.2.10/24", "dev", "v0")
	step("link down", func(ifs []wire.Interface, _ []wire.Address) string {
		for _, i := range ifs {
			if i.Name == "v0p" && i.Up {
				return "v0p still up"
			}
		}
		return ""
	}, "link", "set", "v0p", "down")

	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("Watch returned %v, want context.Canceled", err)
	}
}

// BenchmarkNetnsSnapshot measures a netlink snapshot of a namespace with
// a few addresses and a default route.
func BenchmarkNetnsSnapshot(b *testing.B) {
	ns := netnstest.New(b)
	ns.IP("addr", "add", "192.0.2.10/24", "dev", "v0")
	ns.IP("-6", "addr", "add", "2001:db8::10/64", "dev", "v0", "nodad")
	ns.IP("route", "add", "default", "via", "192.0.2.1", "dev", "v0")
	h, err := netlink.NewHandleAt(ns.Handle, unix.NETLINK_ROUTE)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	w := New(Options{Handle: h})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := w.Snapshot(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestNetnsSnapshotReused checks that while netlink watches, a snapshot is
// reused until an event arrives, and that the event makes it fresh.
func TestNetnsSnapshotReused(t *testing.T) {
	ns := netnstest.New(t)
	w := nsWatcher(t, ns)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var n atomic.Int64
	go w.Watch(ctx, func() { n.Add(1) })
	testenv.Eventually(t, 5*time.Second, func() string {
		if w.Mode() != ModeNetlink {
			return "not watching yet"
		}
		return ""
	})
	_, a1, err := w.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	_, a2, _ := w.Snapshot()
	if w.cached == nil || len(a1) != len(a2) {
		t.Fatalf("snapshot not cached: %v vs %v", a1, a2)
	}
	a2[0] = wire.Address{Address: "mutated"} // callers own their copy
	if _, a3, _ := w.Snapshot(); findAddr(a3, "mutated") != nil {
		t.Fatal("a caller's edit leaked into the cached snapshot")
	}
	ns.IP("addr", "add", "198.51.100.9/24", "dev", "v0")
	testenv.Eventually(t, 5*time.Second, func() string {
		_, as, err := w.Snapshot()
		if err != nil {
			return err.Error()
		}
		if findAddr(as, "198.51.100.9") == nil {
			return "new address not in the snapshot after its event"
		}
		return ""
	})
}
