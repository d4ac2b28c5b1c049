// Command provision creates a Pi's identity for pifleet: MQTT credentials
// (a random password, stored hashed for the hub) or a client certificate
// from the fleet's small CA, the hub's command-signing public key and the
// agent's environment file, packed into one tar for the Pi. It prints the
// one command to run on the Pi. Run it as scripts/provision.
//
// Everything lives in a secrets directory on the operator's machine
// (default ./secrets, mode 0700): the CA, the broker certificate, the hub's
// signing key and password, credentials.json (hashes only) and
// devices/<id>.tar. Secrets are written only to files (0600/0640), never to
// the terminal.
package main

import (
	"archive/tar"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pifleet/pifleet/internal/credentials"
	"github.com/pifleet/pifleet/internal/enrol"
	"github.com/pifleet/pifleet/internal/transport"
	"github.com/pifleet/pifleet/internal/transport/pki"
	"github.com/pifleet/pifleet/internal/wire"
)

const (
	caValidity     = 20 * 365 * 24 * time.Hour
	certValidity   = 10 * 365 * 24 * time.Hour
	signingKeyName = "hub-signing.key" // format of hub/internal/dispatch: base64 seed; public key in .pub
)

type config struct {
	secrets  string
	broker   string
	hubHosts string
	auth     string
	hubID    string
	rotate   bool
	now      time.Time
}

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "provision:", err)
		}
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	c := config{now: time.Now()}
	fs := flag.NewFlagSet("provision", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := os.Getenv("PIFLEET_SECRETS")
	if def == "" {
		def = "secrets"
	}
	fs.StringVar(&c.secrets, "secrets", def, "the fleet's secrets directory on this machine ($PIFLEET_SECRETS)")
	fs.StringVar(&c.broker, "broker", "mqtts://pifleet-hub.local:8883", "broker URL the Pi connects to")
	fs.StringVar(&c.hubHosts, "hub-hosts", "", "comma-separated names/IPs for the broker certificate (default: the broker URL's host, localhost, 127.0.0.1); used when the certificate is first made")
	fs.StringVar(&c.auth, "auth", "password", "how the Pi logs in: password or cert")
	fs.StringVar(&c.hubID, "hub-id", "hub", "the hub's id (its MQTT username)")
	fs.BoolVar(&c.rotate, "rotate", false, "replace the credentials of an already provisioned device")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: scripts/provision [flags] DEVICE-ID")
		fs.PrintDefaults()
	}
	// Accept flags after the id too: scripts/provision pi-1 --auth cert.
	var pos []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return err
		}
		args = fs.Args()
		if len(args) > 0 {
			pos = append(pos, args[0])
			args = args[1:]
		}
	}
	if len(pos) != 1 {
		fs.Usage()
		return errors.New("want exactly one DEVICE-ID")
	}
	id := pos[0]
	if err := wire.ValidateID(id); err != nil {
		return fmt.Errorf("device id: %w", err)
	}
	if c.auth != "password" && c.auth != "cert" {
		return fmt.Errorf("--auth %q: want password or cert", c.auth)
	}
	u, err := transport.ParseBroker(c.broker)
	if err != nil {
		return err
	}
	if !transport.IsTLSScheme(u.Scheme) {
		return fmt.Errorf("--broker %s: provisioned Pis use TLS (mqtts://)", c.broker)
	}
	return c.provision(id, u, stdout)
}

func (c *config) path(name string) string { return filepath.Join(c.secrets, name) }

func (c *config) provision(id string, broker *url.URL, stdout io.Writer) error {
	if err := os.MkdirAll(c.path("devices"), 0o700); err != nil {
		return err
	}
	if err := os.Chmod(c.secrets, 0o700); err != nil {
		return err
	}
	ca, err := c.ensureCA(broker)
	if err != nil {
		return err
	}
	pub, err := c.ensureSigningKey()
	if err != nil {
		return err
	}
	creds, err := c.loadCreds()
	if err != nil {
		return err
	}
	if _, _, ok := creds.Find(c.hubID); !ok {
		if err := c.addPassword(creds, true, c.hubID, c.path("hub.password")); err != nil {
			return err
		}
	}
	if e, hub, ok := creds.Find(id); ok {
		if hub {
			return fmt.Errorf("%q is the hub's id", id)
		}
		if !c.rotate {
			return fmt.Errorf("device %q is already provisioned (--rotate replaces its credentials; %s/devices/%s.tar has the current ones)", id, c.secrets, e.ID)
		}
	}

	pi := enrol.PiConfig{ID: id, Broker: broker.String(), CAPEM: ca.CertPEM, HubKey: string(pub),
		Origin: "scripts/provision on " + c.now.UTC().Format(time.RFC3339)}
	switch c.auth {
	case "password":
		pw, err := credentials.NewPassword()
		if err != nil {
			return err
		}
		h, err := credentials.HashPassword(pw)
		if err != nil {
			return err
		}
		creds.Set(false, credentials.Entry{ID: id, PasswordHash: h})
		pi.Password = pw
	case "cert":
		cert, key, err := ca.Issue(pki.Client, id, nil, c.now, certValidity)
		if err != nil {
			return err
		}
		entry, err := credentials.CertEntry(id, cert) // only this certificate logs in as id (--rotate revokes the old one)
		if err != nil {
			return err
		}
		creds.Set(false, entry)
		pi.CertPEM, pi.KeyPEM = cert, key
	}
	files, err := pi.Files()
	if err != nil {
		return err
	}
	tarPath := c.path(filepath.Join("devices", id+".tar"))
	if err := writeBundle(tarPath, files, c.now); err != nil {
		return err
	}
	if err := creds.Write(c.path("credentials.json")); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "provisioned %s (%s login) for %s\n", id, c.auth, broker.Redacted())
	fmt.Fprintf(stdout, "  bundle: %s (holds the Pi's secret; delete it on the Pi after use)\n", tarPath)
	fmt.Fprintf(stdout, "  hub:    install %s as /etc/pifleet/credentials.json (root:pifleet 0640) and restart pifleet-hub\n", c.path("credentials.json"))
	fmt.Fprintf(stdout, "  copy:   scp %s pi@<the pi>:\n", tarPath)
	fmt.Fprintf(stdout, "On the Pi, with the pifleet-agent package installed, run:\n")
	fmt.Fprintf(stdout, "  sudo tar -xpf %s.tar -C / --no-overwrite-dir && rm %s.tar && sudo systemctl restart pifleet-agent\n", id, id)
	return nil
}

