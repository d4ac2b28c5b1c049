package credentials

import (
	"bytes"
	"encoding/json"
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
// whose CN is its id. An entry without a password hash can only use a
// certificate. Ids are unique across hubs and devices. No secret is in
// the file: hashes only.
type File struct {
	Version int     `json:"version"`
	Hubs    []Entry `json:"hubs"`
	Devices []Entry `json:"devices"`
}

// Entry is one identity in the credentials file.
type Entry struct {
	ID           string `json:"id"`
	PasswordHash string `json:"password_hash,omitempty"`
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
// a client certificate verified against the fleet CA (verifiedCN, its CN)
// names the identity, and a username given with it must be the same;
// otherwise the username is the id and the password must match its hash
// (an entry without one may only use its certificate). It returns the id
// and whether it is a hub; the error says what was wrong, for the log.
func (c *File) Login(user, password, verifiedCN string) (id string, hub bool, err error) {
	if verifiedCN != "" {
		_, hub, ok := c.Find(verifiedCN)
		if !ok {
			return "", false, fmt.Errorf("client certificate CN %q is not in the credentials file", verifiedCN)
		}
		if user != "" && user != verifiedCN {
			return "", false, fmt.Errorf("username %q does not match certificate CN %q", user, verifiedCN)
		}
		return verifiedCN, hub, nil
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
