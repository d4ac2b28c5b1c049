package netwatch

import (
	"net"
	"net/netip"
	"reflect"
	"testing"

	"github.com/pifleet/pifleet/internal/wire"
)

func TestAssemble(t *testing.T) {
	a := func(ifname, s string, prefix int) addr {
		return addr{Interface: ifname, IP: netip.MustParseAddr(s), Prefix: prefix}
	}
	links := []link{
		{Name: "wlan0", MAC: "b8:27:eb:00:00:02", Up: true, Wireless: true},
		{Name: "lo", Up: true, Loopback: true},
		{Name: "eth0", MAC: "b8:27:eb:00:00:01", Up: true},
		{Name: "usb0", MAC: "b8:27:eb:00:00:03"},
	}
	addrs := []addr{
		a("wlan0", "2001:db8::20", 64),
		a("eth0", "fe80::ba27:ebff:fe00:1", 64),
		a("eth0", "198.51.100.7", 24),
		a("eth0", "192.0.2.10", 24),
		a("lo", "::1", 128),
		a("lo", "127.0.0.1", 8),
		a("wlan0", "169.254.3.4", 16),
		a("wlan0", "198.51.100.20", 24),
		{Interface: "wlan0", IP: netip.MustParseAddr("2001:db8::abcd"), Prefix: 64, Secondary: true},
		a("eth0", "192.0.2.10", 24), // listed twice
		{Interface: "eth0", IP: netip.MustParseAddr("::ffff:192.0.2.11"), Prefix: 24},
	}
	var def defaults
	def.add(wire.IPv4, "eth0")
	def.add(wire.IPv6, "wlan0")
	var asked []string
	ssid := func(n string) string { asked = append(asked, n); return "pifleet-lab" }

	gotIfs, gotAddrs := assemble(links, addrs, def, ssid)

	wantIfs := []wire.Interface{
		{Name: "eth0", MAC: "b8:27:eb:00:00:01", Up: true, DefaultRoute: true},
		{Name: "lo", Up: true, Loopback: true},
		{Name: "usb0", MAC: "b8:27:eb:00:00:03"},
		{Name: "wlan0", MAC: "b8:27:eb:00:00:02", Up: true, DefaultRoute: true, SSID: "pifleet-lab"},
	}
	if !reflect.DeepEqual(gotIfs, wantIfs) {
		t.Errorf("interfaces:\ngot  %+v\nwant %+v", gotIfs, wantIfs)
	}
	wantAddrs := []wire.Address{
		{Address: "192.0.2.10", Prefix: 24, Family: wire.IPv4, Interface: "eth0", Primary: true},
		{Address: "192.0.2.11", Prefix: 24, Family: wire.IPv4, Interface: "eth0", Primary: true},
		{Address: "198.51.100.7", Prefix: 24, Family: wire.IPv4, Interface: "eth0", Primary: true},
		{Address: "fe80::ba27:ebff:fe00:1", Prefix: 64, Family: wire.IPv6, Interface: "eth0", LinkLocal: true},
		{Address: "127.0.0.1", Prefix: 8, Family: wire.IPv4, Interface: "lo", Loopback: true},
		{Address: "::1", Prefix: 128, Family: wire.IPv6, Interface: "lo", Loopback: true},
		{Address: "169.254.3.4", Prefix: 16, Family: wire.IPv4, Interface: "wlan0", LinkLocal: true},
		{Address: "198.51.100.20", Prefix: 24, Family: wire.IPv4, Interface: "wlan0"},
		{Address: "2001:db8::20", Prefix: 64, Family: wire.IPv6, Interface: "wlan0", Primary: true},
		{Address: "2001:db8::abcd", Prefix: 64, Family: wire.IPv6, Interface: "wlan0"},
	}
	if !reflect.DeepEqual(gotAddrs, wantAddrs) {
		t.Errorf("addresses:\ngot  %+v\nwant %+v", gotAddrs, wantAddrs)
	}
	if !reflect.DeepEqual(asked, []string{"wlan0"}) {
		t.Errorf("SSID asked for %v, want only [wlan0] (wireless and up)", asked)
	}
}