func (c *config) ensureCA(broker *url.URL) (*pki.CA, error) {
	certF, keyF := c.path("ca.pem"), c.path("ca.key")
	var ca *pki.CA
	if _, err := os.Stat(certF); err == nil {
		if ca, err = pki.LoadCA(certF, keyF); err != nil {
			return nil, err
		}
	} else {
		var key []byte
		ca, key, err = pki.NewCA("pifleet fleet CA", c.now, caValidity)
		if err != nil {
			return nil, err
		}
		if err := writeNew(keyF, key, 0o600); err != nil {
			return nil, err
		}
		if err := writeNew(certF, ca.CertPEM, 0o644); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(c.path("broker.pem")); err == nil {
		return ca, nil
	}
	hosts := []string{broker.Hostname(), "localhost", "127.0.0.1"}
	if c.hubHosts != "" {
		hosts = strings.Split(c.hubHosts, ",")
	}
	cert, key, err := ca.Issue(pki.Server, "pifleet broker", hosts, c.now, certValidity)
	if err != nil {
		return nil, err
	}
	if err := writeNew(c.path("broker.key"), key, 0o600); err != nil {
		return nil, err
	}
	return ca, writeNew(c.path("broker.pem"), cert, 0o644)
}

// ensureSigningKey creates the hub's ed25519 command-signing key in the
// hub's format (base64 seed; base64 public key in .pub) and returns the
// public key file's content.
func (c *config) ensureSigningKey() ([]byte, error) {
	priv, pubF := c.path(signingKeyName), c.path(signingKeyName+".pub")
	if _, err := os.Stat(priv); err != nil {
		pub, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		if err := writeNew(priv, []byte(base64.StdEncoding.EncodeToString(key.Seed())+"\n"), 0o600); err != nil {
			return nil, err
		}
		if err := writeNew(pubF, []byte(base64.StdEncoding.EncodeToString(pub)+"\n"), 0o644); err != nil {
			return nil, err
		}
	}
	return os.ReadFile(pubF)
}

func (c *config) loadCreds() (*credentials.File, error) {
	p := c.path("credentials.json")
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return &credentials.File{Version: credentials.Version}, nil
	}
	return credentials.Load(p)
}

func (c *config) addPassword(creds *credentials.File, hub bool, id, file string) error {
	pw, err := credentials.NewPassword()
	if err != nil {
		return err
	}
	h, err := credentials.HashPassword(pw)
	if err != nil {
		return err
	}
	if err := writeNew(file, []byte(pw+"\n"), 0o600); err != nil {
		return err
	}
	creds.Set(hub, credentials.Entry{ID: id, PasswordHash: h})
	return nil
}

// writeNew writes a file that must not exist yet (keys are never
// overwritten by accident).
func writeNew(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// writeBundle packs the Pi's files (enrol.PiConfig.Files: the join
// writes the same ones in place). Owners are by name (root, group
// pifleet for what the agent must read), which tar honours when root
// extracts; the env file is root-only (systemd reads it).
func writeBundle(path string, files []enrol.PiFile, now time.Time) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := func(name string, mode int64, size int, group bool, typ byte) error {
		h := &tar.Header{Typeflag: typ, Name: name, Mode: mode, Size: int64(size), ModTime: now.Truncate(time.Second),
			Uname: "root", Gname: "root", Format: tar.FormatPAX}
		if group {
			h.Gname = enrol.AgentGroup
		}
		return tw.WriteHeader(h)
	}
	if err := hdr(strings.TrimPrefix(enrol.PiDir, "/")+"/", 0o750, 0, true, tar.TypeDir); err != nil {
		return err
	}
	for _, f := range files {
		if err := hdr(strings.TrimPrefix(f.Path, "/"), int64(f.Mode), len(f.Body), f.Group, tar.TypeReg); err != nil {
			return err
		}
		if _, err := tw.Write(f.Body); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
