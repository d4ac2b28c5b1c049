package natsengine

import (
	"crypto/tls"
	"fmt"

	"github.com/pifleet/pifleet/internal/transport"
)

// TLSFiles name the MQTT listener's certificate and key and, optionally,
// the CA that signs client certificates (as broker.TLSFiles).
type TLSFiles struct {
	CertFile string // PEM server certificate (chain)
	KeyFile  string // PEM private key
	// ClientCAFile, when set, lets devices log in with a client
	// certificate signed by this CA (CN = id). Clients without a
	// certificate may still log in with a password.
	ClientCAFile string
}

// serverTLS builds the MQTT listener's TLS configuration (TLS 1.2+).
func serverTLS(f TLSFiles) (*tls.Config, error) {
	if f.CertFile == "" || f.KeyFile == "" {
		return nil, fmt.Errorf("MQTT TLS needs a certificate and a key file (got %q, %q)", f.CertFile, f.KeyFile)
	}
	pair, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("MQTT certificate %s / key %s: %w", f.CertFile, f.KeyFile, err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}
	if f.ClientCAFile != "" {
		pool, _, err := transport.LoadCertPool(f.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("MQTT client CA: %w", err)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

// pinnedClientTLS trusts exactly the certificate srv presents: the
// engine's own warm-up connection dials itself on loopback and has no CA
// to check the name against.
func pinnedClientTLS(srv *tls.Config) *tls.Config {
	own := srv.Certificates[0].Certificate[0]
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by the pin below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || string(cs.PeerCertificates[0].Raw) != string(own) {
				return fmt.Errorf("warm-up: the MQTT listener did not present the engine's own certificate")
			}
			return nil
		},
	}
}
