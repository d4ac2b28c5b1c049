package hubd

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pifleet/pifleet/hub/internal/broker"
	"github.com/pifleet/pifleet/hub/internal/natsengine"
)

// secureByDefault changes nothing on loopback (make run) or when the
// operator gave TLS and logins; off loopback, or asked to enrol, the hub
// makes its own PKI and turns TLS and logins on.
func TestSecureByDefault(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		name             string
		mqtt, enrol, ext string
		given, cluster   bool
		secured          bool
		listen, err      string
	}{
		{name: "loopback demo", mqtt: "127.0.0.1:1883"},
		{name: "loopback, enrolment off", mqtt: "127.0.0.1:1883", enrol: EnrolOff},
		{name: "off loopback", mqtt: "0.0.0.0:8883", secured: true, listen: "0.0.0.0:8443"},
		{name: "off loopback on one address", mqtt: "192.0.2.1:8883", secured: true, listen: "192.0.2.1:8443"},
		{name: "off loopback, enrolment off", mqtt: "0.0.0.0:8883", enrol: EnrolOff, secured: true},
		{name: "loopback, enrolment asked", mqtt: "127.0.0.1:1883", enrol: "127.0.0.1:9443", secured: true, listen: "127.0.0.1:9443"},
		{name: "given TLS and logins", mqtt: "0.0.0.0:8883", given: true},
		{name: "given, enrolment asked", mqtt: "0.0.0.0:8883", given: true, enrol: ":8443", err: "own fleet CA"},
		{name: "external broker", ext: "mqtts://broker.example:8883"},
		{name: "external broker, enrolment asked", ext: "mqtts://broker.example:8883", enrol: ":8443", err: "embedded broker"},
		{name: "cluster", mqtt: "0.0.0.0:8883", cluster: true},
		{name: "any port", mqtt: "0.0.0.0:0", err: "fixed port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := t.TempDir()
			cfg := Config{Enrol: EnrolConfig{Listen: tc.enrol}, Commands: CommandsConfig{StateDir: state}}
			cfg.Server.MQTTListen, cfg.Server.BrokerURL = tc.mqtt, tc.ext
			if tc.given {
				cfg.Security = broker.SecurityFlags{TLSCert: "/etc/pifleet/broker.pem", TLSKey: "k", Credentials: "/etc/pifleet/credentials.json"}
			}
			if tc.cluster {
				cfg.Cluster = &natsengine.Cluster{Name: "c"}
			}
			before := cfg.Security
			s, err := secureByDefault(&cfg, log)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.secured {
				if s != nil || cfg.Security != before || cfg.Server.ConfigureMQTT != nil {
					t.Errorf("changed the hub: %+v, %+v", s, cfg.Security)
				}
				if _, err := os.Stat(filepath.Join(state, "pki")); err == nil {
					t.Errorf("made a PKI")
				}
				return
			}
			if s == nil || s.listen != tc.listen {
				t.Fatalf("got %+v, want the enrolment listener on %q", s, tc.listen)
			}
			sec := cfg.Security
			if sec.TLSCert != s.pki.CertFile || sec.ClientCA != s.pki.CAFile || sec.Credentials != s.pki.Credentials || cfg.Server.ConfigureMQTT == nil {
				t.Errorf("TLS and logins not on: %+v", sec)
			}
			if _, err := sec.Build(); err != nil {
				t.Errorf("the engine would not take them: %v", err)
			}
		})
	}
}
