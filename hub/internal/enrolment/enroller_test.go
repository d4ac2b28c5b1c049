package enrolment

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pifleet/pifleet/internal/credentials"
	"github.com/pifleet/pifleet/internal/enrol"
	"github.com/pifleet/pifleet/internal/transport/pki"
)

// fakeHub records what the Enroller asks of the running hub.
type fakeHub struct {
	setErr error // SetCredentials fails with it (the broker not running yet)
	mu     sync.Mutex
	creds  *credentials.File
	kicked []string
	forgot []string
	view   map[string]bool
	// entered, when set, hears the next DisconnectDevice's id, which then
	// waits for release: a remove-pi caught half-way.
	entered chan string
	release chan struct{}
}

func (f *fakeHub) SetCredentials(c *credentials.File) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.setErr != nil {
		return f.setErr
	}
	f.creds = c
	return nil
}
func (f *fakeHub) DisconnectDevice(id string) (int, error) {
	f.mu.Lock()
	entered, release := f.entered, f.release
	f.entered = nil // only the first call waits
	f.mu.Unlock()
	if entered != nil {
		entered <- id
		<-release
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kicked = append(f.kicked, id)
	return 1, nil
}
func (f *fakeHub) ForgetDevice(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forgot = append(f.forgot, id)
	delete(f.view, id)
	return nil
}
func (f *fakeHub) HasDevice(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.view[id]
}

func newEnroller(t *testing.T) (*Enroller, *fakeHub, *clock) {
	t.Helper()
	c := &clock{time.Now()}
	dir := t.TempDir()
	p, created, err := EnsureFleetPKI(filepath.Join(dir, "pki"), "hub", []string{"192.0.2.1"}, c.t)
	if err != nil {
		t.Fatal(err)
	}
	if len(created) != 3 {
		t.Errorf("a first start made %q; want the CA, the broker certificate and the credentials", created)
	}
	tokens, err := OpenStore(filepath.Join(dir, "tokens.json"), c.now)
	if err != nil {
		t.Fatal(err)
	}
	h := &fakeHub{view: map[string]bool{}}
	return New(Config{PKI: p, Tokens: tokens, HubKey: "KEY", MQTTPort: 8883, JoinAddr: "192.0.2.1:8443", Hub: h, Now: c.now}), h, c
}

func join(e *Enroller, token, id string) (enrol.JoinAnswer, error) {
	return e.Join(enrol.JoinRequest{V: enrol.JoinVersion, Token: token, ID: id})
}

func TestAddRefuses(t *testing.T) {
	e, _, _ := newEnroller(t)
	for _, tc := range []struct {
		req  AddRequest
		want string
	}{
		{AddRequest{TTL: "forever"}, "--ttl"},
		{AddRequest{TTL: "-1h"}, "--ttl"},
		{AddRequest{TTL: "9999h"}, "--ttl"},
		{AddRequest{Uses: -1}, "--uses"},
		{AddRequest{ID: "a/b"}, "id"},
		{AddRequest{ID: "pi-1", Uses: 2}, "for one Pi"},
		{AddRequest{ID: "hub"}, "a hub's id"},
		{AddRequest{Labels: []string{"a b"}}, "label"},
		{AddRequest{Auth: "kerberos"}, "--auth"},
	} {
		if _, err := e.Add(tc.req); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Add(%+v): %v; want an error with %q", tc.req, err, tc.want)
		}
	}
}

