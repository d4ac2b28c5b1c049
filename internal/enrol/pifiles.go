package enrol

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Where the packaged pifleet-agent unit reads its settings.
const (
	PiDir     = "/etc/pifleet"
	PiEnvFile = "/etc/default/pifleet-agent"
	// AgentGroup may read the Pi's secrets: the unit runs the agent as
	// user pifleet (the .deb creates the group).
	AgentGroup = "pifleet"
	// AgentUnit is the agent's systemd unit.
	AgentUnit = "pifleet-agent.service"
)

// PiConfig is one Pi's identity: everything its files hold.
type PiConfig struct {
	ID         string
	Broker     string // mqtts://host:port
	ServerName string // name in the broker's certificate, when not the URL's host
	CAPEM      []byte
	HubKey     string // command-signing public key, base64
	Labels     []string
	Password   string // a password login, or
	CertPEM    []byte // a client certificate (CN = ID) and its key
	KeyPEM     []byte
	Origin     string // "scripts/provision on <time>": the env file's first comment
}

// PiFile is one file a Pi gets.
type PiFile struct {
	Path  string // absolute, e.g. /etc/pifleet/ca.pem
	Body  []byte
	Mode  fs.FileMode
	Group bool // group AgentGroup (the agent must read it); else root's
}

// Files returns the Pi's files, the environment file last: the CA, the
// hub's public key, the login (password, or certificate and key: secrets
// 0640 root:pifleet), and /etc/default/pifleet-agent (0600, read by
// systemd).
func (c PiConfig) Files() ([]PiFile, error) {
	if (c.Password == "") == (len(c.CertPEM) == 0) {
		return nil, errors.New("a Pi logs in with a password or a certificate, exactly one")
	}
	env := []string{
		"# " + PiEnvFile + " for " + c.ID + ", written by " + c.Origin,
		"PIFLEET_AGENT_ID=" + c.ID,
		"PIFLEET_AGENT_BROKER=" + c.Broker,
		"PIFLEET_AGENT_CA_FILE=" + PiDir + "/ca.pem",
		"PIFLEET_AGENT_HUB_KEY=" + PiDir + "/hub-signing.pub",
	}
	if c.ServerName != "" {
		env = append(env, "PIFLEET_AGENT_SERVER_NAME="+c.ServerName)
	}
	if len(c.Labels) > 0 {
		env = append(env, "PIFLEET_AGENT_LABELS="+strings.Join(c.Labels, ","))
	}
	files := []PiFile{
		{Path: PiDir + "/ca.pem", Body: c.CAPEM, Mode: 0o644},
		{Path: PiDir + "/hub-signing.pub", Body: []byte(strings.TrimSpace(c.HubKey) + "\n"), Mode: 0o644},
	}
	if c.Password != "" {
		files = append(files, PiFile{Path: PiDir + "/device.password", Body: []byte(c.Password + "\n"), Mode: 0o640, Group: true})
		env = append(env, "PIFLEET_AGENT_USERNAME="+c.ID, "PIFLEET_AGENT_PASSWORD_FILE="+PiDir+"/device.password")
	} else {
		files = append(files, PiFile{Path: PiDir + "/device.pem", Body: c.CertPEM, Mode: 0o644},
			PiFile{Path: PiDir + "/device.key", Body: c.KeyPEM, Mode: 0o640, Group: true})
		env = append(env, "PIFLEET_AGENT_CERT_FILE="+PiDir+"/device.pem", "PIFLEET_AGENT_KEY_FILE="+PiDir+"/device.key")
	}
	files = append(files, PiFile{Path: PiEnvFile, Body: []byte(strings.Join(env, "\n") + "\n"), Mode: 0o600})
	return files, nil
}

// WriteFiles writes files under root ("/" on the Pi) as root would: each
// file atomically (a temporary file renamed over the old one), owner
// root, group gid for Group files (gid < 0: root's group), and PiDir
// 0750 with the same group. A file is never world-readable on the way.
func WriteFiles(root string, files []PiFile, gid int) error {
	if gid < 0 {
		gid = 0
	}
	dir := filepath.Join(root, PiDir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	if err := chown(dir, gid, 0o750); err != nil {
		return err
	}
	for _, f := range files {
		g := 0
		if f.Group {
			g = gid
		}
		if err := writeFile(filepath.Join(root, f.Path), f.Body, f.Mode, g); err != nil {
			return err
		}
	}
	return nil
}

func chown(path string, gid int, mode fs.FileMode) error {
	if err := os.Lchown(path, 0, gid); err != nil && !errors.Is(err, fs.ErrPermission) {
		return err
	}
	return os.Chmod(path, mode)
}

func writeFile(path string, body []byte, mode fs.FileMode, gid int) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(body)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = chown(tmp.Name(), gid, mode)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
