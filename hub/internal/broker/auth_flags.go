package broker

import (
	"errors"
	"flag"

	"github.com/pifleet/pifleet/hub/internal/natsengine"
	"github.com/pifleet/pifleet/internal/credentials"
	"github.com/pifleet/pifleet/internal/transport"
)

// SecurityFlags are the embedded engine's TLS and credentials settings as
// `pifleet hub` flags (and so PIFLEET_HUB_MQTT_TLS_CERT … in
// /etc/default/pifleet-hub).
type SecurityFlags struct {
	TLSCert, TLSKey string // broker certificate and key: the MQTT listener speaks TLS
	ClientCA        string // CA of device client certificates (optional)
	Credentials     string // credentials file: per-device auth and ACL
	AllowPlaintext  bool   // accept non-TLS clients even with credentials (loopback tests)
}

// Register adds the flags to fs.
func (s *SecurityFlags) Register(fs *flag.FlagSet) {
	fs.StringVar(&s.TLSCert, "mqtt-tls-cert", s.TLSCert, "PEM certificate of the embedded broker (enables TLS)")
	fs.StringVar(&s.TLSKey, "mqtt-tls-key", s.TLSKey, "PEM key of --mqtt-tls-cert")
	fs.StringVar(&s.ClientCA, "mqtt-client-ca", s.ClientCA, "CA whose client certificates (CN = device id) may log in")
	fs.StringVar(&s.Credentials, "mqtt-credentials", s.Credentials, "credentials file (scripts/provision): per-device logins and ACL; empty: anyone may connect (loopback only!)")
	fs.BoolVar(&s.AllowPlaintext, "mqtt-allow-plaintext", s.AllowPlaintext, "with --mqtt-credentials, also accept clients without TLS")
}

// Build turns the flags into the embedded engine's options: its TLS
// listener and the logins from the credentials file.
func (s *SecurityFlags) Build() (natsengine.Options, error) {
	var o natsengine.Options
	switch {
	case s.TLSCert != "" || s.TLSKey != "":
		o.TLS = &transport.ServerFiles{CertFile: s.TLSCert, KeyFile: s.TLSKey, ClientCAFile: s.ClientCA}
	case s.ClientCA != "":
		return o, errors.New("--mqtt-client-ca needs --mqtt-tls-cert and --mqtt-tls-key")
	}
	if s.Credentials != "" {
		if o.TLS == nil && !s.AllowPlaintext {
			return o, errors.New("--mqtt-credentials without TLS would send passwords in the clear: add --mqtt-tls-cert/--mqtt-tls-key (or --mqtt-allow-plaintext for a loopback test)")
		}
		c, err := credentials.Load(s.Credentials)
		if err != nil {
			return o, err
		}
		o.Credentials, o.AllowPlaintext = c, s.AllowPlaintext
	}
	return o, nil
}