func TestJoinAndRemove(t *testing.T) {
	e, h, _ := newEnroller(t)
	add, err := e.Add(AddRequest{Labels: []string{"lab"}, Uses: 2})
	if err != nil {
		t.Fatal(err)
	}
	if add.Command != "sudo pifleet-agent join 192.0.2.1:8443 "+add.Token {
		t.Errorf("command %q", add.Command)
	}
	ans, err := join(e, add.Token, "pi-host")
	if err != nil {
		t.Fatal(err)
	}
	if ans.ID != "pi-host" || ans.Password == "" || ans.MQTTPort != 8883 || ans.ServerName != ServerName ||
		ans.HubKey != "KEY" || strings.Join(ans.Labels, ",") != "lab" {
		t.Errorf("answer %+v", ans)
	}
	if _, _, err := h.creds.Login("pi-host", ans.Password, nil); err != nil {
		t.Errorf("the broker's new logins do not take the Pi's password: %v", err)
	}
	if ca, _ := pki.ParseCertPEM([]byte(ans.CAPEM)); ca == nil || enrol.PinOf(ca.Raw) != e.cfg.PKI.Pin {
		t.Errorf("the answer's CA is not the pinned one")
	}
	// The same host name again is refused, and the use is given back.
	if _, err := join(e, add.Token, "pi-host"); err == nil || !strings.Contains(err.Error(), "already has a Pi") {
		t.Errorf("a second pi-host: %v", err)
	}
	if p := e.Pending(); len(p) != 1 || p[0].UsesLeft != 1 {
		t.Errorf("pending after one join and one refused: %+v; want 1 use left", p)
	}
	if _, err := join(e, add.Token, "bad/id"); err == nil || !strings.Contains(err.Error(), "join --id") {
		t.Errorf("an invalid host name: %v", err)
	}

	// A certificate login for a fixed id.
	add, _ = e.Add(AddRequest{ID: "pi-cert", Auth: AuthCert})
	ans, err = join(e, add.Token, "ignored")
	if err != nil || ans.ID != "pi-cert" || ans.CertPEM == "" || ans.Password != "" {
		t.Fatalf("cert join: %+v, %v", ans, err)
	}
	cert, _ := pki.ParseCertPEM([]byte(ans.CertPEM))
	if _, _, err := h.creds.Login("", "", cert); err != nil {
		t.Errorf("the issued certificate does not log in: %v", err)
	}
	if e, _, _ := h.creds.Find("pi-cert"); e.CertSHA256 != credentials.CertSHA256(cert.Raw) || e.PasswordHash != "" {
		t.Errorf("pi-cert's entry %+v does not pin the issued certificate", e)
	}

	// Another fleet's token, another version.
	other, _ := enrol.NewToken(enrol.Pin{9})
	if _, err := join(e, other.String(), "x"); err == nil || !strings.Contains(err.Error(), "another fleet") {
		t.Errorf("another fleet's token: %v", err)
	}
	if _, err := e.Join(enrol.JoinRequest{V: 99, Token: add.Token}); err == nil || !strings.Contains(err.Error(), "version") {
		t.Errorf("version 99: %v", err)
	}

	// remove-pi: the login goes, the session is cut, the view forgets.
	h.view["pi-host"] = true
	if _, err := e.Remove(context.Background(), "pi-host"); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := h.creds.Find("pi-host"); ok || len(h.kicked) != 1 || h.kicked[0] != "pi-host" || len(h.forgot) != 1 {
		t.Errorf("after remove: creds has pi-host=%v, kicked %v, forgot %v", ok, h.kicked, h.forgot)
	}
	if _, err := e.Remove(context.Background(), "pi-host"); err == nil || !strings.Contains(err.Error(), "no Pi") {
		t.Errorf("removing it again: %v", err)
	}
	if _, err := e.Remove(context.Background(), "hub"); err == nil || !strings.Contains(err.Error(), "is a hub") {
		t.Errorf("removing the hub: %v", err)
	}
}

