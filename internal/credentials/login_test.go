package credentials_test

import (
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/pifleet/pifleet/internal/credentials"
)

// TestLogin is the rule the embedded engine applies (its policy suite
// runs it against a real broker): a verified certificate's CN and SHA-256
// first, else username and password.
func TestLogin(t *testing.T) {
	h, err := credentials.HashPassword("pi-a-password")
	if err != nil {
		t.Fatal(err)
	}
	cert := func(cn string, serial byte) *x509.Certificate {
		return &x509.Certificate{Subject: pkix.Name{CommonName: cn}, Raw: []byte{0x30, serial, 'c', 'e', 'r', 't'}}
	}
	issued := cert("pi-d", 1)
	f := &credentials.File{Version: credentials.Version,
		Hubs: []credentials.Entry{{ID: "hub"}},
		Devices: []credentials.Entry{{ID: "pi-a", PasswordHash: h}, {ID: "pi-c"},
			{ID: "pi-d", CertSHA256: credentials.CertSHA256(issued.Raw)}}}
	for _, tc := range []struct {
		user, pw string
		cert     *x509.Certificate
		id       string
		hub      bool
		err      string
	}{
		{"pi-a", "pi-a-password", nil, "pi-a", false, ""},
		{"pi-a", "wrong", nil, "", false, "wrong password"},
		{"pi-zz", "pi-a-password", nil, "", false, "unknown username"},
		{"pi-c", "", nil, "", false, "must use its client certificate"},
		{"pi-d", "", nil, "", false, "must use its client certificate"},
		{"", "", cert("pi-c", 1), "pi-c", false, ""}, // legacy entry: any certificate with its CN
		{"pi-c", "", cert("pi-c", 2), "pi-c", false, ""},
		{"pi-a", "", cert("pi-c", 1), "", false, "does not match certificate CN"},
		{"", "", cert("pi-x", 1), "", false, "not in the credentials file"},
		{"", "", cert("hub", 1), "hub", true, ""},
		{"", "", issued, "pi-d", false, ""},
		{"pi-d", "", issued, "pi-d", false, ""},
		{"", "", cert("pi-d", 2), "", false, "not the one issued to it"},
		{"", "", cert("pi-a", 1), "", false, "logs in with its password, not a certificate"},
		{"pi-a", "pi-a-password", cert("pi-a", 1), "", false, "logs in with its password"},
	} {
		cn := ""
		if tc.cert != nil {
			cn = tc.cert.Subject.CommonName
		}
		id, hub, err := f.Login(tc.user, tc.pw, tc.cert)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Login(%q, %q, cert %q) = %q, %v; want an error with %q", tc.user, tc.pw, cn, id, err, tc.err)
			}
			continue
		}
		if err != nil || id != tc.id || hub != tc.hub {
			t.Errorf("Login(%q, %q, cert %q) = %q hub=%v %v; want %q hub=%v", tc.user, tc.pw, cn, id, hub, err, tc.id, tc.hub)
		}
	}
}

// TestCertEntry: the entry pins the SHA-256 of the certificate's DER.
func TestCertEntry(t *testing.T) {
	der := []byte{0x30, 0x03, 1, 2, 3}
	e, err := credentials.CertEntry("pi-d", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	sum := sha256.Sum256(der)
	if err != nil || e.ID != "pi-d" || e.PasswordHash != "" || e.CertSHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("CertEntry = %+v, %v", e, err)
	}
	if _, err := credentials.CertEntry("pi-d", []byte("not PEM")); err == nil {
		t.Error("CertEntry of no PEM: no error")
	}
}

func TestCredentialsValidate(t *testing.T) {
	for _, tc := range []struct{ json, want string }{
		{`{"version":1,"hubs":[{"id":"hub"}],"devices":[{"id":"hub"}]}`, "appears twice"},
		{`{"version":1,"devices":[{"id":"a/b"}]}`, "invalid id"},
		{`{"version":1,"devices":[{"id":"pi","password_hash":"plain"}]}`, "not a $7$"},
		{`{"version":2}`, "version 2"},
		{`{"version":1,"extra":1}`, "unknown field"},
		{`{"version":1,"devices":[{"id":"pi"}]}`, ""},
		{`{"version":1,"devices":[{"id":"pi","cert_sha256":"` + strings.Repeat("ab", 32) + `"}]}`, ""},
		{`{"version":1,"devices":[{"id":"pi","cert_sha256":"` + strings.Repeat("AB", 32) + `"}]}`, "64 lower-case hex"},
		{`{"version":1,"devices":[{"id":"pi","cert_sha256":"abcd"}]}`, "64 lower-case hex"},
	} {
		_, err := credentials.Parse([]byte(tc.json))
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: got %v, want %q", tc.json, err, tc.want)
		}
	}
}

func TestRemove(t *testing.T) {
	f := &credentials.File{Version: credentials.Version, Hubs: []credentials.Entry{{ID: "hub"}},
		Devices: []credentials.Entry{{ID: "pi-a"}, {ID: "pi-b"}, {ID: "pi-c"}}}
	if !f.Remove("pi-b") {
		t.Fatal("Remove(pi-b) = false")
	}
	if f.Remove("pi-b") || f.Remove("hub") {
		t.Error("Remove of a gone device or of the hub reported true")
	}
	if _, _, ok := f.Find("pi-b"); ok || len(f.Devices) != 2 || f.Devices[0].ID != "pi-a" || f.Devices[1].ID != "pi-c" {
		t.Errorf("after Remove(pi-b): %+v", f.Devices)
	}
	if _, _, ok := f.Find("hub"); !ok {
		t.Error("the hub's entry went")
	}
}
