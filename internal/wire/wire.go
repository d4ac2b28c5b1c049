package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ProtocolVersion is the version of every message on the wire. A receiver
// rejects messages whose version is newer than it understands.
//
// History:
//   - 1 (2026-11-25): first version: state, status, hub presence, cmd, result.
const ProtocolVersion = 1

// MaxPayload caps every message the hub or agent will decode. Larger
// payloads are rejected before JSON decoding.
const MaxPayload = 256 << 10

// MaxIDLen bounds device and hub ids (they are MQTT topic levels).
const MaxIDLen = 64

// Errors returned by the decoders and validators.
var (
	ErrTooLarge   = errors.New("payload too large")
	ErrBadVersion = errors.New("unsupported protocol version")
	ErrBadID      = errors.New("invalid id")
)

// ValidateID checks a device or hub id: 1..MaxIDLen characters from
// [A-Za-z0-9._-], not starting with '.' or '-'. This excludes the MQTT
// wildcards '+' and '#', the level separator '/', spaces and control bytes.
func ValidateID(id string) error {
	problem := IDProblem(id)
	switch {
	case problem == "":
		return nil
	case id == "" || len(id) > MaxIDLen:
		return fmt.Errorf("%w: %s", ErrBadID, problem)
	}
	return fmt.Errorf("%w %q: %s", ErrBadID, id, problem)
}

// IDProblem says what is wrong with id as a device or hub id, or "" when
// nothing is: for messages that name the id their own way.
func IDProblem(id string) string {
	if id == "" {
		return "empty"
	}
	if len(id) > MaxIDLen {
		return fmt.Sprintf("%d characters, at most %d allowed", len(id), MaxIDLen)
	}
	if id[0] == '.' || id[0] == '-' {
		return fmt.Sprintf("must not start with %q", id[0])
	}
	for _, c := range id {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return fmt.Sprintf("character %q not allowed (use letters, digits, '.', '_', '-')", c)
		}
	}
	return ""
}

// SanitizeID turns an arbitrary host name into a valid id, replacing every
// disallowed character with '-' and truncating to MaxIDLen.
func SanitizeID(s string) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < MaxIDLen; i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' {
			b.WriteByte(c)
		} else {
			b.WriteByte('-')
		}
	}
	out := strings.TrimLeft(b.String(), ".-")
	if out == "" {
		return "pi"
	}
	return out
}

// Time is a timestamp on the wire: RFC 3339 with milliseconds, UTC.
type Time = time.Time

// decode is the one entry point for every decoder: it checks size, JSON
// shape and version.
func decode(b []byte, v interface{ version() int }) error {
	if len(b) > MaxPayload {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(b), MaxPayload)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	if ver := v.version(); ver < 1 || ver > ProtocolVersion {
		return fmt.Errorf("%w: v=%d, this build speaks 1..%d", ErrBadVersion, ver, ProtocolVersion)
	}
	return nil
}
