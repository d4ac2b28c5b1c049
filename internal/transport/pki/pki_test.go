package pki_test

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pifleet/pifleet/internal/transport/pki"
)

func TestIssueAndLoad(t *testing.T) {
	now := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	ca, key, err := pki.NewCA("test CA", now, 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cf, kf := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca.key")
	if err := os.WriteFile(cf, ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kf, key, 0o600); err != nil {
		t.Fatal(err)
	}
	loaded, err := pki.LoadCA(cf, kf)
	if err != nil {
		t.Fatalf("LoadCA: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for _, tc := range []struct {
		kind  pki.Kind
		cn    string
		hosts []string
		usage x509.ExtKeyUsage
		dns   string
	}{
		{pki.Server, "broker", []string{"hub.example", "127.0.0.1"}, x509.ExtKeyUsageServerAuth, "hub.example"},
		{pki.Client, "pi-1", nil, x509.ExtKeyUsageClientAuth, ""},
	} {
		certPEM, _, err := loaded.Issue(tc.kind, tc.cn, tc.hosts, now, 365*24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		c, err := pki.ParseCertPEM(certPEM)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: tc.dns, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{tc.usage}}); err != nil {
			t.Errorf("%s: does not verify: %v", tc.cn, err)
		}
		if c.NotAfter.After(ca.Cert.NotAfter) {
			t.Errorf("%s: outlives its CA (%v > %v)", tc.cn, c.NotAfter, ca.Cert.NotAfter)
		}
		if !c.NotBefore.Before(now) {
			t.Errorf("%s: NotBefore %v not backdated before %v", tc.cn, c.NotBefore, now)
		}
	}
	if _, _, err := loaded.Issue(pki.Server, "broker", nil, now, time.Hour); err == nil {
		t.Errorf("server certificate without hosts: want an error")
	}
	if _, err := pki.LoadCA(cf, filepath.Join(dir, "missing")); err == nil {
		t.Errorf("LoadCA with a missing key: want an error")
	}
}
