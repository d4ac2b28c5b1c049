package discovery

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

const testPin = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

var (
	testSrc = netip.MustParseAddr("192.0.2.1")
	testIPs = []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("fe80::1")}
)

func testRecords(instance string) recordSet {
	return recordSet{instance: instanceFQDN(instance), host: "pifleet-hubhost.local.", enrol: 8443, txt: txtFor(8443, 1883, testPin[:16])}
}

// answerTo is what the advertiser's records would answer to a PTR
// question, as received bytes.
func answerTo(t testing.TB, r recordSet, ips []netip.Addr) []byte {
	t.Helper()
	a := &advertiser{recs: r}
	ans, extra := a.records([]dns.Question{{Name: serviceName, Qtype: dns.TypePTR, Qclass: dns.ClassINET}}, ips, false)
	return pack(t, ans, extra)
}

func pack(t testing.TB, ans, extra []dns.RR) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.Response, m.Authoritative = true, true
	m.Answer, m.Extra = ans, extra
	b, err := m.Pack()
	if err != nil {
		t.Fatalf("pack: %v", err)
	}
	return b
}

func TestAnswerRoundTrip(t *testing.T) {
	for _, inst := range []string{"hub on pi-hub", "hub.one", `back\slash`, "hüb ☃"} {
		c := newBrowseCache()
		c.add(answerTo(t, testRecords(inst), testIPs), testSrc, "vb")
		got := c.hubs()
		want := []Hub{{Instance: inst, EnrolPort: 8443, MQTTPort: 1883, CAPin: testPin[:16], Addrs: []netip.Addr{
			netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("fe80::1%vb")}}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("instance %q: got %+v, want %+v", inst, got, want)
		}
	}
}

func TestAnnouncementAndGoodbye(t *testing.T) {
	r := testRecords("hub")
	c := newBrowseCache()
	c.add(pack(t, r.all(testIPs[:1], false), nil), testSrc, "vb")
	if got := c.hubs(); len(got) != 1 || got[0].Instance != "hub" {
		t.Fatalf("after announcement: got %+v, want the hub", got)
	}
	c.add(pack(t, r.all(testIPs[:1], true), nil), testSrc, "vb")
	if got := c.hubs(); len(got) != 0 {
		t.Fatalf("after goodbye: got %+v, want none", got)
	}
}

func TestHostileAnswersIgnored(t *testing.T) {
	r := testRecords("hub")
	base := func() (ptr, srv, txt dns.RR, a []dns.RR) {
		return r.ptr(otherTTL), r.srv(hostTTL, true), r.txtRR(otherTTL, true), r.addrs(testIPs[:1], hostTTL, true)
	}
	withTXT := func(txt ...string) []byte {
		p, s, _, a := base()
		return pack(t, []dns.RR{p, s, &dns.TXT{Hdr: hdr(r.instance, dns.TypeTXT, 10, false), Txt: txt}}, a)
	}
	cases := []struct {
		name string
		pkt  []byte
	}{
		{"no TXT version", withTXT("enrol=8443", "mqtt=1883", "pin="+testPin[:16])},
		{"TXT version 2", withTXT("v=2", "enrol=8443", "mqtt=1883", "pin="+testPin[:16])},
		{"port 0", withTXT("v=1", "enrol=0", "mqtt=1883", "pin="+testPin[:16])},
		{"port 65536", withTXT("v=1", "enrol=65536", "mqtt=1883", "pin="+testPin[:16])},
		{"signed port", withTXT("v=1", "enrol=+8443", "mqtt=1883", "pin="+testPin[:16])},
		{"negative port", withTXT("v=1", "enrol=8443", "mqtt=-1", "pin="+testPin[:16])},
		{"no mqtt", withTXT("v=1", "enrol=8443", "pin="+testPin[:16])},
		{"short pin", withTXT("v=1", "enrol=8443", "mqtt=1883", "pin="+testPin[:15])},
		{"long pin", withTXT("v=1", "enrol=8443", "mqtt=1883", "pin="+testPin[:17])},
		{"pin not hex", withTXT("v=1", "enrol=8443", "mqtt=1883", "pin=0123456789abcdeg")},
		{"too many TXT strings", withTXT(append([]string{"v=1", "enrol=8443", "mqtt=1883", "pin=" + testPin[:16]}, strings.Split(strings.Repeat("x ", 40), " ")...)...)},
		{"no SRV", func() []byte { p, _, x, a := base(); return pack(t, []dns.RR{p, x}, a) }()},
		{"no PTR", func() []byte { _, s, x, a := base(); return pack(t, []dns.RR{s, x}, a) }()},
		{"loopback address only", func() []byte {
			p, s, x, _ := base()
			return pack(t, []dns.RR{p, s, x}, r.addrs([]netip.Addr{netip.MustParseAddr("127.0.0.1")}, 10, false))
		}()},
		{"a question, not an answer", func() []byte {
			m := new(dns.Msg)
			m.SetQuestion(serviceName, dns.TypePTR)
			p, s, x, a := base()
			m.Answer, m.Extra = []dns.RR{p, s, x}, a
			b, _ := m.Pack()
			return b
		}()},
		{"instance with a control character", func() []byte {
			bad := testRecords("hub\x07")
			return answerTo(t, bad, testIPs[:1])
		}()},
		{"instance of another service", func() []byte {
			p, s, x, a := base()
			p.(*dns.PTR).Ptr = "hub._other._tcp.local."
			return pack(t, []dns.RR{p, s, x}, a)
		}()},
		{"too many records", func() []byte {
			p, s, x, _ := base()
			var a []dns.RR
			for i := range maxRecords {
				a = append(a, r.addrs([]netip.Addr{netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})}, 10, false)...)
			}
			return pack(t, []dns.RR{p, s, x}, a)
		}()},
		{"not DNS", []byte("hello, world")},
		{"empty", nil},
	}
	for _, tc := range cases {
		c := newBrowseCache()
		c.add(tc.pkt, netip.MustParseAddr("127.0.0.1"), "vb")
		if got := c.hubs(); len(got) != 0 {
			t.Errorf("%s: got %+v, want nothing", tc.name, got)
		}
	}
}

