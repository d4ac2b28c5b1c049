package dispatch

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// PublicKeyString is the base64 form of the hub's public key that agents
// take with --hub-key.
func PublicKeyString(k ed25519.PrivateKey) string {
	return base64.StdEncoding.EncodeToString(k.Public().(ed25519.PublicKey))
}

// GenerateKey writes a new signing key to path (0600, base64 seed) and its
// public key to path+".pub", refusing to overwrite an existing key. It
// returns the public key string (for `pifleet hub keygen`).
func GenerateKey(path string) (string, error) {
	if _, err := os.Stat(path); err == nil {
		return "", fmt.Errorf("signing key %s exists; not overwriting it (agents trust it)", path)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("generate signing key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("signing key dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("create signing key: %w", err)
	}
	_, err = f.WriteString(base64.StdEncoding.EncodeToString(priv.Seed()) + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("write signing key %s: %w", path, err)
	}
	pub := PublicKeyString(priv)
	if err := os.WriteFile(path+".pub", []byte(pub+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("write public key: %w", err)
	}
	return pub, nil
}

// LoadKey reads a signing key written by GenerateKey. A key file that
// anyone outside its owner and group can read, or its group can write, is
// refused (0640 root:pifleet, as provisioned, is fine).
func LoadKey(path string) (ed25519.PrivateKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if st.Mode().Perm()&0o027 != 0 {
		return nil, fmt.Errorf("signing key %s is open to others (mode %v): chmod 600 it (or 640 with the hub's group)", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	seed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("signing key %s: not a base64 ed25519 seed", path)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// LoadOrCreateKey loads the signing key at path, generating it on first
// use; created says so (the hub logs the public key then).
func LoadOrCreateKey(path string) (key ed25519.PrivateKey, created bool, err error) {
	k, err := LoadKey(path)
	if err == nil {
		return k, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	if _, err := GenerateKey(path); err != nil {
		return nil, false, err
	}
	k, err = LoadKey(path)
	return k, true, err
}
