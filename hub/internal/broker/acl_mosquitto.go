package broker

import (
	"fmt"
	"strings"

	"github.com/pifleet/pifleet/internal/credentials"
	"github.com/pifleet/pifleet/internal/wire"
)

// MosquittoFiles is the embedded engine's policy (natsengine's logins and
// subject permissions) for an external Mosquitto (2.0+): a password_file
// (the same "$7$" hashes) and an acl_file, plus the listener lines that go
// with them.
type MosquittoFiles struct {
	Passwords string // password_file content: "id:$7$…" per identity with a password
	ACL       string // acl_file content
	Conf      string // mosquitto.conf snippet
}

// MosquittoPaths are where the Conf snippet says the files are.
type MosquittoPaths struct {
	PasswordFile, ACLFile     string // default /etc/mosquitto/pifleet.passwd, pifleet.acl
	CAFile, CertFile, KeyFile string // default /etc/pifleet/ca.pem, broker.pem, broker.key
	Listener                  string // "PORT [ADDRESS]" of the TLS listener, default "8883"
}

// MosquittoConfig renders the policy for Mosquitto. Devices log in with
// username = id (password) or, on a listener with
// use_identity_as_username, a certificate whose CN is the id; the ACL
// patterns use %u for the id. use_username_as_clientid stops a device from
// taking over another's session by client id.
func MosquittoConfig(c *credentials.File, p MosquittoPaths) (MosquittoFiles, error) {
	if err := c.Validate(); err != nil {
		return MosquittoFiles{}, err
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&p.PasswordFile, "/etc/mosquitto/pifleet.passwd")
	def(&p.ACLFile, "/etc/mosquitto/pifleet.acl")
	def(&p.CAFile, "/etc/pifleet/ca.pem")
	def(&p.CertFile, "/etc/pifleet/broker.pem")
	def(&p.KeyFile, "/etc/pifleet/broker.key")
	def(&p.Listener, "8883")

	var pw strings.Builder
	for _, list := range [][]credentials.Entry{c.Hubs, c.Devices} {
		for _, e := range list {
			if e.PasswordHash != "" {
				fmt.Fprintf(&pw, "%s:%s\n", e.ID, e.PasswordHash)
			}
		}
	}

	var acl strings.Builder
	root := wire.Root
	fmt.Fprintf(&acl, "# pifleet ACL (generated; the embedded engine's policy is in hub/internal/natsengine/acl.go).\n")
	fmt.Fprintf(&acl, "# Devices: username (or certificate CN) = device id.\n")
	fmt.Fprintf(&acl, "pattern write %s/devices/%%u/%s\n", root, wire.LeafState)
	fmt.Fprintf(&acl, "pattern write %s/devices/%%u/%s\n", root, wire.LeafStatus)
	fmt.Fprintf(&acl, "pattern write %s/devices/%%u/%s/#\n", root, wire.LeafResult)
	fmt.Fprintf(&acl, "pattern read %s/devices/%%u/%s\n", root, wire.LeafCmd)
	fmt.Fprintf(&acl, "pattern read %s/devices/%%u/%s\n", root, wire.LeafState) // its own retained state: stale-will and re-birth checks
	fmt.Fprintf(&acl, "pattern read %s\n", wire.FilterAllHubs)
	for _, h := range c.Hubs {
		fmt.Fprintf(&acl, "\n# Hub %s: reads everything, alone sends commands.\nuser %s\n", h.ID, h.ID)
		fmt.Fprintf(&acl, "topic read %s/#\n", root)
		fmt.Fprintf(&acl, "topic write %s/devices/+/%s\n", root, wire.LeafCmd)
		fmt.Fprintf(&acl, "topic write %s\n", wire.HubPresenceTopic(h.ID))
		fmt.Fprintf(&acl, "topic write %s/devices/+/%s/%s/#\n", root, wire.LeafResult, h.ID)
	}

	conf := fmt.Sprintf(`# pifleet: TLS listener with per-device credentials and ACL (Mosquitto 2.0+).
listener %s
cafile %s
certfile %s
keyfile %s
tls_version tlsv1.2
allow_anonymous false
password_file %s
acl_file %s
use_username_as_clientid true
# Devices with client certificates instead of passwords: add
#   require_certificate true
#   use_identity_as_username true
# (on this listener, or on a second one with its own port). Mosquitto then
# takes any certificate of the fleet CA with the id as CN: it cannot check
# the credentials' cert_sha256, so a removed Pi's certificate logs in again
# if its id is enrolled again, and a password Pi's id can log in by
# certificate. The embedded broker checks both.

# A hub that (re)subscribes gets every Pi's retained state and status at
# once (~1.5 KB a Pi). Mosquitto's default per-client queue of 1,000
# messages drops part of that from a few thousand Pis on (the hub heals it
# within a heartbeat, but need not): this is enough for 50,000.
max_queued_messages 100000
`, p.Listener, p.CAFile, p.CertFile, p.KeyFile, p.PasswordFile, p.ACLFile)
	return MosquittoFiles{Passwords: pw.String(), ACL: acl.String(), Conf: conf}, nil
}
