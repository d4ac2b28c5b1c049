package enrolment

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pifleet/pifleet/internal/enrol"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newToken(t *testing.T, s *Store, c *clock, uses int, ttl time.Duration) enrol.Token {
	t.Helper()
	tok, err := enrol.NewToken(enrol.Pin{1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Add(Record{ID: tok.ID, SecretHash: tok.SecretHash(), Auth: AuthPassword, UsesLeft: uses,
		Created: c.t, Expires: c.t.Add(ttl)}); err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestStoreUsesAndExpiry(t *testing.T) {
	c := &clock{time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)}
	path := filepath.Join(t.TempDir(), "tokens.json")
	s, err := OpenStore(path, c.now)
	if err != nil {
		t.Fatal(err)
	}
	once := newToken(t, s, c, 1, time.Hour)
	batch := newToken(t, s, c, 2, time.Hour)
	short := newToken(t, s, c, 1, time.Minute)

	if _, err := s.Take(once); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if _, err := s.Take(once); !errors.Is(err, ErrUsedUp) {
		t.Errorf("second use of a single-use token: %v, want ErrUsedUp", err)
	}
	for i := range 2 {
		if _, err := s.Take(batch); err != nil {
			t.Fatalf("batch use %d: %v", i+1, err)
		}
	}
	if _, err := s.Take(batch); !errors.Is(err, ErrUsedUp) {
		t.Errorf("third use of a 2-use token: %v, want ErrUsedUp", err)
	}
	wrong := short
	wrong.Secret[3] ^= 0x40
	if _, err := s.Take(wrong); !errors.Is(err, ErrUnknownToken) {
		t.Errorf("right id, wrong secret: %v, want ErrUnknownToken", err)
	}
	stranger, _ := enrol.NewToken(enrol.Pin{1})
	if _, err := s.Take(stranger); !errors.Is(err, ErrUnknownToken) {
		t.Errorf("unknown token: %v, want ErrUnknownToken", err)
	}
	c.t = c.t.Add(time.Minute)
	if _, err := s.Take(short); !errors.Is(err, ErrExpired) {
		t.Errorf("at its expiry: %v, want ErrExpired", err)
	}

	// GiveBack returns a use (a join that failed after Take).
	again := newToken(t, s, c, 1, time.Hour)
	if _, err := s.Take(again); err != nil {
		t.Fatal(err)
	}
	s.GiveBack(again.ID, "")
	if _, err := s.Take(again); err != nil {
		t.Errorf("after GiveBack: %v", err)
	}

	// The file is 0600, holds hashes and no secret, and is read back.
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	for _, tok := range []enrol.Token{once, batch, short, again} {
		if !strings.Contains(string(b), tok.SecretHash()) || strings.Contains(string(b), tok.String()[5:]) {
			t.Errorf("token file should hold %s's hash and not the token", tok.ID)
		}
	}
	s2, err := OpenStore(path, c.now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Take(once); !errors.Is(err, ErrUsedUp) {
		t.Errorf("reopened store, used token: %v, want ErrUsedUp", err)
	}

	// A spent token is kept a day, so a retry says why; then it is gone.
	c.t = c.t.Add(time.Hour + keepSpent)
	if _, err := s2.Take(once); !errors.Is(err, ErrUnknownToken) {
		t.Errorf("a day after expiry: %v, want ErrUnknownToken", err)
	}
}

func TestStorePending(t *testing.T) {
	c := &clock{time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)}
	s, err := OpenStore(filepath.Join(t.TempDir(), "tokens.json"), c.now)
	if err != nil {
		t.Fatal(err)
	}
	used := newToken(t, s, c, 1, time.Hour)
	live := newToken(t, s, c, 3, time.Hour)
	newToken(t, s, c, 1, time.Second) // expires
	s.Take(used)
	c.t = c.t.Add(time.Minute)
	p := s.Pending()
	if len(p) != 1 || p[0].ID != live.ID || p[0].UsesLeft != 3 {
		t.Errorf("pending: got %+v, want only %s with 3 uses", p, live.ID)
	}
}
