package discovery

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Service is what a hub advertises.
type Service struct {
	Instance  string // DNS-SD instance name: 1..63 bytes of printable UTF-8
	EnrolPort int    // HTTPS enrolment port (SRV and TXT enrol=)
	MQTTPort  int    // MQTT port (TXT mqtt=)
	CAPin     string // hex SHA-256 of the fleet CA certificate (at least 16 digits; TXT pin= carries 16)
	// Interfaces to advertise on; nil means every multicast-capable
	// interface that is up and not loopback, as of the call.
	Interfaces []net.Interface
}

// announcements are sent at start, one second apart (RFC 6762 §8.3).
var announceGaps = []time.Duration{0, time.Second, 2 * time.Second}

// Advertise answers mDNS questions for s on the network until ctx ends or
// stop is called; both send a goodbye (TTL 0) so browsers forget the hub
// at once. stop waits for that and is safe to call more than once.
func Advertise(ctx context.Context, s Service) (stop func() error, err error) {
	a, err := newAdvertiser(s)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.run(ctx)
	}()
	var once sync.Once
	return func() error {
		once.Do(func() {
			cancel()
			<-done
		})
		return nil
	}, nil
}

type advertiser struct {
	m     *mconn
	recs  recordSet
	limit answerLimit
}

// answerLimit keeps a flood of questions from becoming a flood of answers:
// one multicast answer to a question per interface per second (RFC 6762
// §6), and at most unicastPerSecond answers to one-shot askers, whose
// source address may be forged.
type answerLimit struct {
	last    map[string]time.Time
	second  time.Time
	unicast int
	now     func() time.Time
}

const unicastPerSecond = 20

func (l *answerLimit) allow(ifIndex int, q dns.Question, legacy bool) bool {
	now := time.Now()
	if l.now != nil {
		now = l.now()
	}
	if legacy {
		if now.Sub(l.second) >= time.Second {
			l.second, l.unicast = now, 0
		}
		l.unicast++
		return l.unicast <= unicastPerSecond
	}
	if l.last == nil {
		l.last = map[string]time.Time{}
	}
	key := fmt.Sprintf("%d %s %d", ifIndex, strings.ToLower(q.Name), q.Qtype)
	if t, ok := l.last[key]; ok && now.Sub(t) < time.Second {
		return false
	}
	if len(l.last) > 1024 { // names are the asker's: bound the memory
		clear(l.last)
	}
	l.last[key] = now
	return true
}

func newAdvertiser(s Service) (*advertiser, error) {
	if !validInstance(s.Instance) {
		return nil, fmt.Errorf("mdns instance name %q: want 1-%d bytes of printable UTF-8", s.Instance, maxInstanceLen)
	}
	if _, ok := port(fmt.Sprint(s.EnrolPort)); !ok {
		return nil, fmt.Errorf("mdns enrolment port %d: want 1-65535", s.EnrolPort)
	}
	if _, ok := port(fmt.Sprint(s.MQTTPort)); !ok {
		return nil, fmt.Errorf("mdns MQTT port %d: want 1-65535", s.MQTTPort)
	}
	pin, err := pinPrefix(s.CAPin)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	m, err := listen(s.Interfaces, mdnsPort)
	if err != nil {
		return nil, err
	}
	return &advertiser{m: m, recs: recordSet{
		instance: instanceFQDN(s.Instance),
		host:     hostLabel(host) + ".local.",
		enrol:    s.EnrolPort,
		txt:      txtFor(s.EnrolPort, s.MQTTPort, pin),
	}}, nil
}

func (a *advertiser) run(ctx context.Context) {
	defer a.m.close()
	a.m.refresh()
	tick := time.NewTimer(0)
	defer tick.Stop()
	rescan := time.NewTicker(refreshEvery)
	defer rescan.Stop()
	next := 0
	for {
		select {
		case <-ctx.Done():
			a.announce(a.m.indexes(), true)
			return
		case <-tick.C:
			a.announce(a.m.indexes(), false)
			if next++; next < len(announceGaps) {
				tick.Reset(announceGaps[next])
			}
		case <-rescan.C:
			if changed, err := a.m.refresh(); err == nil {
				a.announce(changed, false)
			}
		case p := <-a.m.in:
			a.answer(p)
		}
	}
}

// refreshEvery is how often the advertiser looks for interfaces and
// addresses that came or changed.
const refreshEvery = 5 * time.Second

