package discovery

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
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
// each of our records is multicast on an interface at most once a second
// (RFC 6762 §6), whichever question asked for it, and at most
// unicastPerSecond answers go to one-shot askers, whose source address
// may be forged. The keys are our own records, never the asker's names.
type answerLimit struct {
	last    map[sentKey]time.Time
	second  time.Time
	unicast int
	now     func() time.Time
}

// sentKey is one of our records on one interface.
type sentKey struct {
	ifIndex int
	rr      string // owner name, type and (for addresses) the address
}

const unicastPerSecond = 20

func (l *answerLimit) clock() time.Time {
	if l.now != nil {
		return l.now()
	}
	return time.Now()
}

// allowUnicast counts one answer to a one-shot asker.
func (l *answerLimit) allowUnicast() bool {
	now := l.clock()
	if now.Sub(l.second) >= time.Second {
		l.second, l.unicast = now, 0
	}
	l.unicast++
	return l.unicast <= unicastPerSecond
}

// due drops the records multicast on the interface less than a second ago.
func (l *answerLimit) due(ifIndex int, ans []dns.RR) []dns.RR {
	now := l.clock()
	out := ans[:0]
	for _, rr := range ans {
		if t, ok := l.last[sentKey{ifIndex, recordKey(rr)}]; !ok || now.Sub(t) >= time.Second {
			out = append(out, rr)
		}
	}
	return out
}

// sent notes that the records were multicast on the interface now.
func (l *answerLimit) sent(ifIndex int, ans []dns.RR) {
	if l.last == nil || len(l.last) > 1024 { // addresses come and go: bound the memory
		l.last = map[sentKey]time.Time{}
	}
	now := l.clock()
	for _, rr := range ans {
		l.last[sentKey{ifIndex, recordKey(rr)}] = now
	}
}

// recordKey names one of our records: its owner and type, and the
// address of an address record (a host has several).
func recordKey(rr dns.RR) string {
	h := rr.Header()
	k := strings.ToLower(h.Name) + " " + dns.TypeToString[h.Rrtype]
	switch r := rr.(type) {
	case *dns.A:
		k += " " + r.A.String()
	case *dns.AAAA:
		k += " " + r.AAAA.String()
	}
	return k
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

// Bounds on what a question may make the advertiser do: questions looked
// at (after the first maxQuestions the known answers cannot be found, so
// they are ignored too) and known answers compared (RFC 6762 §7.1 lets an
// asker spread them over several packets; past the first maxKnown a
// record may be answered that the asker knew, which costs one packet).
const (
	maxQuestions = 16
	maxKnown     = 32
)

// parseQuery reads a question packet, if b is one, looking at no more
// than maxQuestions questions and maxKnown known answers however many the
// packet holds: the header is checked and its counts capped before
// anything else is parsed. b is the caller's and is changed.
func parseQuery(b []byte) (*dns.Msg, bool) {
	if len(b) < 12 || b[2]&0x80 != 0 || (b[2]>>3)&0xf != dns.OpcodeQuery {
		return nil, false // a response, or not DNS
	}
	qd, an := binary.BigEndian.Uint16(b[4:]), binary.BigEndian.Uint16(b[6:])
	if qd == 0 {
		return nil, false
	}
	if qd > maxQuestions {
		qd, an = maxQuestions, 0
	}
	binary.BigEndian.PutUint16(b[4:], qd)
	binary.BigEndian.PutUint16(b[6:], min(an, maxKnown))
	binary.BigEndian.PutUint32(b[8:], 0) // authority and additional: not ours to read
	q := new(dns.Msg)
	if q.Unpack(b) != nil || len(q.Question) == 0 {
		return nil, false
	}
	return q, true
}

// answer replies to a question about the service: by multicast on the
// interface it came in on, or straight back to a one-shot asker that
// did not send from port 5353 (RFC 6762 §6.7).
func (a *advertiser) answer(p packet) {
	q, ok := parseQuery(p.data)
	if !ok {
		return
	}
	l, _ := a.m.link(p.ifIndex)
	legacy := p.src.Port() != mdnsPort
	r, _ := a.reply(q, p.ifIndex, l.addrs, legacy)
	if r == nil {
		return
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

// reply is the answer to q on interface ifIndex with addresses ips, or nil
// when there is none to send. The rate limit comes before the known-answer
// comparison, the only work that grows with the packet; compared counts
// that work.
func (a *advertiser) reply(q *dns.Msg, ifIndex int, ips []netip.Addr, legacy bool) (r *dns.Msg, compared int) {
	qs := uniqueQuestions(q.Question)
	ans, extra := a.records(qs, ips, legacy)
	ans = uniqueRecords(ans)
	if legacy && (len(ans) == 0 || !a.limit.allowUnicast()) {
		return nil, 0
	}
	if !legacy {
		ans = a.limit.due(ifIndex, ans)
	}
	if len(ans) == 0 {
		return nil, 0
	}
	ans, compared = suppressKnown(ans, q.Answer)
	if len(ans) == 0 {
		return nil, compared
	}
	if !legacy {
		a.limit.sent(ifIndex, ans)
	}
	r = new(dns.Msg)
	r.Response, r.Authoritative = true, true
	r.Answer, r.Extra = ans, extra
	if legacy {
		r.Id, r.Question = q.Id, qs[:1]
	}
	return r, compared
}

// uniqueQuestions drops repeated questions (name, type and class, the
// unicast-response bit aside).
func uniqueQuestions(qs []dns.Question) []dns.Question {
	out := make([]dns.Question, 0, len(qs))
	for _, q := range qs {
		if !slices.ContainsFunc(out, func(o dns.Question) bool {
			return o.Qtype == q.Qtype && o.Qclass&^(1<<15) == q.Qclass&^(1<<15) && equalName(o.Name, q.Name)
		}) {
			out = append(out, q)
		}
	}
	return out
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

// uniqueRecords drops records asked for twice (ANY and SRV of the
// instance, A and ANY of the host).
func uniqueRecords(rrs []dns.RR) []dns.RR {
	out := rrs[:0]
	for _, rr := range rrs {
		if !slices.ContainsFunc(out, func(o dns.RR) bool { return dns.IsDuplicate(o, rr) }) {
			out = append(out, rr)
		}
	}
	return out
}

// suppressKnown drops answers the asker listed as known with at least half
// their TTL left (RFC 6762 §7.1). compared counts the record comparisons,
// each a few field checks without copying.
func suppressKnown(ans, known []dns.RR) (out []dns.RR, compared int) {
	if len(known) == 0 {
		return ans, 0
	}
	out = ans[:0]
	for _, rr := range ans {
		dup := false
		for _, k := range known {
			compared++
			if k.Header().Ttl >= rr.Header().Ttl/2 && sameRecord(k, rr) {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, rr)
		}
	}
	return out, compared
}

// sameRecord says whether the asker's record k is our rr, TTL and the
// cache-flush bit aside. k is the asker's, parsed for this question only:
// its class is set to rr's so that dns.IsDuplicate compares the rest.
func sameRecord(k, rr dns.RR) bool {
	kh, h := k.Header(), rr.Header()
	if kh.Rrtype != h.Rrtype || kh.Class&^(1<<15) != h.Class&^(1<<15) {
		return false
	}
	kh.Class = h.Class
	return dns.IsDuplicate(k, rr)
}
