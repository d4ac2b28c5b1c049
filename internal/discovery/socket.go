package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// packet is one datagram received on a chosen interface.
type packet struct {
	data    []byte
	src     netip.AddrPort
	ifIndex int
}

// mconn is the mDNS socket pair (IPv4 and IPv6) joined to the group on
// a set of interfaces. Either family may be missing (a kernel without
// IPv6, an interface without IPv4), not both.
type mconn struct {
	p4     *ipv4.PacketConn
	p6     *ipv6.PacketConn
	ifaces map[int]net.Interface // joined, by index
	in     chan packet
	wg     sync.WaitGroup
	once   sync.Once
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

// ifaceAddrs returns an interface's unicast addresses (IPv6 link-local
// without zone: the record carries none).
func ifaceAddrs(ifi net.Interface) (v4, v6 []netip.Addr) {
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
		if !ok || !usable(ip.Unmap()) {
			continue
		}
		if ip = ip.Unmap(); ip.Is4() {
			v4 = append(v4, ip)
		} else {
			v6 = append(v6, ip)
		}
	}
	return v4, v6
}

// listen opens the sockets on port (5353, or 0 for a one-shot asker that
// gets unicast answers) and joins the group on each interface that has an
// address of the family.
func listen(ifaces []net.Interface, port int) (*mconn, error) {
	if len(ifaces) == 0 {
		return nil, errors.New("no multicast-capable network interface is up")
	}
	m := &mconn{ifaces: map[int]net.Interface{}, in: make(chan packet, 64)}
	lc := net.ListenConfig{Control: reuse}
	var errs []error
	if c, err := lc.ListenPacket(context.Background(), "udp4", net.JoinHostPort("0.0.0.0", strconv.Itoa(port))); err != nil {
		errs = append(errs, fmt.Errorf("udp4 port %d: %w", port, err))
	} else if err := m.join4(c, ifaces, port); err != nil {
		c.Close()
		errs = append(errs, err)
	}
	if c, err := lc.ListenPacket(context.Background(), "udp6", net.JoinHostPort("::", strconv.Itoa(port))); err != nil {
		errs = append(errs, fmt.Errorf("udp6 port %d: %w", port, err))
	} else if err := m.join6(c, ifaces, port); err != nil {
		c.Close()
		errs = append(errs, err)
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

func (m *mconn) join4(c net.PacketConn, ifaces []net.Interface, port int) error {
	p := ipv4.NewPacketConn(c)
	if err := p.SetControlMessage(ipv4.FlagInterface, true); err != nil {
		return fmt.Errorf("udp4 control messages: %w", err)
	}
	p.SetMulticastTTL(255) // RFC 6762 §11
	p.SetMulticastLoopback(true)
	joined := 0
	for _, ifi := range ifaces {
		if v4, _ := ifaceAddrs(ifi); len(v4) == 0 {
			continue
		}
		if port == mdnsPort {
			if err := p.JoinGroup(&ifi, &net.UDPAddr{IP: group4.Addr().AsSlice()}); err != nil {
				continue
			}
		}
		m.ifaces[ifi.Index] = ifi
		joined++
	}
	if joined == 0 {
		return errors.New("udp4: no interface with an IPv4 address joined 224.0.0.251")
	}
	m.p4 = p
	return nil
}

func (m *mconn) join6(c net.PacketConn, ifaces []net.Interface, port int) error {
	p := ipv6.NewPacketConn(c)
	if err := p.SetControlMessage(ipv6.FlagInterface, true); err != nil {
		return fmt.Errorf("udp6 control messages: %w", err)
	}
	p.SetMulticastHopLimit(255)
	p.SetMulticastLoopback(true)
	joined := 0
	for _, ifi := range ifaces {
		if _, v6 := ifaceAddrs(ifi); len(v6) == 0 {
			continue
		}
		if port == mdnsPort {
			if err := p.JoinGroup(&ifi, &net.UDPAddr{IP: group6.Addr().AsSlice()}); err != nil {
				continue
			}
		}
		m.ifaces[ifi.Index] = ifi
		joined++
	}
	if joined == 0 {
		return errors.New("udp6: no interface with an IPv6 address joined ff02::fb")
	}
	m.p6 = p
	return nil
}

func (m *mconn) read4() {
	defer m.wg.Done()
	buf := make([]byte, maxPacket+1)
	for {
		n, cm, src, err := m.p4.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if cm == nil {
			continue
		}
		m.deliver(buf[:n], src, cm.IfIndex)
	}
}

func (m *mconn) read6() {
	defer m.wg.Done()
	buf := make([]byte, maxPacket+1)
	for {
		n, cm, src, err := m.p6.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if cm == nil {
			continue
		}
		m.deliver(buf[:n], src, cm.IfIndex)
	}
}

// deliver passes on packets that came in on a joined interface; a full
// queue drops them (a flood must not block the reader).
func (m *mconn) deliver(b []byte, src net.Addr, ifIndex int) {
	ua, ok := src.(*net.UDPAddr)
	if _, joined := m.ifaces[ifIndex]; !ok || !joined || len(b) > maxPacket {
		return
	}
	select {
	case m.in <- packet{data: append([]byte(nil), b...), src: ua.AddrPort(), ifIndex: ifIndex}:
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
	ifi := m.ifaces[ifIndex]
	v4, v6 := ifaceAddrs(ifi)
	if m.p4 != nil && len(v4) > 0 {
		errs = append(errs, m.send(b, group4, ifIndex))
	}
	if m.p6 != nil && len(v6) > 0 {
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
