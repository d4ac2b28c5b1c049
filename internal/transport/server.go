package transport

import (
	"crypto/tls"
	"fmt"
	"net"
)

// ServerFiles name an MQTT listener's certificate and key and, optionally,
// the CA that signs client certificates: the TLS of the hub's embedded
// engine (nats-server).
type ServerFiles struct {
	CertFile string // PEM server certificate (chain)
	KeyFile  string // PEM private key
	// ClientCAFile, when set, lets devices log in with a client
	// certificate signed by this CA (CN = device id). Clients without a
	// certificate may still log in with a password.
	ClientCAFile string
}

// ServerTLS builds a listener's TLS configuration (TLS 1.2+).
func (f ServerFiles) ServerTLS() (*tls.Config, error) {
	if f.CertFile == "" || f.KeyFile == "" {
		return nil, fmt.Errorf("broker TLS needs a certificate and a key file (got %q, %q)", f.CertFile, f.KeyFile)
	}
	pair, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("broker certificate %s / key %s: %w", f.CertFile, f.KeyFile, err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}
	if f.ClientCAFile != "" {
		pool, _, err := LoadCertPool(f.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("broker client CA: %w", err)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

// IsLoopbackAddr reports whether a listen address (host:port) binds only
// loopback.
func IsLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && isLoopback(host)
}
