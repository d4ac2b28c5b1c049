package discovery

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// testAdvertiser answers for testRecords("hub") with a clock the test sets.
func testAdvertiser(now *time.Time) *advertiser {
	return &advertiser{recs: testRecords("hub"), limit: answerLimit{now: func() time.Time { return *now }}}
}

func question(name string, t uint16) dns.Question {
	return dns.Question{Name: name, Qtype: t, Qclass: dns.ClassINET}
}

func query(qs ...dns.Question) *dns.Msg {
	return &dns.Msg{Question: qs}
}

// A record is multicast on an interface at most once a second, whichever
// question asks for it: a random question put first does not make the
// same answer due again (the limit was once keyed on the first question).
func TestAnswerLimit(t *testing.T) {
	now := time.Unix(1000, 0)
	a := testAdvertiser(&now)
	ptr := question(serviceName, dns.TypePTR)
	if r, _ := a.reply(query(ptr), 2, testIPs, false); r == nil || len(r.Answer) != 1 {
		t.Fatalf("first question: got %v, want the PTR", r)
	}
	for i, q := range []*dns.Msg{
		query(ptr),
		query(question("x1.local.", dns.TypeA), ptr),
		query(question("x2.local.", dns.TypeTXT), question("x3.local.", dns.TypeA), ptr, ptr),
		query(question(strings.ToUpper(serviceName), dns.TypeANY)),
	} {
		if r, _ := a.reply(q, 2, testIPs, false); r != nil {
			t.Errorf("question %d within the second: answered %v, want nothing", i, r.Answer)
		}
	}
	if r, _ := a.reply(query(ptr), 3, testIPs, false); r == nil {
		t.Error("the same question on another interface was not answered")
	}
	r, _ := a.reply(query(ptr, question(a.recs.instance, dns.TypeSRV)), 2, testIPs, false)
	if r == nil || len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeSRV {
		t.Errorf("PTR and SRV within the second: got %v, want the SRV alone", r)
	}
	now = now.Add(time.Second)
	if r, _ := a.reply(query(question("x4.local.", dns.TypeA), ptr), 2, testIPs, false); r == nil || len(r.Answer) != 1 {
		t.Errorf("the PTR a second later: got %v, want it", r)
	}
	got := 0
	for range 3 * unicastPerSecond {
		if r, _ := a.reply(query(ptr), 2, testIPs, true); r != nil {
			got++
		}
	}
	if got != unicastPerSecond {
		t.Errorf("%d unicast answers in one second, want %d", got, unicastPerSecond)
	}
	now = now.Add(time.Second)
	if r, _ := a.reply(query(ptr), 2, testIPs, true); r == nil {
		t.Error("a unicast answer in the next second was refused")
	}
}

// Questions asked twice are answered once, and so are records two
// questions ask for.
func TestRepeatedQuestionsAnsweredOnce(t *testing.T) {
	now := time.Unix(1000, 0)
	a := testAdvertiser(&now)
	srv := question(a.recs.instance, dns.TypeSRV)
	q := query(srv, srv, question(strings.ToUpper(a.recs.instance), dns.TypeSRV), question(a.recs.instance, dns.TypeANY))
	r, _ := a.reply(q, 2, testIPs, false)
	if r == nil || len(r.Answer) != 2 {
		t.Fatalf("got %v, want SRV and TXT once each", r)
	}
}

// Known-answer suppression (RFC 6762 §7.1) still works, the cache-flush
// bit and the TTL aside.
func TestKnownAnswerSuppression(t *testing.T) {
	now := time.Unix(1000, 0)
	a := testAdvertiser(&now)
	known := a.recs.ptr(otherTTL)
	q := query(question(serviceName, dns.TypePTR), question(a.recs.instance, dns.TypeANY))
	q.Answer = []dns.RR{known, a.recs.txtRR(otherTTL, false)}
	r, _ := a.reply(q, 2, testIPs, false)
	if r == nil || len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeSRV {
		t.Fatalf("got %v, want only the SRV (PTR and TXT known)", r)
	}
	// Known with less than half the TTL left: answered again.
	now = now.Add(time.Second)
	q = query(question(serviceName, dns.TypePTR))
	q.Answer = []dns.RR{a.recs.ptr(otherTTL/2 - 1)}
	if r, _ := a.reply(q, 2, testIPs, false); r == nil {
		t.Fatal("PTR with a stale known answer: not answered")
	}
}

