package credentials

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Password hashes use Mosquitto's format, "$7$ITERATIONS$SALT$HASH":
// PBKDF2-HMAC-SHA512, 12-byte salt, 64-byte key, standard base64. The same
// string works in the embedded broker's credentials file and in a
// Mosquitto password_file, so one provisioning step serves both brokers.
const (
	hashPrefix = "$7$"
	saltLen    = 12
	keyLen     = 64
	// HashIterations is the PBKDF2 cost for new hashes. pifleet passwords
	// are 256 random bits, so the cost is not what protects them; it is
	// kept low because a hub on a Pi pays it on every connect.
	HashIterations = 1000
)

// ErrBadHash is returned for a hash string that is not "$7$…".
var ErrBadHash = errors.New("password hash is not a $7$ PBKDF2-SHA512 hash")

// HashPassword returns the "$7$" hash of password with a random salt.
func HashPassword(password string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password salt: %w", err)
	}
	return hashWith(password, salt, HashIterations)
}

func hashWith(password string, salt []byte, iter int) (string, error) {
	key, err := pbkdf2.Key(sha512.New, password, salt, iter, keyLen)
	if err != nil {
		return "", fmt.Errorf("pbkdf2: %w", err)
	}
	enc := base64.StdEncoding
	return hashPrefix + strconv.Itoa(iter) + "$" + enc.EncodeToString(salt) + "$" + enc.EncodeToString(key), nil
}

// CheckPassword reports whether password matches hash, in constant time
// for a given hash. A malformed hash is an error, never a match.
func CheckPassword(hash, password string) (bool, error) {
	rest, ok := strings.CutPrefix(hash, hashPrefix)
	if !ok {
		return false, ErrBadHash
	}
	parts := strings.Split(rest, "$")
	if len(parts) != 3 {
		return false, ErrBadHash
	}
	iter, err := strconv.Atoi(parts[0])
	if err != nil || iter < 1 || iter > 10_000_000 {
		return false, fmt.Errorf("%w: iterations %q", ErrBadHash, parts[0])
	}
	salt, err := base64.StdEncoding.DecodeString(parts[1])
	if err != nil || len(salt) == 0 {
		return false, fmt.Errorf("%w: salt", ErrBadHash)
	}
	want, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(want) == 0 {
		return false, fmt.Errorf("%w: key", ErrBadHash)
	}
	got, err := pbkdf2.Key(sha512.New, password, salt, iter, len(want))
	if err != nil {
		return false, fmt.Errorf("pbkdf2: %w", err)
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// NewPassword returns a random password: 32 bytes, base64url without
// padding (43 characters, safe in files, env and URLs).
func NewPassword() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