// Join attempts are limited per source address: the 11th in a minute is
// answered 429 without being looked at.
func TestJoinRateLimit(t *testing.T) {
	e, _, _ := newEnroller(t)
	srv := httptest.NewServer(http.HandlerFunc(e.serveJoin))
	defer srv.Close()
	bad, _ := json.Marshal(enrol.JoinRequest{V: enrol.JoinVersion, Token: "pft1_nope"})
	for i := 1; i <= 11; i++ {
		resp, err := http.Post(srv.URL, "application/json", bytes.NewReader(bad))
		if err != nil {
			t.Fatal(err)
		}
		var ea enrol.ErrorAnswer
		json.NewDecoder(resp.Body).Decode(&ea)
		resp.Body.Close()
		want := http.StatusBadRequest
		if i == 11 {
			want = http.StatusTooManyRequests
		}
		if resp.StatusCode != want || ea.Error == "" {
			t.Errorf("attempt %d: %d %q; want %d and a one-line reason", i, resp.StatusCode, ea.Error, want)
		}
	}
}

// A second start finds everything and makes nothing; a new address gets a
// new broker certificate under the same CA.
func TestEnsureFleetPKIKeeps(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	p1, _, err := EnsureFleetPKI(dir, "hub", []string{"192.0.2.1"}, now)
	if err != nil {
		t.Fatal(err)
	}
	p2, created, err := EnsureFleetPKI(dir, "hub", []string{"192.0.2.1"}, now)
	if err != nil || len(created) != 0 || p2.Pin != p1.Pin {
		t.Errorf("second start: made %q, %v, same pin %v", created, err, p2.Pin == p1.Pin)
	}
	p3, created, err := EnsureFleetPKI(dir, "hub", []string{"198.51.100.9"}, now)
	if err != nil || len(created) != 1 || created[0] != "broker certificate" || p3.Pin != p1.Pin {
		t.Errorf("new address: made %q, %v; want only a new broker certificate under the same CA", created, err)
	}
	if !certCovers(p3.CertFile, []string{"198.51.100.9", ServerName, "127.0.0.1"}) {
		t.Errorf("the new broker certificate does not name the new address")
	}
	if _, err := credentials.Load(p3.Credentials); err != nil {
		t.Error(err)
	}
}

// A join the broker cannot take yet changes nothing: the credentials file
// stays as it was and the token keeps its use, so the Pi can try again.
func TestJoinBeforeTheBrokerRuns(t *testing.T) {
	e, h, _ := newEnroller(t)
	add, err := e.Add(AddRequest{ID: "pi-early"})
	if err != nil {
		t.Fatal(err)
	}
	h.setErr = errors.New("no embedded nats engine is running")
	if _, err := join(e, add.Token, ""); err == nil {
		t.Fatal("joined while the broker was not running")
	}
	creds, err := credentials.Load(e.cfg.PKI.Credentials)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := creds.Find("pi-early"); ok {
		t.Errorf("the credentials file has pi-early although the broker never took it")
	}
	h.setErr = nil
	if ans, err := join(e, add.Token, ""); err != nil || ans.ID != "pi-early" {
		t.Errorf("the retry: %+v, %v", ans, err)
	}
}

