package broker

import (
	"crypto/tls"
	"fmt"

	"github.com/pifleet/pifleet/internal/transport"
)

// TLSFiles name the broker's certificate and key and, optionally, the CA
// that signs client certificates.
type TLSFiles struct {
	CertFile string // PEM server certificate (chain)
	KeyFile  string // PEM private key
	// ClientCAFile, when set, lets devices authenticate with a client
	// certificate signed by this CA (CN = device id). Clients without a
	// certificate may still log in with a password.
	ClientCAFile string
}

// ServerTLSConfig builds the listener's TLS configuration (TLS 1.2+).
// Pass it as broker.Options.TLS.
func ServerTLSConfig(f TLSFiles) (*tls.Config, error) {
	if f.CertFile == "" || f.KeyFile == "" {
		return nil, fmt.Errorf("broker TLS needs a certificate and a key file (got %q, %q)", f.CertFile, f.KeyFile)
	}
	pair, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("broker certificate %s / key %s: %w", f.CertFile, f.KeyFile, err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{pair},
	}
	if f.ClientCAFile != "" {
		pool, _, err := transport.LoadCertPool(f.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("broker client CA: %w", err)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}
