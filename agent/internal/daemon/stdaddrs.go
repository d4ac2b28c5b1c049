package daemon

import (
	"context"
	"net"
	"sort"

	"github.com/pifleet/pifleet/internal/wire"
)

// StdlibAddrs lists addresses with the standard library and never
// notifies of changes (changes show at the heartbeat). It is the last-resort
// AddrSource; agent/internal/netwatch is the real one.
type StdlibAddrs struct{}

// Snapshot implements AddrSource.
func (StdlibAddrs) Snapshot() ([]wire.Interface, []wire.Address, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, nil, err
	}
	var outIf []wire.Interface
	var outAddr []wire.Address
	for _, i := range ifs {
		outIf = append(outIf, wire.Interface{Name: i.Name, MAC: i.HardwareAddr.String(), Up: i.Flags&net.FlagUp != 0, Loopback: i.Flags&net.FlagLoopback != 0})
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ones, _ := ipn.Mask.Size()
			fam := wire.IPv6
			if ipn.IP.To4() != nil {
				fam = wire.IPv4
			}
			outAddr = append(outAddr, wire.Address{Address: ipn.IP.String(), Prefix: ones, Family: fam, Interface: i.Name,
				LinkLocal: ipn.IP.IsLinkLocalUnicast(), Loopback: ipn.IP.IsLoopback()})
		}
	}
	sort.SliceStable(outAddr, func(a, b int) bool { return outAddr[a].Interface < outAddr[b].Interface })
	return outIf, outAddr, nil
}

// Watch implements AddrSource: it only waits for ctx.
func (StdlibAddrs) Watch(ctx context.Context, _ func()) error {
	<-ctx.Done()
	return ctx.Err()
}
