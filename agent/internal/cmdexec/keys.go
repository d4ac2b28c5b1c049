package cmdexec

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
)

// ParsePublicKey decodes a base64 (standard or URL, padded or not) ed25519
// public key.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != ed25519.PublicKeySize {
				return nil, fmt.Errorf("hub public key: %d bytes, want %d", len(b), ed25519.PublicKeySize)
			}
			return ed25519.PublicKey(b), nil
		}
	}
	return nil, fmt.Errorf("hub public key: not base64")
}

// LoadPublicKeys reads hub public keys. Each spec is a file (one base64
// key per line, '#' comments allowed) or, if no such file exists, the
// base64 key itself — so --hub-key accepts either.
func LoadPublicKeys(specs []string) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	for _, spec := range specs {
		b, err := os.ReadFile(spec)
		if os.IsNotExist(err) {
			k, perr := ParsePublicKey(spec)
			if perr != nil {
				return nil, fmt.Errorf("hub key %q: no such file, and %w", spec, perr)
			}
			keys = append(keys, k)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read hub key: %w", err)
		}
		for n, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, err := ParsePublicKey(line)
			if err != nil {
				return nil, fmt.Errorf("%s line %d: %w", spec, n+1, err)
			}
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no hub public key configured: the agent would reject every command")
	}
	return keys, nil
}