func TestTXTKeys(t *testing.T) {
	cases := []struct {
		txt         []string
		enrol, mqtt int
		pin         string
		ok          bool
	}{
		{txtFor(8443, 1883, testPin[:16]), 8443, 1883, testPin[:16], true},
		{[]string{"V=1", "ENROL=1", "Mqtt=65535", "PIN=0123456789ABCDEF", "later=key"}, 1, 65535, "0123456789abcdef", true},
		{[]string{"v=1", "enrol=8443", "enrol=9", "mqtt=1883", "pin=" + testPin[:16]}, 8443, 1883, testPin[:16], true},
		{[]string{"v=1", "enrol=8443", "mqtt=1883", "pin=" + testPin[:16], "=junk", "novalue"}, 8443, 1883, testPin[:16], true},
		{[]string{"v=1", "enrol=08443x", "mqtt=1883", "pin=" + testPin[:16]}, 0, 0, "", false},
		{[]string{"v=1", "enrol=", "mqtt=1883", "pin=" + testPin[:16]}, 0, 0, "", false},
	}
	for _, tc := range cases {
		enrol, mqtt, pin, ok := parseTXT(tc.txt)
		if enrol != tc.enrol || mqtt != tc.mqtt || pin != tc.pin || ok != tc.ok {
			t.Errorf("parseTXT(%q) = %d, %d, %q, %v; want %d, %d, %q, %v", tc.txt, enrol, mqtt, pin, ok, tc.enrol, tc.mqtt, tc.pin, tc.ok)
		}
	}
}

func TestSourceAddressWhenNoAddressRecords(t *testing.T) {
	r := testRecords("hub")
	c := newBrowseCache()
	c.add(pack(t, []dns.RR{r.ptr(10), r.srv(10, false), r.txtRR(10, false)}, nil), testSrc, "vb")
	got := c.hubs()
	if len(got) != 1 || !reflect.DeepEqual(got[0].Addrs, []netip.Addr{testSrc}) {
		t.Fatalf("got %+v, want the hub at the packet's source %v", got, testSrc)
	}
}

func TestInstanceCap(t *testing.T) {
	c := newBrowseCache()
	for i := range maxInstances + 10 {
		c.add(answerTo(t, testRecords("hub-"+strings.Repeat("x", i%50)+string(rune('a'+i%26))+string(rune('a'+i/26))), testIPs[:1]), testSrc, "vb")
	}
	if got := len(c.hubs()); got != maxInstances {
		t.Fatalf("got %d hubs, want the cap %d", got, maxInstances)
	}
}

