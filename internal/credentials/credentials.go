package credentials

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pifleet/pifleet/internal/wire"
)

// Version is the version of the credentials file format.
const Version = 1

// File is the hub's credentials file (/etc/pifleet/credentials.json,
// written by scripts/provision): who may connect to the broker. A device
// or hub logs in with its id as username and a password whose "$7$" hash
// is stored here, or with a client certificate signed by the fleet CA
// whose CN is its id and, when the entry names one (cert_sha256), whose
// SHA-256 is the one issued for it: a removed Pi's certificate stays
// out even when its id is enrolled again. An entry without a password
// hash can only use a certificate; an entry with a password hash and no
// certificate hash cannot use one. An entry with neither (scripts/provision
// before cert_sha256 existed) is a legacy certificate login: any
// certificate of the fleet CA with its CN logs in as it, until the Pi is
// provisioned again (--rotate). Ids are unique across hubs and devices.
// No secret is in the file: hashes only.
type File struct {
	Version int     `json:"version"`
	Hubs    []Entry `json:"hubs"`
	Devices []Entry `json:"devices"`
}

// Entry is one identity in the credentials file.
type Entry struct {
	ID           string `json:"id"`
	PasswordHash string `json:"password_hash,omitempty"`
	// CertSHA256 is the SHA-256 of the DER of the one client certificate
	// this identity may log in with (lower-case hex).
	CertSHA256 string `json:"cert_sha256,omitempty"`
}

// CertEntry is the entry of a Pi that logs in with the client
// certificate certPEM (enrolment and scripts/provision both make it so).
func CertEntry(id string, certPEM []byte) (Entry, error) {
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return Entry{}, fmt.Errorf("certificate of %q: no PEM CERTIFICATE block", id)
	}
	return Entry{ID: id, CertSHA256: CertSHA256(b.Bytes)}, nil
}

// CertSHA256 is a certificate's fingerprint as the credentials file
// keeps it: SHA-256 of its DER, lower-case hex.
func CertSHA256(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// Load reads and validates a credentials file.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("credentials %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes and validates credentials JSON.
func Parse(b []byte) (*File, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c File
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if c.Version != Version {
		return nil, fmt.Errorf("version %d: this build reads version %d", c.Version, Version)
	}
	return &c, c.Validate()
}

// Validate checks ids and hashes and that no id appears twice.
func (c *File) Validate() error {
	seen := map[string]bool{}
	for _, list := range [][]Entry{c.Hubs, c.Devices} {
		for _, e := range list {
			if err := wire.ValidateID(e.ID); err != nil {
				return err
			}
			if seen[e.ID] {
				return fmt.Errorf("id %q appears twice (hub and device ids share one namespace)", e.ID)
			}
			seen[e.ID] = true
			if e.PasswordHash != "" {
				if _, err := CheckPassword(e.PasswordHash, ""); err != nil {
					return fmt.Errorf("id %q: %w", e.ID, err)
				}
			}
			if e.CertSHA256 != "" {
				if b, err := hex.DecodeString(e.CertSHA256); err != nil || len(b) != sha256.Size || hex.EncodeToString(b) != e.CertSHA256 {
					return fmt.Errorf("id %q: cert_sha256 is not 64 lower-case hex digits", e.ID)
				}
			}
		}
	}
	return nil
}

// Find looks an id up; hub says whether it is a hub identity.
func (c *File) Find(id string) (e Entry, hub, ok bool) {
	for _, e := range c.Hubs {
		if e.ID == id {
			return e, true, true
		}
	}
	for _, e := range c.Devices {
		if e.ID == id {
			return e, false, true
		}
	}
	return Entry{}, false, false
}

// Login checks one login against the file, as the embedded engine does:
// a client certificate verified against the fleet CA (cert, else nil)
// names the identity by its CN, must be the one the entry's cert_sha256
// names (an entry with a password and no cert_sha256 refuses any
// certificate; one with neither is a legacy certificate login), and a
// username given with it must be the same; otherwise the username is the
// id and the password must match its hash (an entry without one may only
// use its certificate). It returns the id and whether it is a hub; the
// error says what was wrong, for the log.
func (c *File) Login(user, password string, cert *x509.Certificate) (id string, hub bool, err error) {
	if cert != nil {
		cn := cert.Subject.CommonName
		e, hub, ok := c.Find(cn)
		if !ok {
			return "", false, fmt.Errorf("client certificate CN %q is not in the credentials file", cn)
		}
		switch {
		case e.CertSHA256 != "":
			if subtle.ConstantTimeCompare([]byte(CertSHA256(cert.Raw)), []byte(e.CertSHA256)) != 1 {
				return "", false, fmt.Errorf("client certificate for %q is not the one issued to it (sha256 %s; an old or removed Pi's?)", cn, CertSHA256(cert.Raw)[:16])
			}
		case e.PasswordHash != "":
			return "", false, fmt.Errorf("%q logs in with its password, not a certificate", cn)
		}
		if user != "" && user != cn {
			return "", false, fmt.Errorf("username %q does not match certificate CN %q", user, cn)
		}
		return cn, hub, nil
	}
	e, hub, ok := c.Find(user)
	if !ok {
		return "", false, errors.New("unknown username")
	}
	if e.PasswordHash == "" {
		return "", false, errors.New("this identity must use its client certificate")
	}
	if match, err := CheckPassword(e.PasswordHash, password); err != nil || !match {
		return "", false, errors.New("wrong password")
	}
	return user, hub, nil
}

// Set adds or replaces an entry in the hub or device list.
func (c *File) Set(hub bool, e Entry) {
	list := &c.Devices
	if hub {
		list = &c.Hubs
	}
	for i := range *list {
		if (*list)[i].ID == e.ID {
			(*list)[i] = e
			return
		}
	}
	*list = append(*list, e)
}

// Clone returns a copy that can be changed without changing c.
func (c *File) Clone() *File {
	return &File{Version: c.Version, Hubs: append([]Entry(nil), c.Hubs...), Devices: append([]Entry(nil), c.Devices...)}
}

// Remove deletes a device's entry; it reports whether there was one.
// Hub entries are not removed this way.
func (c *File) Remove(id string) bool {
	for i, e := range c.Devices {
		if e.ID == id {
			c.Devices = append(c.Devices[:i:i], c.Devices[i+1:]...)
			return true
		}
	}
	return false
}

// Write stores the credentials at path atomically (mode 0640).
func (c *File) Write(path string) error {
	if c.Version == 0 {
		c.Version = Version
	}
	if err := c.Validate(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".credentials-*")
	if err != nil {
		return fmt.Errorf("write credentials: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write credentials: %w", err)
	}
	if err := tmp.Chmod(0o640); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write credentials: %w", err)
	}
	return nil
}
