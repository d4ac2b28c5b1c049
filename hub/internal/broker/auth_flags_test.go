package broker_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/pifleet/pifleet/hub/internal/broker"
)

// TestSecurityFlagsBuild: flags that would let passwords cross the
// network in the clear, or a client CA without a TLS listener, are an
// error that names the flags; a loopback test may allow plaintext.
func TestSecurityFlagsBuild(t *testing.T) {
	f := newFleetPKI(t)
	creds := filepath.Join(f.dir, "credentials.json")
	if err := f.creds.Write(creds); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		sec  broker.SecurityFlags
		want string
	}{
		"credentials without TLS": {broker.SecurityFlags{Credentials: creds}, "--mqtt-credentials without TLS would send passwords in the clear"},
		"client CA without TLS":   {broker.SecurityFlags{ClientCA: f.ca}, "--mqtt-client-ca needs --mqtt-tls-cert and --mqtt-tls-key"},
		"missing credentials":     {broker.SecurityFlags{Credentials: creds + ".gone", TLSCert: f.serverCert, TLSKey: f.srvKey}, "no such file"},
	} {
		if _, err := c.sec.Build(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", name, err, c.want)
		}
	}
	o, err := (&broker.SecurityFlags{Credentials: creds, AllowPlaintext: true}).Build()
	if err != nil || o.Credentials == nil || !o.AllowPlaintext || o.TLS != nil {
		t.Errorf("--mqtt-allow-plaintext: %+v, %v; want plaintext logins", o, err)
	}
	o, err = (&broker.SecurityFlags{Credentials: creds, TLSCert: f.serverCert, TLSKey: f.srvKey, ClientCA: f.ca}).Build()
	if err != nil || o.Credentials == nil || o.AllowPlaintext || o.TLS == nil || o.TLS.ClientCAFile != f.ca {
		t.Errorf("TLS with a client CA: %+v, %v", o, err)
	}
}