func TestMatchesPin(t *testing.T) {
	h := Hub{CAPin: testPin[:16]}
	for _, tc := range []struct {
		pin  string
		want bool
	}{
		{testPin, true},
		{strings.ToUpper(testPin), true},
		{testPin[:16], true},
		{testPin[:15], false},
		{"f" + testPin[1:], false},
		{"", false},
	} {
		if got := h.MatchesPin(tc.pin); got != tc.want {
			t.Errorf("MatchesPin(%q) = %v, want %v", tc.pin, got, tc.want)
		}
	}
	if (Hub{}).MatchesPin(testPin) {
		t.Error("a hub without pin matched")
	}
}

func TestServiceChecked(t *testing.T) {
	ok := Service{Instance: "hub", EnrolPort: 8443, MQTTPort: 1883, CAPin: testPin}
	for _, tc := range []struct {
		name string
		edit func(*Service)
		want string
	}{
		{"empty instance", func(s *Service) { s.Instance = "" }, "instance name"},
		{"long instance", func(s *Service) { s.Instance = strings.Repeat("x", 64) }, "instance name"},
		{"enrol port", func(s *Service) { s.EnrolPort = 0 }, "enrolment port"},
		{"mqtt port", func(s *Service) { s.MQTTPort = 70000 }, "MQTT port"},
		{"pin short", func(s *Service) { s.CAPin = "abc" }, "CA pin"},
		{"pin not hex", func(s *Service) { s.CAPin = strings.Repeat("z", 64) }, "not hex"},
	} {
		s := ok
		tc.edit(&s)
		if _, err := newAdvertiser(s); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error about %q", tc.name, err, tc.want)
		}
	}
}

func TestHostLabel(t *testing.T) {
	for in, want := range map[string]string{
		"raspberrypi":           "pifleet-raspberrypi",
		"Hub.example.org":       "pifleet-hub",
		"my_hub":                "pifleet-my-hub",
		"":                      "pifleet",
		strings.Repeat("a", 80): "pifleet-" + strings.Repeat("a", 55),
	} {
		if got := hostLabel(in); got != want {
			t.Errorf("hostLabel(%q) = %q, want %q", in, got, want)
		}
	}
}

// With a pin, instances of other fleets are dropped as they come and
// instances still without a TXT make room, so neither a flood of other
// hubs nor of bare PTRs fills the cache before the Pi's hub answers; and
// the addresses of dropped instances are forgotten with them.
func TestPinCacheFlood(t *testing.T) {
	otherPin := strings.Repeat("fe", 8)
	floods := map[string]func(c *browseCache, i int){
		"other fleets' hubs": func(c *browseCache, i int) {
			r := testRecords(fmt.Sprintf("fake %d", i))
			r.host = fmt.Sprintf("fake-%d.local.", i)
			r.txt = txtFor(8443, 1883, otherPin)
			c.add(answerTo(t, r, []netip.Addr{netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})}), testSrc, "vb")
		},
		"bare PTRs": func(c *browseCache, i int) {
			c.add(pack(t, []dns.RR{testRecords(fmt.Sprintf("fake %d", i)).ptr(otherTTL)}, nil), testSrc, "vb")
		},
		"TXT after the addresses": func(c *browseCache, i int) {
			r := testRecords(fmt.Sprintf("fake %d", i))
			r.host = fmt.Sprintf("fake-%d.local.", i)
			r.txt = txtFor(8443, 1883, otherPin)
			c.add(pack(t, []dns.RR{r.ptr(otherTTL), r.srv(hostTTL, true)}, r.addrs(testIPs[:1], hostTTL, true)), testSrc, "vb")
			c.add(pack(t, []dns.RR{r.txtRR(otherTTL, true)}, nil), testSrc, "vb")
		},
	}
	for name, flood := range floods {
		c := newBrowseCache()
		c.pin = testPin[:16]
		for i := range 3 * maxInstances {
			flood(c, i)
		}
		c.add(answerTo(t, testRecords("real hub"), testIPs[:1]), testSrc, "vb")
		got := c.hubs()
		if len(got) != 1 || got[0].Instance != "real hub" {
			t.Errorf("%s: got %+v, want the real hub alone", name, got)
		}
		if len(c.entries) > maxInstances || len(c.addrs) > 1 {
			t.Errorf("%s: %d instances and %d hosts' addresses kept, want at most %d and 1", name, len(c.entries), len(c.addrs), maxInstances)
		}
	}
}
