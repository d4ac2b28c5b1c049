package transport

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Options are one side's connection settings. The zero value connects in
// plaintext to whatever broker the client options already name, which is
// what tests on loopback want.
type Options struct {
	// Broker is added to the client options when they name no broker yet.
	// Schemes: mqtt:// or tcp:// (plaintext), mqtts://, tls://, ssl://.
	// A missing port defaults to 1883 (plaintext) or 8883 (TLS).
	Broker string
	// CAFile holds the PEM CA certificate(s) that signed the broker's
	// certificate. Empty: the system roots.
	CAFile string
	// CertFile and KeyFile are this client's certificate (CN = its id) and
	// key, for brokers that authenticate by client certificate.
	CertFile, KeyFile string
	// Username and PasswordFile authenticate by password. The file holds
	// the password alone (a trailing newline is ignored) and is read on
	// every Apply, so a rotated password needs no restart.
	Username     string
	PasswordFile string
	// ServerName is the name expected in the broker's certificate when it
	// differs from the URL's host (e.g. connecting by IP address).
	ServerName string
	// InsecureSkipVerify turns certificate verification off. Never the
	// default; for a lab only.
	InsecureSkipVerify bool
	// AllowPlaintext permits mqtt:// to a host other than loopback.
	AllowPlaintext bool
	// Now is the clock used to explain certificate validity errors
	// (default time.Now).
	Now func() time.Time
}

// RegisterFlags registers the TLS and credential flags on fs (the broker
// URL is the caller's own flag). With the agent's and hub's environment
// mapping (PIFLEET_AGENT_<FLAG>, PIFLEET_HUB_<FLAG>) they can also come from
// /etc/default/pifleet-agent: PIFLEET_AGENT_CA_FILE and so on.
func (o *Options) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.CAFile, "ca-file", o.CAFile, "PEM CA certificate that signed the broker's certificate (default: system roots)")
	fs.StringVar(&o.CertFile, "cert-file", o.CertFile, "PEM client certificate (CN = this id) for certificate login")
	fs.StringVar(&o.KeyFile, "key-file", o.KeyFile, "PEM private key of --cert-file")
	fs.StringVar(&o.Username, "username", o.Username, "MQTT username (default with --password-file: the id)")
	fs.StringVar(&o.PasswordFile, "password-file", o.PasswordFile, "file holding the MQTT password (mode 0600 or 0640)")
	fs.StringVar(&o.ServerName, "server-name", o.ServerName, "name expected in the broker's certificate (default: the URL's host)")
	fs.BoolVar(&o.InsecureSkipVerify, "tls-insecure-skip-verify", o.InsecureSkipVerify, "do not verify the broker's certificate (lab only)")
	fs.BoolVar(&o.AllowPlaintext, "allow-plaintext", o.AllowPlaintext, "allow mqtt:// (no TLS) to a broker off this machine (lab only)")
}

func (o Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// IsTLSScheme reports whether a broker URL scheme means MQTT over TLS.
func IsTLSScheme(scheme string) bool {
	switch strings.ToLower(scheme) {
	case "mqtts", "ssl", "tls", "tcps", "mqtt+ssl", "wss":
		return true
	}
	return false
}

// ParseBroker parses a broker URL and fills in the default port.
func ParseBroker(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("broker URL %q: %w", raw, err)
	}
	if u.Host == "" || u.Hostname() == "" && u.Scheme != "unix" {
		return nil, fmt.Errorf("broker URL %q: no host (want mqtts://host:8883 or mqtt://host:1883)", raw)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("broker URL %q: port %q is not 1–65535", raw, p)
		}
	}
	switch strings.ToLower(u.Scheme) {
	case "mqtt", "tcp":
		if u.Port() == "" {
			u.Host = net.JoinHostPort(u.Hostname(), "1883")
		}
	case "mqtts", "ssl", "tls", "tcps", "mqtt+ssl":
		if u.Port() == "" {
			u.Host = net.JoinHostPort(u.Hostname(), "8883")
		}
	case "ws", "wss", "unix":
	default:
		return nil, fmt.Errorf("broker URL %q: scheme %q not supported (use mqtts:// for TLS, mqtt:// for plaintext)", raw, u.Scheme)
	}
	return u, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckBroker parses a broker URL (ParseBroker) and checks it against
// these settings: TLS files with a plaintext URL, or plaintext off this
// machine without AllowPlaintext, are errors. It reads no file, so a
// program can check its --broker at start and exit on a mistake that no
// retry would fix.
func (o Options) CheckBroker(raw string) (*url.URL, error) {
	u, err := ParseBroker(raw)
	if err != nil {
		return nil, err
	}
	if IsTLSScheme(u.Scheme) {
		return u, nil
	}
	if o.CAFile != "" || o.CertFile != "" {
		return nil, fmt.Errorf("broker %s is plaintext but TLS files are configured: use mqtts://%s", u.Redacted(), u.Host)
	}
	if u.Scheme != "unix" && !o.AllowPlaintext && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("broker %s: plaintext MQTT off this machine would send credentials and commands in the clear; use mqtts:// (or --allow-plaintext in a lab)", u.Redacted())
	}
	return u, nil
}

