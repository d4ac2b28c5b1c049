package enrolment

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/pifleet/pifleet/internal/credentials"
	"github.com/pifleet/pifleet/internal/enrol"
	"github.com/pifleet/pifleet/internal/transport/pki"
)

// ServerName is a name every broker certificate of FleetPKI carries, and
// what enrolled Pis check (PIFLEET_AGENT_SERVER_NAME): the hub stays
// trusted whatever address or name the Pi reaches it by, and only the
// fleet's own CA can issue it.
const ServerName = "pifleet-hub"

const (
	caValidity   = 20 * 365 * 24 * time.Hour
	certValidity = 10 * 365 * 24 * time.Hour
)

// FleetPKI is the fleet CA, the broker's certificate and the hub's own
// broker login, made by the hub itself in its state directory (pki/) on
// its first start off loopback, so that "secure" needs no extra step. The
// CA key never leaves the directory (0600).
type FleetPKI struct {
	Dir               string // <state-dir>/pki
	CA                *pki.CA
	CAFile            string
	CertFile, KeyFile string // the broker's (and the enrolment listener's) certificate
	Credentials       string // credentials.json: the broker's logins
	HubPasswordFile   string // the hub's own login to its broker
	Pin               enrol.Pin
	certPEM, keyPEM   []byte
}

// EnsureFleetPKI loads the PKI in dir, creating what is missing: the CA,
// a broker certificate for hosts (plus ServerName, localhost and
// 127.0.0.1; re-issued when a host is not in the one on disk) and a
// credentials file with the hub's login (hubID, a random password in
// hub.password). It reports what it created, for the log.
func EnsureFleetPKI(dir, hubID string, hosts []string, now time.Time) (p *FleetPKI, created []string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("fleet PKI: %w", err)
	}
	p = &FleetPKI{Dir: dir, CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, "broker.pem"),
		KeyFile: filepath.Join(dir, "broker.key"), Credentials: filepath.Join(dir, "credentials.json"),
		HubPasswordFile: filepath.Join(dir, "hub.password")}
	if _, err := os.Stat(p.CAFile); errors.Is(err, os.ErrNotExist) {
		ca, key, err := pki.NewCA("pifleet fleet CA", now, caValidity)
		if err != nil {
			return nil, nil, err
		}
		if err := writeAtomic(filepath.Join(dir, "ca.key"), key, 0o600); err != nil {
			return nil, nil, err
		}
		if err := writeAtomic(p.CAFile, ca.CertPEM, 0o644); err != nil {
			return nil, nil, err
		}
		created = append(created, "fleet CA")
	}
	if p.CA, err = pki.LoadCA(p.CAFile, filepath.Join(dir, "ca.key")); err != nil {
		return nil, nil, err
	}
	p.Pin = enrol.PinOf(p.CA.Cert.Raw)
	hosts = append([]string{ServerName, "localhost", "127.0.0.1"}, hosts...)
	if !certCovers(p.CertFile, hosts) {
		cert, key, err := p.CA.Issue(pki.Server, "pifleet broker", dedupe(hosts), now, certValidity)
		if err != nil {
			return nil, nil, err
		}
		if err := writeAtomic(p.KeyFile, key, 0o600); err != nil {
			return nil, nil, err
		}
		if err := writeAtomic(p.CertFile, cert, 0o644); err != nil {
			return nil, nil, err
		}
		created = append(created, "broker certificate")
	}
	if p.certPEM, err = os.ReadFile(p.CertFile); err != nil {
		return nil, nil, err
	}
	if p.keyPEM, err = os.ReadFile(p.KeyFile); err != nil {
		return nil, nil, err
	}
	if made, err := p.ensureHubLogin(hubID); err != nil {
		return nil, nil, err
	} else if made {
		created = append(created, "credentials with the hub's login")
	}
	return p, created, nil
}

// ensureHubLogin makes the credentials file with the hub's own login
// when it has none.
func (p *FleetPKI) ensureHubLogin(hubID string) (bool, error) {
	creds := &credentials.File{Version: credentials.Version}
	if _, err := os.Stat(p.Credentials); err == nil {
		if creds, err = credentials.Load(p.Credentials); err != nil {
			return false, err
		}
		if _, err := os.Stat(p.HubPasswordFile); err == nil {
			if _, hub, ok := creds.Find(hubID); ok && hub {
				return false, nil
			}
		}
	}
	pw, err := credentials.NewPassword()
	if err != nil {
		return false, err
	}
	h, err := credentials.HashPassword(pw)
	if err != nil {
		return false, err
	}
	if err := writeAtomic(p.HubPasswordFile, []byte(pw+"\n"), 0o600); err != nil {
		return false, err
	}
	creds.Set(true, credentials.Entry{ID: hubID, PasswordHash: h})
	return true, creds.Write(p.Credentials)
}

// certCovers reports whether the certificate at path is one of ours that
// names every host.
func certCovers(path string, hosts []string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	c, err := pki.ParseCertPEM(b)
	if err != nil {
		return false
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
				return false
			}
		} else if !slices.Contains(c.DNSNames, h) {
			return false
		}
	}
	return true
}

func dedupe(hosts []string) []string {
	var out []string
	for _, h := range hosts {
		if h != "" && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out
}

// serverChain is the broker certificate followed by the CA: the chain
// the enrolment listener presents, so a Pi can find the CA it pinned.
func (p *FleetPKI) serverChain() ([]byte, []byte) {
	return append(append([]byte{}, p.certPEM...), p.CA.CertPEM...), p.keyPEM
}