func TestAssembleDeterministic(t *testing.T) {
	addrs := []addr{
		{Interface: "eth0", IP: netip.MustParseAddr("192.0.2.3"), Prefix: 24},
		{Interface: "eth0", IP: netip.MustParseAddr("2001:db8::1"), Prefix: 64},
		{Interface: "eth0", IP: netip.MustParseAddr("192.0.2.1"), Prefix: 24},
	}
	links := []link{{Name: "eth1"}, {Name: "eth0"}}
	_, first := assemble(links, addrs, defaults{}, nil)
	for i := 0; i < 20; i++ {
		rev := make([]addr, len(addrs))
		for j := range addrs {
			rev[len(addrs)-1-j] = addrs[j]
		}
		addrs = rev
		_, got := assemble(links, addrs, defaults{}, nil)
		if !reflect.DeepEqual(got, first) {
			t.Fatalf("order depends on input order: got %v, want %v", got, first)
		}
	}
}

func TestMACString(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want string
	}{
		{nil, ""},
		{[]byte{0, 0, 0, 0, 0, 0}, ""},
		{[]byte{0xb8, 0x27, 0xeb, 1, 2, 3}, "b8:27:eb:01:02:03"},
	} {
		if got := macString(tc.in); got != tc.want {
			t.Errorf("macString(%x) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseIwLink(t *testing.T) {
	// iw 5.x output format (iw/link.c: "Connected to %s (on %s)", "\tSSID: ").
	connected := "Connected to b8:27:eb:12:34:56 (on wlan0)\n\tSSID: pifleet lab\n\tfreq: 2437\n\tRX: 1234 bytes (10 packets)\n"
	for _, tc := range []struct{ in, want string }{
		{connected, "pifleet lab"},
		{"Not connected.\n", ""},
		{"", ""},
	} {
		if got := parseIwLink([]byte(tc.in)); got != tc.want {
			t.Errorf("parseIwLink(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestUpRule is the table of linkUp, the one rule for "up": each row is an
// interface as net.Interfaces would list it (injected, so no namespace is
// needed), holding a global address and the default route. It goes through
// the standard-library backend and assemble, so the row also says whether
// the address is reported and primary.
func TestUpRule(t *testing.T) {
	for _, tc := range []struct {
		name    string
		flags   net.Flags
		up      bool
		primary bool
	}{
		{"up and running", net.FlagUp | net.FlagRunning | net.FlagBroadcast | net.FlagMulticast, true, true},
		{"up, no carrier (cable out)", net.FlagUp | net.FlagBroadcast | net.FlagMulticast, false, false},
		{"administratively down", net.FlagBroadcast | net.FlagMulticast, false, false},
		{"running but down (not seen; kernel clears it)", net.FlagRunning, false, false},
		{"loopback up", net.FlagUp | net.FlagRunning | net.FlagLoopback, true, true},
		{"point-to-point up (tun, oper state unknown)", net.FlagUp | net.FlagRunning | net.FlagPointToPoint, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := linkUp(tc.flags); got != tc.up {
				t.Errorf("linkUp(%v) = %v, want %v", tc.flags, got, tc.up)
			}
			// An index no interface has: the backend finds no addresses of
			// its own for it.
			ifc := net.Interface{Index: 1 << 30, Name: "eth9", Flags: tc.flags, HardwareAddr: net.HardwareAddr{0xb8, 0x27, 0xeb, 0, 0, 9}}
			w := New(Options{ForcePoll: true, Root: t.TempDir(), Interfaces: func() ([]net.Interface, error) { return []net.Interface{ifc}, nil }})
			links, addrs, _, err := w.stdlibSnapshot()
			if err != nil {
				t.Fatal(err)
			}
			if len(links) != 1 || len(addrs) != 0 {
				t.Fatalf("stdlib backend: got links %+v addresses %+v, want eth9 alone", links, addrs)
			}
			var def defaults
			def.add(wire.IPv4, "eth9")
			addrs = append(addrs, addr{Interface: "eth9", IP: netip.MustParseAddr("192.0.2.9"), Prefix: 24})
			ifs, as := assemble(links, addrs, def, nil)
			if got := ifs[0].Up; got != tc.up {
				t.Errorf("interface up: got %v, want %v", got, tc.up)
			}
			if len(as) != 1 {
				t.Fatalf("addresses: got %+v, want 192.0.2.9 reported whether up or not", as)
			}
			if got := as[0].Primary; got != tc.primary {
				t.Errorf("192.0.2.9 primary: got %v, want %v", got, tc.primary)
			}
		})
	}
}
