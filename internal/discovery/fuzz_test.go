package discovery

import (
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// FuzzBrowse feeds arbitrary packets to the browser: it must not panic,
// and whatever it accepts must be a well-formed hub.
func FuzzBrowse(f *testing.F) {
	r := testRecords("hub on pi")
	f.Add(answerTo(f, r, testIPs))
	f.Add(pack(f, r.all(testIPs, false), nil))
	f.Add(pack(f, r.all(testIPs, true), nil))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		c := newBrowseCache()
		c.add(pkt, netip.MustParseAddr("192.0.2.9"), "vb")
		c.add(pkt, netip.MustParseAddr("fe80::9"), "vb")
		for _, h := range c.hubs() {
			if !validInstance(h.Instance) {
				t.Errorf("accepted instance %q", h.Instance)
			}
			if h.EnrolPort < 1 || h.EnrolPort > 65535 || h.MQTTPort < 1 || h.MQTTPort > 65535 {
				t.Errorf("accepted ports %d, %d", h.EnrolPort, h.MQTTPort)
			}
			if len(h.CAPin) != PinPrefixLen || !isHex(h.CAPin) {
				t.Errorf("accepted pin %q", h.CAPin)
			}
			if len(h.Addrs) == 0 || len(h.Addrs) > maxAddrsPerHost {
				t.Errorf("accepted %d addresses", len(h.Addrs))
			}
			for _, a := range h.Addrs {
				if !usable(a) {
					t.Errorf("accepted address %v", a)
				}
			}
		}
	})
}

// FuzzQuestion feeds arbitrary packets to the advertiser's question path:
// it must not panic, and however big the packet, what it reads and the
// known-answer comparisons it makes stay within the caps.
func FuzzQuestion(f *testing.F) {
	now := time.Unix(1000, 0)
	q := new(dns.Msg)
	q.SetQuestion(serviceName, dns.TypePTR)
	b, _ := q.Pack()
	f.Add(b)
	f.Add(worstQuery(f, testRecords("hub")))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		a := testAdvertiser(&now)
		q, ok := parseQuery(pkt)
		if !ok {
			return
		}
		if len(q.Question) > maxQuestions || len(q.Answer) > maxKnown {
			t.Fatalf("read %d questions and %d known answers", len(q.Question), len(q.Answer))
		}
		maxAnswers := 4 + len(testIPs) // meta PTR, PTR, SRV, TXT, an address record each
		for _, legacy := range []bool{false, true} {
			r, compared := a.reply(q, 2, testIPs, legacy)
			if compared > maxKnown*maxAnswers {
				t.Errorf("%d comparisons, want at most %d", compared, maxKnown*maxAnswers)
			}
			if r == nil {
				continue
			}
			if len(r.Answer) > maxAnswers {
				t.Errorf("%d answers, want at most %d", len(r.Answer), maxAnswers)
			}
			if _, err := r.Pack(); err != nil {
				t.Errorf("answer does not pack: %v", err)
			}
		}
	})
}