// TestRejoinDuringRemove: a join of an id whose remove-pi is still
// closing its session and forgetting it is refused (409, the use given
// back) rather than admitted and then cut off by that remove; once the
// remove is done the same id joins.
func TestRejoinDuringRemove(t *testing.T) {
	e, h, _ := newEnroller(t)
	add, err := e.Add(AddRequest{ID: "pi-r"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := join(e, add.Token, ""); err != nil {
		t.Fatal(err)
	}
	h.view["pi-r"] = true
	entered, release := make(chan string, 1), make(chan struct{})
	h.entered, h.release = entered, release
	removed := make(chan error, 1)
	go func() { _, err := e.Remove(context.Background(), "pi-r"); removed <- err }()
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("remove-pi did not reach DisconnectDevice")
	}

	again, err := e.Add(AddRequest{ID: "pi-r"}) // its login is gone: a token for the id can be made
	if err != nil {
		t.Fatal(err)
	}
	_, err = join(e, again.Token, "")
	var je *joinError
	if !errors.As(err, &je) || je.status != 409 || !strings.Contains(err.Error(), "being removed") {
		t.Errorf("a join of pi-r during its remove: %v; want 409 \"being removed\"", err)
	}
	if _, err := e.Remove(context.Background(), "pi-r"); err == nil || !strings.Contains(err.Error(), "being removed") {
		t.Errorf("a second remove-pi pi-r during the first: %v", err)
	}
	close(release)
	if err := <-removed; err != nil {
		t.Fatalf("remove: %v", err)
	}
	if p := e.Pending(); len(p) != 1 || p[0].UsesLeft != 1 {
		t.Errorf("pending after the refused join: %+v; want its use given back", p)
	}
	if _, err := join(e, again.Token, ""); err != nil {
		t.Fatalf("a join after the remove finished: %v", err)
	}
	if _, _, ok := h.creds.Find("pi-r"); !ok || len(h.kicked) != 1 || len(h.forgot) != 1 {
		t.Errorf("after remove and re-join: login %v, kicked %v, forgot %v; want the new login and one cut", ok, h.kicked, h.forgot)
	}
}

// TestRevoke: pis revoke (DELETE /api/pis/pending/{token_id}) ends a
// pending token: it leaves the pending list, a join with it is refused as
// revoked, and revoking it (or an unknown one) again is a 404.
func TestRevoke(t *testing.T) {
	e, _, _ := newEnroller(t)
	add, err := e.Add(AddRequest{ID: "pi-lost", Labels: []string{"lab"}})
	if err != nil {
		t.Fatal(err)
	}
	keep, err := e.Add(AddRequest{})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for p, h := range e.APIRoutes() {
		mux.Handle(p, h)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	del := func(id string) (int, string) {
		req, _ := http.NewRequest("DELETE", srv.URL+"/api/pis/pending/"+id, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	code, body := del(add.TokenID)
	var got PendingToken
	if code != 200 || json.Unmarshal([]byte(body), &got) != nil || got.TokenID != add.TokenID || got.ID != "pi-lost" || got.UsesLeft != 1 {
		t.Fatalf("revoke: %d %s", code, body)
	}
	if strings.Contains(body, add.Token[len("pft1_"):]) {
		t.Errorf("the revoke answer holds the token's secret: %s", body)
	}
	if p := e.Pending(); len(p) != 1 || p[0].TokenID != keep.TokenID {
		t.Errorf("pending after revoke: %+v; want only the other token", p)
	}
	_, err = join(e, add.Token, "")
	var je *joinError
	if !errors.As(err, &je) || je.status != 403 || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("a join with the revoked token: %v; want 403 revoked", err)
	}
	for _, id := range []string{add.TokenID, "0123456789"} {
		if code, body := del(id); code != 404 || !strings.Contains(body, "no pending join token") {
			t.Errorf("revoke %s again: %d %s; want 404", id, code, body)
		}
	}
	// The store keeps the revocation across a restart of the hub.
	again, err := OpenStore(e.cfg.Tokens.path, e.cfg.Now)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := enrol.ParseToken(add.Token)
	if _, err := again.Take(tok); !errors.Is(err, ErrRevoked) {
		t.Errorf("after a restart the revoked token: %v", err)
	}
}

// TestJoinAgainAfterLostAnswer: a Pi whose answer was lost after the hub
// saved its login (a dropped connection, a hub that stopped) runs join
// again with the same single-use token and id within RetryWindow and gets
// a fresh login that replaces the first — also after a hub restart. Not
// once the Pi has shown up in the view, not after the window, not after
// remove-pi, and never for a batch token (two Pis with one host name).
func TestJoinAgainAfterLostAnswer(t *testing.T) {
	e, h, c := newEnroller(t)
	for _, auth := range []string{AuthPassword, AuthCert} {
		id := "pi-lost-" + auth
		add, err := e.Add(AddRequest{ID: id, Auth: auth})
		if err != nil {
			t.Fatal(err)
		}
		first, err := join(e, add.Token, "")
		if err != nil {
			t.Fatal(err)
		}
		c.t = c.t.Add(RetryWindow - time.Minute)
		// The hub restarts: the token store is read again from its file.
		tokens, err := OpenStore(e.cfg.Tokens.path, c.now)
		if err != nil {
			t.Fatal(err)
		}
		cfg := e.cfg
		cfg.Tokens = tokens
		e2 := New(cfg)
		again, err := join(e2, add.Token, "")
		if err != nil {
			t.Fatalf("%s: join again after a lost answer: %v", auth, err)
		}
		creds, err := credentials.Load(e.cfg.PKI.Credentials)
		if err != nil {
			t.Fatal(err)
		}
		if auth == AuthPassword {
			if again.Password == "" || again.Password == first.Password {
				t.Errorf("join again: password %q, first %q; want a fresh one", again.Password, first.Password)
			}
			if _, _, err := creds.Login(id, first.Password, nil); err == nil {
				t.Errorf("the first (lost) password still logs in")
			}
			if _, _, err := creds.Login(id, again.Password, nil); err != nil {
				t.Errorf("the new password does not log in: %v", err)
			}
		} else {
			c1, _ := pki.ParseCertPEM([]byte(first.CertPEM))
			c2, _ := pki.ParseCertPEM([]byte(again.CertPEM))
			if _, _, err := creds.Login("", "", c1); err == nil {
				t.Errorf("the first (lost) certificate still logs in")
			}
			if _, _, err := creds.Login("", "", c2); err != nil {
				t.Errorf("the new certificate does not log in: %v", err)
			}
		}
		if len(h.kicked) == 0 || h.kicked[len(h.kicked)-1] != id {
			t.Errorf("%s: no session of the first login was closed: %v", auth, h.kicked)
		}
		// Once the Pi is in the view, the first (or second) answer arrived.
		h.view[id] = true
		if _, err := join(e2, add.Token, ""); err == nil || !strings.Contains(err.Error(), "has connected since") {
			t.Errorf("%s: join again after the Pi connected: %v", auth, err)
		}
	}

	// After the window: used.
	add, _ := e.Add(AddRequest{ID: "pi-late"})
	if _, err := join(e, add.Token, ""); err != nil {
		t.Fatal(err)
	}
	c.t = c.t.Add(RetryWindow)
	if _, err := join(e, add.Token, ""); !errors.Is(err, ErrUsedUp) {
		t.Errorf("join again after RetryWindow: %v; want used", err)
	}

	// After remove-pi: the token does not bring the Pi back.
	add, _ = e.Add(AddRequest{ID: "pi-gone"})
	if _, err := join(e, add.Token, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Remove(context.Background(), "pi-gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := join(e, add.Token, ""); !errors.Is(err, ErrUsedUp) {
		t.Errorf("join again after remove-pi: %v; want used", err)
	}
	if _, _, ok := h.creds.Find("pi-gone"); ok {
		t.Error("the removed Pi has a login again")
	}

	// A batch token: the same host name again is another Pi, refused.
	add, _ = e.Add(AddRequest{Uses: 1})
	batch, _ := e.Add(AddRequest{Uses: 2})
	if _, err := join(e, batch.Token, "raspberrypi"); err != nil {
		t.Fatal(err)
	}
	if _, err := join(e, batch.Token, "raspberrypi"); err == nil || !strings.Contains(err.Error(), "already has a Pi") {
		t.Errorf("a batch token, the same host name again: %v; want refused", err)
	}
	// A single-use token for the host name: another id is not a retry.
	if _, err := join(e, add.Token, "pi-host-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := join(e, add.Token, "pi-host-b"); !errors.Is(err, ErrUsedUp) {
		t.Errorf("the token again with another id: %v; want used", err)
	}
	if _, err := join(e, add.Token, "pi-host-a"); err != nil {
		t.Errorf("the token again with its id: %v", err)
	}
}
