package broker

import (
	"crypto/tls"
	"errors"
	"flag"
	"log/slog"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/pifleet/pifleet/internal/credentials"
	"github.com/pifleet/pifleet/internal/transport"
)

// SecurityFlags are the embedded broker's TLS and credentials settings as
// `pifleet hub` flags (and so PIFLEET_HUB_MQTT_TLS_CERT … in
// /etc/default/pifleet-hub).
type SecurityFlags struct {
	TLSCert, TLSKey string // broker certificate and key: the listener speaks TLS
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

// Build returns the listener TLS config (nil: plaintext) and the hooks for
// broker.Options. hook is the auth hook (nil without credentials), for
// SetCredentials on SIGHUP and its Refused counter.
func (s *SecurityFlags) Build(log *slog.Logger) (cfg *tls.Config, hooks []mqtt.Hook, hook *AuthHook, err error) {
	if s.TLSCert != "" || s.TLSKey != "" {
		cfg, err = transport.ServerFiles{CertFile: s.TLSCert, KeyFile: s.TLSKey, ClientCAFile: s.ClientCA}.ServerTLS()
		if err != nil {
			return nil, nil, nil, err
		}
	} else if s.ClientCA != "" {
		return nil, nil, nil, errors.New("--mqtt-client-ca needs --mqtt-tls-cert and --mqtt-tls-key")
	}
	if s.Credentials == "" {
		return cfg, nil, nil, nil
	}
	creds, err := credentials.Load(s.Credentials)
	if err != nil {
		return nil, nil, nil, err
	}
	if cfg == nil && !s.AllowPlaintext {
		return nil, nil, nil, errors.New("--mqtt-credentials without TLS would send passwords in the clear: add --mqtt-tls-cert/--mqtt-tls-key (or --mqtt-allow-plaintext for a loopback test)")
	}
	hook, err = NewAuthHook(AuthOptions{Credentials: creds, RequireTLS: !s.AllowPlaintext, Logger: log})
	if err != nil {
		return nil, nil, nil, err
	}
	return cfg, []mqtt.Hook{hook}, hook, nil
}
