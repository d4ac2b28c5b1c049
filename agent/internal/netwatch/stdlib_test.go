package netwatch

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/wire"
)

func TestParseRoutes(t *testing.T) {
	v4, err := os.ReadFile("testdata/proc/net/route")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := parseRouteV4(v4), []string{"eth0"}; !reflect.DeepEqual(got, want) {
		t.Errorf("IPv4 default route interfaces: got %v, want %v", got, want)
	}
	v6, err := os.ReadFile("testdata/proc/net/ipv6_route")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := parseRouteV6(v6), []string{"wlan0"}; !reflect.DeepEqual(got, want) {
		t.Errorf("IPv6 default route interfaces: got %v, want %v", got, want)
	}
	if got := parseRouteV4([]byte("garbage\n\x00\x01 x y\n")); len(got) != 0 {
		t.Errorf("garbage route table: got %v, want none", got)
	}
}

func TestWireless(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "sys/class/net/wlan0/wireless"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "proc/net"), 0o755); err != nil {
		t.Fatal(err)
	}
	// /proc/net/wireless as the kernel prints it (header lines, then "iface: status …").
	pw := "Inter-| sta-|   Quality        |   Discarded packets               | Missed | WE\n" +
		" face | tus | link level noise |  nwid  crypt   frag  retry   misc | beacon | 22\n" +
		" wlan1: 0000   70.  -40.  -256        0      0      0      0      0        0\n"
	if err := os.WriteFile(filepath.Join(root, "proc/net/wireless"), []byte(pw), 0o644); err != nil {
		t.Fatal(err)
	}
	w := New(Options{Root: root})
	for _, tc := range []struct {
		name string
		want bool
	}{{"wlan0", true}, {"wlan1", true}, {"eth0", false}, {"face", false}} {
		if got := w.isWireless(tc.name); got != tc.want {
			t.Errorf("isWireless(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestStdlibSnapshot reads this machine's real interfaces through the
// standard-library backend: loopback must be there and flagged.
func TestStdlibSnapshot(t *testing.T) {
	w := New(Options{ForcePoll: true, Root: "testdata"})
	ifs, addrs, err := w.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	var lo *wire.Interface
	for i := range ifs {
		if ifs[i].Loopback {
			lo = &ifs[i]
		}
	}
	if lo == nil {
		t.Fatalf("no loopback interface in %+v", ifs)
	}
	found := false
	for _, a := range addrs {
		if a.Address == "127.0.0.1" {
			found = true
			if !a.Loopback || a.Primary || a.Prefix != 8 || a.Family != wire.IPv4 || a.Interface != lo.Name {
				t.Errorf("127.0.0.1: got %+v, want loopback, not primary, /8, ipv4 on %s", a, lo.Name)
			}
		}
	}
	if !found {
		t.Errorf("127.0.0.1 not reported: %+v", addrs)
	}
}

// TestPollFallback drives the polling backend by changing the route table it
// reads: a new default route must produce a notification.
func TestPollFallback(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "proc/net"), 0o755); err != nil {
		t.Fatal(err)
	}
	route := filepath.Join(root, "proc/net/route")
	header := "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
	if err := os.WriteFile(route, []byte(header), 0o644); err != nil {
		t.Fatal(err)
	}
	lo := func() ([]net.Interface, error) {
		ifs, err := net.Interfaces()
		var out []net.Interface
		for _, i := range ifs {
			if i.Flags&net.FlagLoopback != 0 {
				out = append(out, i)
			}
		}
		return out, err
	}
	w := New(Options{ForcePoll: true, Root: root, PollInterval: 10 * time.Millisecond, Interfaces: lo})
	var n atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Watch(ctx, func() { n.Add(1) }) }()
	testenv.Eventually(t, 5*time.Second, func() string {
		if w.Mode() != ModePoll {
			return "watcher not polling yet"
		}
		return ""
	})
	time.Sleep(50 * time.Millisecond) // several polls of an unchanged state
	if got := n.Load(); got != 0 {
		t.Errorf("got %d notifications with nothing changed, want 0", got)
	}
	ifname := "lo"
	if ifs, _ := lo(); len(ifs) > 0 {
		ifname = ifs[0].Name
	}
	if err := os.WriteFile(route, []byte(header+ifname+"\t00000000\t0100007F\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, func() string {
		if n.Load() == 0 {
			return "no notification after the default route appeared"
		}
		return ""
	})
	ifs, _, err := w.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if len(ifs) != 1 || !ifs[0].DefaultRoute {
		t.Errorf("got interfaces %+v, want one with default_route", ifs)
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("Watch returned %v, want context.Canceled", err)
	}
}

// TestFallbackToPolling makes the netlink subscription fail (a namespace
// handle that is not a namespace) and checks the Watcher polls instead.
func TestFallbackToPolling(t *testing.T) {
	bad := netns.NsHandle(1 << 20) // not an open file descriptor
	w := New(Options{Namespace: &bad, PollInterval: 10 * time.Millisecond, Root: t.TempDir()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Watch(ctx, func() {}) }()
	testenv.Eventually(t, 5*time.Second, func() string {
		if w.Mode() != ModePoll {
			return fmt.Sprintf("mode %q, want poll after a failed subscription", w.Mode())
		}
		return ""
	})
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("Watch returned %v, want context.Canceled", err)
	}
}
