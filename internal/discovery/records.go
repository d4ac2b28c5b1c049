package discovery

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/miekg/dns"
)

const (
	serviceName  = "_pifleet._tcp.local."
	servicesMeta = "_services._dns-sd._udp.local."
	mdnsPort     = 5353

	// PinPrefixLen is how many hex digits of the CA pin the TXT record carries.
	PinPrefixLen = 16
	txtVersion   = "1"

	// RFC 6762 §10: 120 s for records naming a host, 75 min for the rest.
	hostTTL  = 120
	otherTTL = 4500
	// legacyTTL caps answers to one-shot (non-5353) askers, RFC 6762 §6.7.
	legacyTTL = 10

	maxInstanceLen = 63 // one DNS label
)

var (
	group4 = netip.MustParseAddrPort("224.0.0.251:5353")
	group6 = netip.MustParseAddrPort("[ff02::fb]:5353")
)

// Hub is one hub found on the network.
type Hub struct {
	Instance  string       // the DNS-SD instance name, e.g. "hub on pi-hub"
	Addrs     []netip.Addr // its addresses on the link it answered on (IPv6 link-local with zone)
	EnrolPort int          // HTTPS enrolment port (SRV and TXT enrol=)
	MQTTPort  int          // MQTT port (TXT mqtt=)
	CAPin     string       // first 16 lowercase hex digits of the fleet CA's SHA-256 pin
}

// MatchesPin reports whether the hub's pin prefix is the start of pin, the
// hex SHA-256 of the fleet CA certificate's DER (any case). It only picks
// among answers: the enrolment's TLS check against the full pin is the
// trust decision.
func (h Hub) MatchesPin(pin string) bool {
	return len(h.CAPin) == PinPrefixLen && len(pin) >= PinPrefixLen &&
		strings.EqualFold(pin[:PinPrefixLen], h.CAPin)
}

// pinPrefix returns the TXT pin of a hex pin, or an error when pin is not
// at least 16 hex digits.
func pinPrefix(pin string) (string, error) {
	if len(pin) < PinPrefixLen {
		return "", fmt.Errorf("CA pin %q: want at least %d hex digits", pin, PinPrefixLen)
	}
	p := strings.ToLower(pin[:PinPrefixLen])
	if !isHex(p) {
		return "", fmt.Errorf("CA pin %q: not hex", pin)
	}
	return p, nil
}

func isHex(s string) bool {
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// validInstance says whether s can be an instance label: 1..63 bytes of
// printable UTF-8 (RFC 6763 §4.1.1 allows any, a Pi's log should not).
func validInstance(s string) bool {
	if s == "" || len(s) > maxInstanceLen || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// instanceFQDN is the service instance's full name, with dots and
// backslashes in the instance escaped so it stays one label.
func instanceFQDN(instance string) string {
	esc := strings.NewReplacer(`\`, `\\`, `.`, `\.`).Replace(instance)
	return esc + "." + serviceName
}

// instanceOf returns the instance label of a full service instance name,
// unescaped, and whether name is a valid _pifleet._tcp instance.
func instanceOf(name string) (string, bool) {
	labels := dns.SplitDomainName(name)
	if len(labels) != 4 || !equalName(dns.Fqdn(strings.Join(labels[1:], ".")), serviceName) {
		return "", false
	}
	inst, ok := unescapeLabel(labels[0])
	if !ok || !validInstance(inst) {
		return "", false
	}
	return inst, true
}

// unescapeLabel turns miekg/dns's presentation form (\. \\ \DDD) back
// into the label's bytes.
func unescapeLabel(l string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(l); i++ {
		c := l[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		if i+3 < len(l) && isDigit(l[i+1]) && isDigit(l[i+2]) && isDigit(l[i+3]) {
			n, _ := strconv.Atoi(l[i+1 : i+4])
			if n > 255 {
				return "", false
			}
			b.WriteByte(byte(n))
			i += 3
			continue
		}
		if i+1 >= len(l) {
			return "", false
		}
		b.WriteByte(l[i+1])
		i++
	}
	return b.String(), true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// hostLabel makes a DNS host label from the machine's host name. The
// advertiser uses its own host name (pifleet-NAME.local) rather than
// NAME.local, which avahi-daemon owns: answering for avahi's name with a
// different address set would look like a conflict to it.
func hostLabel(hostname string) string {
	hostname, _, _ = strings.Cut(hostname, ".")
	var b strings.Builder
	b.WriteString("pifleet-")
	for _, r := range strings.ToLower(hostname) {
		if b.Len() >= maxInstanceLen {
			break
		}
		if 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return strings.TrimRight(b.String(), "-")
}

// txtFor is the TXT record's strings for a service.
func txtFor(enrol, mqtt int, pin string) []string {
	return []string{
		"v=" + txtVersion,
		"enrol=" + strconv.Itoa(enrol),
		"mqtt=" + strconv.Itoa(mqtt),
		"pin=" + pin,
	}
}

// record set of one advertised service on one interface.
type recordSet struct {
	instance string // full name
	host     string // full host name
	enrol    int
	txt      []string
}

func hdr(name string, t uint16, ttl uint32, unique bool) dns.RR_Header {
	class := uint16(dns.ClassINET)
	if unique {
		class |= 1 << 15 // cache-flush: these records are ours alone
	}
	return dns.RR_Header{Name: name, Rrtype: t, Class: class, Ttl: ttl}
}

func (r recordSet) ptr(ttl uint32) dns.RR {
	return &dns.PTR{Hdr: hdr(serviceName, dns.TypePTR, ttl, false), Ptr: r.instance}
}

func (r recordSet) meta(ttl uint32) dns.RR {
	return &dns.PTR{Hdr: hdr(servicesMeta, dns.TypePTR, ttl, false), Ptr: serviceName}
}

func (r recordSet) srv(ttl uint32, unique bool) dns.RR {
	return &dns.SRV{Hdr: hdr(r.instance, dns.TypeSRV, ttl, unique), Port: uint16(r.enrol), Target: r.host}
}

func (r recordSet) txtRR(ttl uint32, unique bool) dns.RR {
	return &dns.TXT{Hdr: hdr(r.instance, dns.TypeTXT, ttl, unique), Txt: r.txt}
}

// addrs are the A and AAAA records of the host for one interface's addresses.
func (r recordSet) addrs(ips []netip.Addr, ttl uint32, unique bool) []dns.RR {
	var out []dns.RR
	for _, ip := range ips {
		if ip.Is4() {
			out = append(out, &dns.A{Hdr: hdr(r.host, dns.TypeA, ttl, unique), A: ip.AsSlice()})
		} else {
			out = append(out, &dns.AAAA{Hdr: hdr(r.host, dns.TypeAAAA, ttl, unique), AAAA: ip.WithZone("").AsSlice()})
		}
	}
	return out
}

// all is every record, as an announcement (ttl>0) or a goodbye (ttl 0).
func (r recordSet) all(ips []netip.Addr, goodbye bool) []dns.RR {
	h, o := uint32(hostTTL), uint32(otherTTL)
	if goodbye {
		h, o = 0, 0
	}
	rrs := []dns.RR{r.ptr(o), r.srv(h, true), r.txtRR(o, true)}
	rrs = append(rrs, r.addrs(ips, h, true)...)
	if !goodbye {
		rrs = append(rrs, r.meta(o))
	}
	return rrs
}

// equalName compares domain names as DNS does: ASCII case-insensitively,
// trailing dot optional.
func equalName(a, b string) bool {
	return strings.EqualFold(dns.Fqdn(a), dns.Fqdn(b))
}