// Apply sets TLS and credentials on opts. It adds o.Broker when opts names
// no broker yet, fills in default ports, and fails — naming the file or
// setting to fix — when a file is missing or unreadable, when TLS material
// is given for a plaintext URL, or when a plaintext URL points off the
// machine without AllowPlaintext.
func (o Options) Apply(opts *mqtt.ClientOptions) error {
	if len(opts.Servers) == 0 {
		if o.Broker == "" {
			return errors.New("no broker URL (e.g. mqtts://hub.example:8883)")
		}
		u, err := ParseBroker(o.Broker)
		if err != nil {
			return err
		}
		opts.Servers = append(opts.Servers, u)
	}
	anyTLS := false
	for i, s := range opts.Servers {
		u, err := o.CheckBroker(s.String())
		if err != nil {
			return err
		}
		opts.Servers[i] = u
		anyTLS = anyTLS || IsTLSScheme(u.Scheme)
	}
	if anyTLS {
		cfg, err := o.TLSConfig()
		if err != nil {
			return err
		}
		opts.SetTLSConfig(cfg)
	}
	if o.PasswordFile != "" {
		pw, err := ReadPasswordFile(o.PasswordFile)
		if err != nil {
			return err
		}
		if o.Username == "" {
			return fmt.Errorf("password file %s given without a username (--username)", o.PasswordFile)
		}
		opts.SetUsername(o.Username)
		opts.SetPassword(pw)
	} else if o.Username != "" {
		opts.SetUsername(o.Username)
	}
	return nil
}

// ReadPasswordFile reads a password file: the password alone, one
// trailing newline allowed. The error never contains the password.
func ReadPasswordFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	pw := strings.TrimRight(string(b), "\r\n")
	if pw == "" {
		return "", fmt.Errorf("password file %s is empty", path)
	}
	if strings.ContainsAny(pw, "\r\n") {
		return "", fmt.Errorf("password file %s has more than one line", path)
	}
	return pw, nil
}

// TLSConfig builds the client TLS configuration: TLS 1.2 or newer, the CA
// file's roots (or the system's), the client certificate if given.
func (o Options) TLSConfig() (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         o.ServerName,
		InsecureSkipVerify: o.InsecureSkipVerify, //nolint:gosec // off by default; documented lab switch
	}
	now := o.now()
	if o.CAFile != "" {
		pool, certs, err := LoadCertPool(o.CAFile)
		if err != nil {
			return nil, err
		}
		for _, c := range certs {
			if err := CheckClock(now, c, "CA certificate "+o.CAFile); err != nil {
				return nil, err
			}
		}
		cfg.RootCAs = pool
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, fmt.Errorf("client certificate needs both --cert-file and --key-file (got %q, %q)", o.CertFile, o.KeyFile)
	}
	if o.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate %s / key %s: %w", o.CertFile, o.KeyFile, err)
		}
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			return nil, fmt.Errorf("client certificate %s: %w", o.CertFile, err)
		}
		if err := CheckClock(now, leaf, "client certificate "+o.CertFile); err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// LoadCertPool reads PEM certificates from path.
func LoadCertPool(path string) (*x509.CertPool, []*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("CA file: %w", err)
	}
	pool := x509.NewCertPool()
	var certs []*x509.Certificate
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("CA file %s: %w", path, err)
		}
		pool.AddCert(c)
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, nil, fmt.Errorf("CA file %s: no PEM certificate in it", path)
	}
	return pool, certs, nil
}

// IsNATSScheme reports whether a URL scheme names a NATS server: nats://
// (plaintext) or tls:// (NATS over TLS). tls:// alone also means MQTT
// over TLS to ParseBroker; a caller that takes both says which applies.
func IsNATSScheme(scheme string) bool {
	switch strings.ToLower(scheme) {
	case "nats", "tls":
		return true
	}
	return false
}

// CheckNATS parses a NATS server URL (nats:// or tls://, default port
// 4222) and checks it against these settings as CheckBroker does an MQTT
// one: TLS files with nats://, or nats:// off this machine without
// AllowPlaintext, are errors; tls:// is TLS.
func (o Options) CheckNATS(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("NATS URL %q: %w", raw, err)
	}
	if !IsNATSScheme(u.Scheme) {
		return nil, fmt.Errorf("NATS URL %q: scheme %q (want nats:// or tls://)", raw, u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("NATS URL %q: no host (want tls://host:4222)", raw)
	}
	if p := u.Port(); p == "" {
		u.Host = net.JoinHostPort(u.Hostname(), "4222")
	} else if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
		return nil, fmt.Errorf("NATS URL %q: port %q is not 1–65535", raw, p)
	}
	if strings.EqualFold(u.Scheme, "tls") {
		return u, nil
	}
	if o.CAFile != "" || o.CertFile != "" {
		return nil, fmt.Errorf("NATS server %s is plaintext but TLS files are configured: use tls://%s", u.Redacted(), u.Host)
	}
	if !o.AllowPlaintext && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("NATS server %s: plaintext off this machine would send credentials and the fleet in the clear; use tls:// (or --allow-plaintext in a lab)", u.Redacted())
	}
	return u, nil
}

// Redacted is broker or server URLs as they may be logged: comma-joined,
// with any password in them (mqtt://user:secret@host) replaced by "xxxxx".
// What does not parse as a URL is written as it is.
func Redacted(urls ...string) string {
	out := make([]string, len(urls))
	for i, raw := range urls {
		out[i] = raw
		if u, err := url.Parse(strings.TrimSpace(raw)); err == nil {
			out[i] = u.Redacted()
		}
	}
	return strings.Join(out, ",")
}
