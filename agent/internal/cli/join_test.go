package cli

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pifleet/pifleet/internal/discovery"
	"github.com/pifleet/pifleet/internal/enrol"
	"github.com/pifleet/pifleet/internal/transport/pki"
)

func TestHubAddr(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"hub.lan", "hub.lan:8443", ""},
		{"hub.lan:9443", "hub.lan:9443", ""},
		{"192.0.2.1", "192.0.2.1:8443", ""},
		{"2001:db8::1", "[2001:db8::1]:8443", ""},
		{"[2001:db8::1]:9443", "[2001:db8::1]:9443", ""},
		{"hub.lan:0", "", "want the hub as HOST:PORT"},
		{":8443", "", "want the hub as HOST:PORT"},
	} {
		got, err := hubAddr(tc.in)
		if got != tc.want || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("hubAddr(%q) = %q, %v; want %q, error %q", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// --discover tries IPv4 first, then global IPv6; link-local addresses are
// left out.
func TestHubCandidates(t *testing.T) {
	hubs := []discovery.Hub{{EnrolPort: 8443, Addrs: []netip.Addr{
		netip.MustParseAddr("fe80::1%eth0"), netip.MustParseAddr("2001:db8::5"), netip.MustParseAddr("192.0.2.1"),
		netip.MustParseAddr("::ffff:198.51.100.7")}}}
	got := hubCandidates(hubs)
	want := []string{"192.0.2.1:8443", "198.51.100.7:8443", "[2001:db8::5]:8443"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// The CA in the hub's answer must be the pinned one, and a client
// certificate must be from it.
func TestCheckAnswer(t *testing.T) {
	now := time.Now()
	ca, _, _ := pki.NewCA("fleet", now, time.Hour)
	other, _, _ := pki.NewCA("other", now, time.Hour)
	cert, key, _ := ca.Issue(pki.Client, "pi-1", nil, now, time.Hour)
	stranger, _, _ := other.Issue(pki.Client, "pi-1", nil, now, time.Hour)
	pin := enrol.PinOf(ca.Cert.Raw)
	good := enrol.JoinAnswer{ID: "pi-1", CAPEM: string(ca.CertPEM), Password: "pw"}
	for _, tc := range []struct {
		name string
		edit func(*enrol.JoinAnswer)
		err  string
	}{
		{"password login", func(*enrol.JoinAnswer) {}, ""},
		{"certificate login", func(a *enrol.JoinAnswer) { a.Password, a.CertPEM, a.KeyPEM = "", string(cert), string(key) }, ""},
		{"another CA", func(a *enrol.JoinAnswer) { a.CAPEM = string(other.CertPEM) }, "another CA than the token's"},
		{"no CA", func(a *enrol.JoinAnswer) { a.CAPEM = "" }, "no CA certificate"},
		{"bad id", func(a *enrol.JoinAnswer) { a.ID = "a/b" }, "gave this Pi the id"},
		{"no login", func(a *enrol.JoinAnswer) { a.Password = "" }, "no login"},
		{"a stranger's certificate", func(a *enrol.JoinAnswer) { a.Password, a.CertPEM = "", string(stranger) }, "not from its CA"},
	} {
		a := good
		tc.edit(&a)
		err := checkAnswer(a, pin)
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.err)
		}
	}
}
