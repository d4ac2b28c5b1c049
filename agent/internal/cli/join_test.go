package cli

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
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

// enrolServer is an HTTPS enrolment listener on loopback with a server
// certificate from ca that answers every request with status and body.
func enrolServer(t *testing.T, ca *pki.CA, status int, body any) string {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue(pki.Server, "hub", []string{"127.0.0.1"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(append(certPEM, ca.CertPEM...), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(body)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// closedAddr is a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// --discover may find a fake first (the pin prefix it matches is public):
// join passes addresses that do not answer and hubs of another CA, and
// joins the real hub; a refusal from the real hub ends the search.
func TestAskFirstPassesFakes(t *testing.T) {
	now := time.Now()
	ca, _, _ := pki.NewCA("fleet", now, time.Hour)
	other, _, _ := pki.NewCA("fake", now, time.Hour)
	tok, err := enrol.NewToken(enrol.PinOf(ca.Cert.Raw))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	fake := enrolServer(t, other, http.StatusOK, enrol.JoinAnswer{ID: "pi-1", CAPEM: string(other.CertPEM), Password: "pw"})
	genuine := enrolServer(t, ca, http.StatusOK, enrol.JoinAnswer{ID: "pi-1", CAPEM: string(ca.CertPEM), Password: "pw"})
	refusing := enrolServer(t, ca, http.StatusForbidden, enrol.ErrorAnswer{Error: "token already used"})
	closed := closedAddr(t)

	hub, ans, err := askFirst(ctx, []string{closed, fake, genuine}, tok, "pi-1")
	if err != nil || hub != genuine || ans.ID != "pi-1" {
		t.Fatalf("unreachable, fake, real: got %q, %+v, %v; want the real hub %s", hub, ans, err, genuine)
	}
	_, _, err = askFirst(ctx, []string{fake, closed}, tok, "pi-1")
	if err == nil || !strings.Contains(err.Error(), "not from the fleet CA") || !strings.Contains(err.Error(), "cannot reach") {
		t.Errorf("fake, unreachable: got %v, want both failures", err)
	}
	hub, _, err = askFirst(ctx, []string{refusing, genuine}, tok, "pi-1")
	if err == nil || !strings.Contains(err.Error(), "token already used") || hub != "" {
		t.Errorf("refusing hub first: got %q, %v; want its refusal and no second try", hub, err)
	}
}
