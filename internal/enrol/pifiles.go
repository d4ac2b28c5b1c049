package enrol

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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

// WriteFiles writes files under root ("/" on the Pi, or an SD card's
// root) as root would: each file atomically (a temporary file renamed
// over the old one), owner root, group gid for Group files (gid < 0:
// root's group), and PiDir 0750 with the same group. A file is never
// world-readable on the way. Nothing is written through a symbolic link:
// the directories on the way (etc, etc/pifleet, etc/default) and the
// files themselves must not be links, and every step stays inside root.
func WriteFiles(root string, files []PiFile, gid int) error {
	if gid < 0 {
		gid = 0
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	dir, err := ensureDir(r, root, PiDir, 0o750)
	if err != nil {
		return err
	}
	err = chown(dir, gid, 0o750)
	if cerr := dir.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(root, PiDir), err)
	}
	for _, f := range files {
		g := 0
		if f.Group {
			g = gid
		}
		if err := writeFile(r, root, f.Path, f.Body, f.Mode, g); err != nil {
			return err
		}
	}
	return nil
}

// ensureDir makes the directory path (absolute, under r) and each one on
// the way that is missing, refuses any that is a symbolic link, and
// returns the last one open.
func ensureDir(r *os.Root, root, path string, mode fs.FileMode) (*os.File, error) {
	rel := strings.TrimPrefix(filepath.Clean(path), "/")
	parts := strings.Split(rel, "/")
	for i := range parts {
		p := filepath.Join(parts[:i+1]...)
		m := fs.FileMode(0o755)
		if i == len(parts)-1 {
			m = mode
		}
		if err := r.Mkdir(p, m); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		fi, err := r.Lstat(p)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("%s is a %s, not a directory: refusing to write through it", filepath.Join(root, p), kind(fi))
		}
	}
	return r.Open(rel)
}

func kind(fi fs.FileInfo) string {
	if fi.Mode()&fs.ModeSymlink != 0 {
		return "symbolic link"
	}
	return "file"
}

// chown sets owner root, group gid and mode on an open file. Without the
// right to chown (not root: tests, an SD card prepared by a user) the
// owner stays.
func chown(f *os.File, gid int, mode fs.FileMode) error {
	if err := f.Chown(0, gid); err != nil && !errors.Is(err, fs.ErrPermission) {
		return err
	}
	return f.Chmod(mode)
}

func writeFile(r *os.Root, root, path string, body []byte, mode fs.FileMode, gid int) error {
	full := filepath.Join(root, path)
	dir, err := ensureDir(r, root, filepath.Dir(path), 0o755)
	if err != nil {
		return fmt.Errorf("write %s: %w", full, err)
	}
	dir.Close()
	rel := strings.TrimPrefix(filepath.Clean(path), "/")
	if fi, err := r.Lstat(rel); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("write %s: it is a %s: refusing to replace it", full, kind(fi))
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(filepath.Dir(rel), "."+filepath.Base(rel)+"-"+hex.EncodeToString(rnd[:]))
	f, err := r.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", full, err)
	}
	defer r.Remove(tmp)
	_, err = f.Write(body)
	if err == nil {
		err = chown(f, gid, mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = r.Rename(tmp, rel)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", full, err)
	}
	return nil
}

// AgentGID is the id of AgentGroup on the system under root: this
// machine's group database when root is "/", else root/etc/group (an SD
// card's own; read without leaving root). ok is false when there is no
// such group.
func AgentGID(root string) (gid int, ok bool, err error) {
	if filepath.Clean(root) == "/" {
		g, err := user.LookupGroup(AgentGroup)
		if err != nil {
			var unknown user.UnknownGroupError
			if errors.As(err, &unknown) {
				return 0, false, nil
			}
			return 0, false, err
		}
		gid, err := strconv.Atoi(g.Gid)
		return gid, err == nil, err
	}
	r, err := os.OpenRoot(root)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer r.Close()
	b, err := r.ReadFile("etc/group")
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Split(strings.TrimRight(line, "\n"), ":")
		if len(f) >= 3 && f[0] == AgentGroup {
			gid, err := strconv.Atoi(f[2])
			if err != nil || gid < 0 {
				return 0, false, fmt.Errorf("%s: group %s has gid %q", filepath.Join(root, "etc/group"), AgentGroup, f[2])
			}
			return gid, true, nil
		}
	}
	return 0, false, nil
}