// worstQuery is the costliest 9 KB question packet for the advertiser:
// every question one it answers, then as many known answers as fit that
// look like its own (same name and type, another address), so that each
// needs a full comparison.
func worstQuery(t testing.TB, r recordSet) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.Question = []dns.Question{
		question("x.local.", dns.TypeA),
		question(serviceName, dns.TypePTR), question(servicesMeta, dns.TypePTR),
		question(r.instance, dns.TypeANY), question(r.host, dns.TypeANY),
	}
	for i := 0; ; i++ {
		m.Answer = append(m.Answer, &dns.A{Hdr: hdr(r.host, dns.TypeA, hostTTL, false), A: netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}).AsSlice()})
		m.Compress = true
		if m.Len() > maxPacket {
			m.Answer = m.Answer[:len(m.Answer)-1]
			break
		}
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The work a question can cause is bounded whatever the packet holds:
// parsing stops after maxQuestions questions and maxKnown known answers,
// and the known-answer comparison (the only work that grows with the
// packet) comes after the rate limit, so a repeat costs none.
func TestWorstCaseQueryWork(t *testing.T) {
	now := time.Unix(1000, 0)
	a := testAdvertiser(&now)
	pkt := worstQuery(t, a.recs)
	var full dns.Msg
	if err := full.Unpack(pkt); err != nil {
		t.Fatal(err)
	}
	q, ok := parseQuery(append([]byte(nil), pkt...))
	if !ok {
		t.Fatal("the worst-case question was not read")
	}
	if len(q.Answer) > maxKnown {
		t.Errorf("read %d known answers, want at most %d", len(q.Answer), maxKnown)
	}
	r, compared := a.reply(q, 2, testIPs, false)
	if r == nil {
		t.Fatal("the worst-case question was not answered")
	}
	t.Logf("%d-byte packet with %d questions and %d known answers: read %d of them, %d answers, %d comparisons",
		len(pkt), len(full.Question), len(full.Answer), len(q.Answer), len(r.Answer), compared)
	if limit := maxKnown * len(r.Answer); compared > limit {
		t.Errorf("%d comparisons, want at most %d known × %d answers = %d", compared, maxKnown, len(r.Answer), limit)
	}
	q, _ = parseQuery(append([]byte(nil), pkt...))
	if r, compared := a.reply(q, 2, testIPs, false); r != nil || compared != 0 {
		t.Errorf("repeat within the second: answer %v after %d comparisons, want none and none", r, compared)
	}

	// More questions than maxQuestions: the first ones count, and the
	// known answers, which cannot be found without reading the rest, not.
	m := new(dns.Msg)
	for range 2 * maxQuestions {
		m.Question = append(m.Question, question(serviceName, dns.TypePTR))
	}
	m.Answer = full.Answer[:4]
	b, _ := m.Pack()
	if q, ok := parseQuery(b); !ok || len(q.Question) != maxQuestions || len(q.Answer) != 0 {
		t.Errorf("%d questions: read %d questions and %d known answers, want %d and 0", 2*maxQuestions, len(q.Question), len(q.Answer), maxQuestions)
	}
}

func TestParseQueryRefuses(t *testing.T) {
	resp := new(dns.Msg)
	resp.SetQuestion(serviceName, dns.TypePTR)
	resp.Response = true
	notify := new(dns.Msg)
	notify.SetQuestion(serviceName, dns.TypePTR)
	notify.Opcode = dns.OpcodeNotify
	for name, m := range map[string]*dns.Msg{"response": resp, "notify": notify, "no question": new(dns.Msg)} {
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := parseQuery(b); ok {
			t.Errorf("%s: read as a question", name)
		}
	}
	for _, b := range [][]byte{nil, []byte("hello"), []byte("hello, world, this is not DNS")} {
		if _, ok := parseQuery(b); ok {
			t.Errorf("%q: read as a question", b)
		}
	}
}

// Only neighbours on the receiving link are heard (RFC 6762 §11).
func TestOnLink(t *testing.T) {
	l := link{nets: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("2001:db8::1/64")}}
	for src, want := range map[string]bool{
		"192.0.2.77":          true,
		"::ffff:192.0.2.77":   true,
		"192.0.2.1":           true,
		"198.51.100.2":        false,
		"192.0.3.1":           false,
		"2001:db8::5":         true,
		"2001:db8:1::5":       false,
		"fe80::1%vb":          true,
		"fe80::1":             true,
		"0.0.0.0":             false,
		"::ffff:198.51.100.2": false,
	} {
		if got := l.onLink(netip.MustParseAddr(src)); got != want {
			t.Errorf("onLink(%s) = %v, want %v", src, got, want)
		}
	}
	if (link{}).onLink(netip.MustParseAddr("192.0.2.77")) {
		t.Error("an interface without addresses took an IPv4 neighbour as on-link")
	}
}