// announce multicasts every record on the interfaces, or says goodbye.
func (a *advertiser) announce(idxs []int, goodbye bool) {
	for _, idx := range idxs {
		l, ok := a.m.link(idx)
		if !ok {
			continue
		}
		m := new(dns.Msg)
		m.Response, m.Authoritative = true, true
		m.Answer = a.recs.all(l.addrs, goodbye)
		if b, err := m.Pack(); err == nil {
			a.m.multicast(b, idx)
		}
	}
}

func addrsOf(ifi net.Interface) []netip.Addr {
	v4, v6 := ifaceAddrs(ifi)
	return append(v4, v6...)
}

// answer replies to a question about the service: by multicast on the
// interface it came in on, or straight back to a one-shot asker that
// did not send from port 5353 (RFC 6762 §6.7).
func (a *advertiser) answer(p packet) {
	var q dns.Msg
	if q.Unpack(p.data) != nil || q.Response || q.Opcode != dns.OpcodeQuery || len(q.Question) == 0 || len(q.Question) > maxRecords {
		return
	}
	l, _ := a.m.link(p.ifIndex)
	legacy := p.src.Port() != mdnsPort
	ans, extra := a.records(q.Question, addrsOf(l.ifi), legacy)
	ans = suppressKnown(ans, q.Answer)
	if len(ans) == 0 || !a.limit.allow(p.ifIndex, q.Question[0], legacy) {
		return
	}
	r := new(dns.Msg)
	r.Response, r.Authoritative = true, true
	r.Answer, r.Extra = ans, extra
	if legacy {
		r.Id, r.Question = q.Id, q.Question[:1]
	}
	b, err := r.Pack()
	if err != nil {
		return
	}
	if legacy {
		a.m.send(b, p.src, p.ifIndex)
		return
	}
	a.m.multicast(b, p.ifIndex)
}

// records returns the answers to the questions and the additional records
// a browser needs next (RFC 6763 §12).
func (a *advertiser) records(qs []dns.Question, ips []netip.Addr, legacy bool) (ans, extra []dns.RR) {
	h, o, unique := uint32(hostTTL), uint32(otherTTL), !legacy
	if legacy {
		h, o = legacyTTL, legacyTTL
	}
	r := a.recs
	wantSRV := false
	for _, q := range qs {
		t, anyT := q.Qtype, q.Qtype == dns.TypeANY
		switch {
		case equalName(q.Name, servicesMeta) && (t == dns.TypePTR || anyT):
			ans = append(ans, r.meta(o))
		case equalName(q.Name, serviceName) && (t == dns.TypePTR || anyT):
			ans = append(ans, r.ptr(o))
			extra = append(extra, r.srv(h, unique), r.txtRR(o, unique))
			wantSRV = true
		case equalName(q.Name, r.instance):
			if t == dns.TypeSRV || anyT {
				ans = append(ans, r.srv(h, unique))
				wantSRV = true
			}
			if t == dns.TypeTXT || anyT {
				ans = append(ans, r.txtRR(o, unique))
			}
		case equalName(q.Name, r.host) && (t == dns.TypeA || t == dns.TypeAAAA || anyT):
			for _, rr := range r.addrs(ips, h, unique) {
				if anyT || rr.Header().Rrtype == t {
					ans = append(ans, rr)
				}
			}
		}
	}
	if wantSRV {
		extra = append(extra, r.addrs(ips, h, unique)...)
	}
	return ans, extra
}

// suppressKnown drops answers the asker listed as known with at least half
// their TTL left (RFC 6762 §7.1).
func suppressKnown(ans, known []dns.RR) []dns.RR {
	if len(known) == 0 {
		return ans
	}
	out := ans[:0]
	for _, rr := range ans {
		if !isKnown(rr, known) {
			out = append(out, rr)
		}
	}
	return out
}

func isKnown(rr dns.RR, known []dns.RR) bool {
	for _, k := range known {
		if k.Header().Ttl >= rr.Header().Ttl/2 && dns.IsDuplicate(copyClass(k, rr), rr) {
			return true
		}
	}
	return false
}

// copyClass gives k rr's class so the cache-flush bit does not hide a
// duplicate.
func copyClass(k, rr dns.RR) dns.RR {
	k = dns.Copy(k)
	k.Header().Class = rr.Header().Class
	return k
}
