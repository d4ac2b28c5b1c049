package enrol

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// TokenPrefix starts every join token; the digit is the format's version.
const TokenPrefix = "pft1_"

// Sizes of a token's parts, in bytes.
const (
	tokenIDLen = 5  // shown to the operator (10 hex digits); not secret
	secretLen  = 20 // 160 random bits
	tokenLen   = tokenIDLen + secretLen + PinLen
)

// tokenEncoding is lower-case base32 without padding: one word for a
// terminal's double-click, no characters a shell or a chat app mangles,
// and case-insensitive when read aloud or retyped.
var tokenEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// ErrBadToken is a string that is not a join token at all (a typo, a cut
// copy). A well-formed token the hub does not know is the hub's answer.
var ErrBadToken = errors.New("not a pifleet join token (want pft1_ and 92 letters and digits, as `pifleet add-pi` printed it)")

// Token is a join token: which hub-side record it is (ID), the one-time
// secret that proves it, and the pin of the fleet CA the Pi is to trust.
// It holds nothing else: never the CA key, never another Pi's secret.
type Token struct {
	ID     string // 10 lower-case hex digits
	Secret [secretLen]byte
	Pin    Pin
}

// NewToken returns a fresh token for the fleet CA with the given pin.
func NewToken(pin Pin) (Token, error) {
	var b [tokenIDLen + secretLen]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Token{}, fmt.Errorf("join token: %w", err)
	}
	t := Token{ID: hex.EncodeToString(b[:tokenIDLen]), Pin: pin}
	copy(t.Secret[:], b[tokenIDLen:])
	return t, nil
}

// String is the token as printed: pft1_ and 92 base32 characters.
func (t Token) String() string {
	id, _ := hex.DecodeString(t.ID)
	b := make([]byte, 0, tokenLen)
	b = append(b, id...)
	b = append(b, t.Secret[:]...)
	b = append(b, t.Pin[:]...)
	return TokenPrefix + tokenEncoding.EncodeToString(b)
}

// ParseToken reads a token as String wrote it (surrounding space and
// upper case are forgiven).
func ParseToken(s string) (Token, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	body, ok := strings.CutPrefix(s, TokenPrefix)
	if !ok {
		if strings.HasPrefix(s, "pft") {
			return Token{}, errors.New("join token of another format version: update pifleet-agent")
		}
		return Token{}, ErrBadToken
	}
	b, err := tokenEncoding.DecodeString(body)
	// The last character's unused bits must be zero (the decoder ignores
	// them), so that one token has one spelling.
	if err != nil || len(b) != tokenLen || tokenEncoding.EncodeToString(b) != body {
		return Token{}, ErrBadToken
	}
	t := Token{ID: hex.EncodeToString(b[:tokenIDLen])}
	copy(t.Secret[:], b[tokenIDLen:tokenIDLen+secretLen])
	copy(t.Pin[:], b[tokenIDLen+secretLen:])
	return t, nil
}

// SecretHash is what the hub stores instead of the secret: hex SHA-256.
// The secret is 160 random bits, so a slow hash would add nothing.
func (t Token) SecretHash() string {
	h := sha256.Sum256(t.Secret[:])
	return hex.EncodeToString(h[:])
}

// MatchesHash reports, in constant time, whether t's secret has the
// stored hash.
func (t Token) MatchesHash(hash string) bool {
	return subtle.ConstantTimeCompare([]byte(t.SecretHash()), []byte(hash)) == 1
}
