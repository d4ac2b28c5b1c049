package discovery

import (
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// Bounds on what a browse keeps from the network: a hostile LAN can send
// anything, and a Pi must neither run out of memory nor print garbage.
const (
	maxPacket       = 9000 // RFC 6762 §17: the largest mDNS message
	maxRecords      = 128  // records per message
	maxInstances    = 64   // hubs per browse
	maxAddrsPerHost = 16
	maxTXTStrings   = 32
)

// browseCache collects what answers say about _pifleet._tcp instances,
// across packets, until Hubs assembles them. With a pin it keeps only
// instances of that fleet: a TXT with another pin drops the instance, and
// when the cache is full an instance whose TXT has not come yet makes room
// for a new one, so a flood of other hubs' (or made-up) instances cannot
// hide the one a Pi is looking for.
type browseCache struct {
	entries map[string]*entry // by lowercased instance full name
	addrs   map[string][]netip.Addr
	pin     string // PinPrefixLen lowercase hex digits, or "" for every hub
	seq     int    // order of the next new entry
}

type entry struct {
	instance    string
	target      string // SRV target, lowercased
	haveSRV     bool
	enrol, mqtt int
	pin         string
	haveTXT     bool
	src         netip.Addr // the answering packet's source: fallback address
	order       int
}

func newBrowseCache() *browseCache {
	return &browseCache{entries: map[string]*entry{}, addrs: map[string][]netip.Addr{}}
}

// add takes one received packet. src is its source address and zone the
// receiving interface's name (for link-local addresses).
func (c *browseCache) add(pkt []byte, src netip.Addr, zone string) {
	if len(pkt) > maxPacket {
		return
	}
	var m dns.Msg
	if m.Unpack(pkt) != nil || !m.Response || m.Opcode != dns.OpcodeQuery || m.Rcode != dns.RcodeSuccess {
		return
	}
	rrs := make([]dns.RR, 0, len(m.Answer)+len(m.Extra))
	rrs = append(append(append(rrs, m.Answer...), m.Ns...), m.Extra...)
	if len(rrs) > maxRecords {
		return
	}
	for _, rr := range rrs {
		if p, ok := rr.(*dns.PTR); ok && isIN(rr) && equalName(p.Hdr.Name, serviceName) {
			c.ptr(p, src)
		}
	}
	for _, rr := range rrs {
		c.record(rr)
	}
	for _, rr := range rrs {
		c.address(rr, zone)
	}
}

func isIN(rr dns.RR) bool { return rr.Header().Class&^(1<<15) == dns.ClassINET }

func (c *browseCache) ptr(p *dns.PTR, src netip.Addr) {
	inst, ok := instanceOf(p.Ptr)
	if !ok {
		return
	}
	key := strings.ToLower(dns.Fqdn(p.Ptr))
	if p.Hdr.Ttl == 0 { // goodbye
		c.drop(key)
		return
	}
	e := c.entries[key]
	if e == nil {
		if len(c.entries) >= maxInstances && !c.evictPending() {
			return
		}
		e = &entry{instance: inst, order: c.seq}
		c.seq++
		c.entries[key] = e
	}
	e.src = src.Unmap()
}

// evictPending makes room in a cache with a pin: it drops the oldest
// instance whose TXT has not come yet, and says whether there was one.
func (c *browseCache) evictPending() bool {
	if c.pin == "" {
		return false
	}
	oldest := ""
	for key, e := range c.entries {
		if !e.haveTXT && (oldest == "" || e.order < c.entries[oldest].order) {
			oldest = key
		}
	}
	if oldest == "" {
		return false
	}
	c.drop(oldest)
	return true
}

// drop forgets an instance, and its host's addresses when no other
// instance names that host.
func (c *browseCache) drop(key string) {
	e := c.entries[key]
	if e == nil {
		return
	}
	delete(c.entries, key)
	if e.haveSRV && !c.isTarget(e.target) {
		delete(c.addrs, e.target)
	}
}

// record takes the SRV and TXT of an instance already named by a PTR.
func (c *browseCache) record(rr dns.RR) {
	if !isIN(rr) {
		return
	}
	e := c.entries[strings.ToLower(dns.Fqdn(rr.Header().Name))]
	if e == nil {
		return
	}
	switch r := rr.(type) {
	case *dns.SRV:
		if r.Hdr.Ttl == 0 || r.Port == 0 || len(r.Target) > 255 {
			e.haveSRV = false
			return
		}
		old := e.target
		e.target, e.haveSRV = strings.ToLower(dns.Fqdn(r.Target)), true
		if old != "" && old != e.target && !c.isTarget(old) {
			delete(c.addrs, old)
		}
	case *dns.TXT:
		enrol, mqtt, pin, ok := parseTXT(r.Txt)
		if ok && c.pin != "" && pin != c.pin {
			c.drop(strings.ToLower(dns.Fqdn(r.Hdr.Name)))
			return
		}
		if r.Hdr.Ttl == 0 || !ok {
			e.haveTXT = false
			return
		}
		e.enrol, e.mqtt, e.pin, e.haveTXT = enrol, mqtt, pin, true
	}
}

// address takes A and AAAA records of a host some SRV names.
func (c *browseCache) address(rr dns.RR, zone string) {
	var ip netip.Addr
	switch r := rr.(type) {
	case *dns.A:
		ip, _ = netip.AddrFromSlice(r.A)
	case *dns.AAAA:
		ip, _ = netip.AddrFromSlice(r.AAAA)
	default:
		return
	}
	ip = ip.Unmap()
	if !isIN(rr) || !usable(ip) {
		return
	}
	host := strings.ToLower(dns.Fqdn(rr.Header().Name))
	if !c.isTarget(host) {
		return
	}
	if ip.Is6() && (ip.IsLinkLocalUnicast()) && zone != "" {
		ip = ip.WithZone(zone)
	}
	list := c.addrs[host]
	for i, have := range list {
		if have == ip {
			if rr.Header().Ttl == 0 {
				c.addrs[host] = append(list[:i:i], list[i+1:]...)
			}
			return
		}
	}
	if rr.Header().Ttl > 0 && len(list) < maxAddrsPerHost {
		c.addrs[host] = append(list, ip)
	}
}

func (c *browseCache) isTarget(host string) bool {
	for _, e := range c.entries {
		if e.haveSRV && e.target == host {
			return true
		}
	}
	return false
}

// usable says whether an address from the network can be a hub's: a
// loopback or multicast address in an answer would send a Pi elsewhere.
func usable(ip netip.Addr) bool {
	return ip.IsValid() && !ip.IsUnspecified() && !ip.IsLoopback() && !ip.IsMulticast()
}

// hubs assembles the complete instances, in the order first seen.
func (c *browseCache) hubs() []Hub {
	var out []Hub
	var order []int
	for _, e := range c.entries {
		if !e.haveSRV || !e.haveTXT {
			continue
		}
		addrs := append([]netip.Addr(nil), c.addrs[e.target]...)
		if len(addrs) == 0 && usable(e.src) {
			addrs = []netip.Addr{e.src}
		}
		if len(addrs) == 0 {
			continue
		}
		out = append(out, Hub{Instance: e.instance, Addrs: addrs, EnrolPort: e.enrol, MQTTPort: e.mqtt, CAPin: e.pin})
		order = append(order, e.order)
	}
	sort.Sort(byOrder{out, order})
	return out
}

type byOrder struct {
	h []Hub
	o []int
}

func (b byOrder) Len() int           { return len(b.h) }
func (b byOrder) Less(i, j int) bool { return b.o[i] < b.o[j] }
func (b byOrder) Swap(i, j int) {
	b.h[i], b.h[j] = b.h[j], b.h[i]
	b.o[i], b.o[j] = b.o[j], b.o[i]
}

// parseTXT reads a v=1 TXT record: enrol and mqtt ports in 1..65535 and a
// 16-hex-digit pin prefix. Keys are case-insensitive and the first of a
// repeated key counts (RFC 6763 §6.4); unknown keys are ignored so a later
// hub may add some.
func parseTXT(txt []string) (enrol, mqtt int, pin string, ok bool) {
	if len(txt) > maxTXTStrings {
		return 0, 0, "", false
	}
	kv := map[string]string{}
	for _, s := range txt {
		k, v, _ := strings.Cut(s, "=")
		k = strings.ToLower(k)
		if _, dup := kv[k]; !dup && k != "" {
			kv[k] = v
		}
	}
	if kv["v"] != txtVersion {
		return 0, 0, "", false
	}
	enrol, eok := port(kv["enrol"])
	mqtt, mok := port(kv["mqtt"])
	pin = strings.ToLower(kv["pin"])
	if !eok || !mok || len(pin) != PinPrefixLen || !isHex(pin) {
		return 0, 0, "", false
	}
	return enrol, mqtt, pin, true
}

// port parses 1..65535 written as plain decimal digits.
func port(s string) (int, bool) {
	if s == "" || len(s) > 5 {
		return 0, false
	}
	for _, c := range []byte(s) {
		if !isDigit(c) {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 1 && n <= 65535
}
