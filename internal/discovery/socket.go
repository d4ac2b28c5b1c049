package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// packet is one datagram received on an interface in use.
type packet struct {
	data    []byte
	src     netip.AddrPort
	ifIndex int
}

// mconn is the mDNS socket pair (IPv4 and IPv6) and the interfaces it
// has joined the group on. Either family may be missing (a kernel without
// IPv6), not both. refresh follows interfaces and addresses that come and
// go (a Pi whose DHCP lease arrives after the hub started).
type mconn struct {
	p4    *ipv4.PacketConn
	p6    *ipv6.PacketConn
	port  int
	fixed []net.Interface // the caller's set; nil: every multicast-capable one
	in    chan packet
	wg    sync.WaitGroup
	once  sync.Once

	mu    sync.RWMutex
	links map[int]link // by interface index
}

// link is an interface in use: the families joined, its addresses and
// their prefixes as of the last refresh.
type link struct {
	ifi    net.Interface
	v4, v6 bool
	addrs  []netip.Addr
	nets   []netip.Prefix
}

// onLink says whether src can be a neighbour on this link (RFC 6762 §11):
// an IPv6 link-local address (routers never forward those), or an address
// inside one of the interface's prefixes. Anything else came through a
// router, from a host that has no business asking: a hub on a cloud
// machine must not tell the Internet its names, addresses and ports.
func (l link) onLink(src netip.Addr) bool {
	src = src.Unmap()
	if src.Is6() && src.IsLinkLocalUnicast() {
		return true
	}
	src = src.WithZone("")
	for _, p := range l.nets {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

// reuse lets several mDNS stacks share port 5353, as avahi-daemon does
// itself (SO_REUSEADDR and SO_REUSEPORT); multicast reaches every one.
func reuse(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		if serr == nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// multicastInterfaces is the default interface set: up, multicast-capable,
// not loopback, not point-to-point.
func multicastInterfaces() ([]net.Interface, error) {
	all, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	var out []net.Interface
	for _, ifi := range all {
		f := ifi.Flags
		if f&net.FlagUp != 0 && f&net.FlagMulticast != 0 && f&net.FlagLoopback == 0 && f&net.FlagPointToPoint == 0 {
			out = append(out, ifi)
		}
	}
	return out, nil
}

// ifaceNets returns an interface's unicast addresses with their prefix
// lengths (IPv6 link-local without zone: the record carries none).
func ifaceNets(ifi net.Interface) (v4, v6 []netip.Prefix) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, nil
	}
	for _, a := range addrs {
		p, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(p.IP)
		ones, _ := p.Mask.Size()
		if !ok || !usable(ip.Unmap()) {
			continue
		}
		if ip = ip.Unmap(); ip.Is4() {
			v4 = append(v4, netip.PrefixFrom(ip, ones))
		} else {
			v6 = append(v6, netip.PrefixFrom(ip, ones))
		}
	}
	return v4, v6
}

// listen opens the sockets on port: 5353, or 0 for a one-shot asker that
// gets its answers sent straight back and joins no group. refresh then
// chooses the interfaces.
func listen(fixed []net.Interface, port int) (*mconn, error) {
	m := &mconn{port: port, fixed: fixed, links: map[int]link{}, in: make(chan packet, 64)}
	lc := net.ListenConfig{Control: reuse}
	var errs []error
	if c, err := lc.ListenPacket(context.Background(), "udp4", net.JoinHostPort("0.0.0.0", strconv.Itoa(port))); err != nil {
		errs = append(errs, fmt.Errorf("udp4 port %d: %w", port, err))
	} else {
		m.p4 = ipv4.NewPacketConn(c)
		if err := m.p4.SetControlMessage(ipv4.FlagInterface, true); err != nil {
			c.Close()
			return nil, fmt.Errorf("mdns: udp4 control messages: %w", err)
		}
		m.p4.SetMulticastTTL(255) // RFC 6762 §11
		m.p4.SetMulticastLoopback(true)
	}
	if c, err := lc.ListenPacket(context.Background(), "udp6", net.JoinHostPort("::", strconv.Itoa(port))); err != nil {
		errs = append(errs, fmt.Errorf("udp6 port %d: %w", port, err))
	} else {
		m.p6 = ipv6.NewPacketConn(c)
		if err := m.p6.SetControlMessage(ipv6.FlagInterface, true); err != nil {
			c.Close()
			m.close()
			return nil, fmt.Errorf("mdns: udp6 control messages: %w", err)
		}
		m.p6.SetMulticastHopLimit(255)
		m.p6.SetMulticastLoopback(true)
	}
	if m.p4 == nil && m.p6 == nil {
		return nil, fmt.Errorf("mdns: %w", errors.Join(errs...))
	}
	if m.p4 != nil {
		m.wg.Add(1)
		go m.read4()
	}
	if m.p6 != nil {
		m.wg.Add(1)
		go m.read6()
	}
	return m, nil
}

// refresh joins the group on interfaces that now have an address of the
// family, forgets interfaces that went away, and returns the indexes of
// those that are new or whose addresses changed.
func (m *mconn) refresh() (changed []int, err error) {
	ifaces := m.fixed
	if ifaces == nil {
		if ifaces, err = multicastInterfaces(); err != nil {
			return nil, err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := map[int]bool{}
	for _, ifi := range ifaces {
		v4, v6 := ifaceNets(ifi)
		l, had := m.links[ifi.Index]
		l.ifi = ifi
		if len(v4) > 0 && !l.v4 && m.p4 != nil {
			l.v4 = m.port != mdnsPort || joined(m.p4.JoinGroup(&ifi, &net.UDPAddr{IP: group4.Addr().AsSlice()}))
		}
		if len(v6) > 0 && !l.v6 && m.p6 != nil {
			l.v6 = m.port != mdnsPort || joined(m.p6.JoinGroup(&ifi, &net.UDPAddr{IP: group6.Addr().AsSlice()}))
		}
		if !l.v4 && !l.v6 {
			continue
		}
		nets := append(v4, v6...)
		if !had || !slices.Equal(nets, l.nets) {
			changed = append(changed, ifi.Index)
		}
		l.nets, l.addrs = nets, nil
		for _, p := range nets {
			l.addrs = append(l.addrs, p.Addr())
		}
		m.links[ifi.Index] = l
		seen[ifi.Index] = true
	}
	for idx := range m.links {
		if !seen[idx] {
			delete(m.links, idx)
		}
	}
	return changed, nil
}

// joined takes a JoinGroup result: already a member (an interface that
// went down and up again) counts.
func joined(err error) bool {
	return err == nil || errors.Is(err, unix.EADDRINUSE)
}

// link returns the interface in use with this index.
func (m *mconn) link(idx int) (link, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	l, ok := m.links[idx]
	return l, ok
}

// indexes are the interfaces in use.
func (m *mconn) indexes() []int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []int
	for idx := range m.links {
		out = append(out, idx)
	}
	slices.Sort(out)
	return out
}

func (m *mconn) read4() {
	m.read(func(buf []byte) (int, int, net.Addr, error) {
		n, cm, src, err := m.p4.ReadFrom(buf)
		if cm == nil {
			return n, -1, src, err
		}
		return n, cm.IfIndex, src, err
	})
}

func (m *mconn) read6() {
	m.read(func(buf []byte) (int, int, net.Addr, error) {
		n, cm, src, err := m.p6.ReadFrom(buf)
		if cm == nil {
			return n, -1, src, err
		}
		return n, cm.IfIndex, src, err
	})
}

// read delivers what readFrom returns until the socket is closed; a packet
// without its interface (ifIndex -1: no control message) is dropped.
func (m *mconn) read(readFrom func([]byte) (n, ifIndex int, src net.Addr, err error)) {
	defer m.wg.Done()
	buf := make([]byte, maxPacket+1)
	for {
		n, ifIndex, src, err := readFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if ifIndex < 0 {
			continue
		}
		m.deliver(buf[:n], src, ifIndex)
	}
}

// deliver passes on packets that came in on a joined interface from a
// neighbour on that link; a full queue drops them (a flood must not block
// the reader).
func (m *mconn) deliver(b []byte, src net.Addr, ifIndex int) {
	ua, ok := src.(*net.UDPAddr)
	if !ok || len(b) > maxPacket {
		return
	}
	from := ua.AddrPort()
	if l, inUse := m.link(ifIndex); !inUse || !l.onLink(from.Addr()) {
		return
	}
	select {
	case m.in <- packet{data: append([]byte(nil), b...), src: from, ifIndex: ifIndex}:
	default:
	}
}

// send writes b to dst out of interface ifIndex.
func (m *mconn) send(b []byte, dst netip.AddrPort, ifIndex int) error {
	ua := net.UDPAddrFromAddrPort(dst)
	if dst.Addr().Unmap().Is4() {
		if m.p4 == nil {
			return errors.New("no IPv4 socket")
		}
		_, err := m.p4.WriteTo(b, &ipv4.ControlMessage{IfIndex: ifIndex}, ua)
		return err
	}
	if m.p6 == nil {
		return errors.New("no IPv6 socket")
	}
	_, err := m.p6.WriteTo(b, &ipv6.ControlMessage{IfIndex: ifIndex}, ua)
	return err
}

// multicast sends b to the group of each family on interface ifIndex.
func (m *mconn) multicast(b []byte, ifIndex int) error {
	var errs []error
	l, _ := m.link(ifIndex)
	if l.v4 {
		errs = append(errs, m.send(b, group4, ifIndex))
	}
	if l.v6 {
		errs = append(errs, m.send(b, group6, ifIndex))
	}
	return errors.Join(errs...)
}

func (m *mconn) close() {
	m.once.Do(func() {
		if m.p4 != nil {
			m.p4.Close()
		}
		if m.p6 != nil {
			m.p6.Close()
		}
		m.wg.Wait()
	})
}
