package enrolment

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/pifleet/pifleet/internal/enrol"
)

// Record is a join token as the hub keeps it: the secret's hash, never
// the secret.
type Record struct {
	ID         string    `json:"id"`
	SecretHash string    `json:"secret_hash"`
	Device     string    `json:"device,omitempty"` // the id add-pi fixed; "": the Pi's host name
	Labels     []string  `json:"labels,omitempty"`
	Auth       string    `json:"auth"` // AuthPassword or AuthCert
	UsesLeft   int       `json:"uses_left"`
	Created    time.Time `json:"created"`
	Expires    time.Time `json:"expires"`
	Revoked    bool      `json:"revoked,omitempty"` // pifleet pis revoke: no use left, and Take says so
	// Uses is how many uses add-pi gave (0 in files from before it was kept).
	Uses int `json:"uses,omitempty"`
	// Joins are the joins of the last RetryWindow, for Retry.
	Joins []Join `json:"joins,omitempty"`
}

// Join is one Pi that joined with a token.
type Join struct {
	ID string    `json:"id"`
	At time.Time `json:"at"`
}

// RetryWindow is how long after its join a Pi may join again with the
// same single-use token and id, when the hub's answer never reached it.
const RetryWindow = 10 * time.Minute

// How a Pi logs in to the broker.
const (
	AuthPassword = "password"
	AuthCert     = "cert"
)

// keepSpent is how long a used-up or expired token is kept, so that
// trying it again says "used" or "expired" rather than "unknown".
const keepSpent = 24 * time.Hour

// Errors of Take, each one line the Pi shows.
var (
	ErrUnknownToken = errors.New("the hub does not know this token (copy the whole line again, or make a new one with `pifleet add-pi`)")
	ErrExpired      = errors.New("this token has expired (make a new one with `pifleet add-pi`)")
	ErrRevoked      = errors.New("this token was revoked on the hub (make a new one with `pifleet add-pi`)")
	ErrUsedUp       = errors.New("this token was already used (tokens are single-use unless add-pi said --uses; make a new one with `pifleet add-pi`)")
)

// Store keeps the tokens in one JSON file (mode 0600) in the hub's state
// directory, rewritten atomically on each change. One hub owns it: hubs
// of a cluster each enrol with their own tokens.
type Store struct {
	path string
	now  func() time.Time

	mu   sync.Mutex
	recs []Record
}

type storeFile struct {
	Version int      `json:"version"`
	Tokens  []Record `json:"tokens"`
}

// OpenStore reads the tokens at path (none yet: an empty store).
func OpenStore(path string, now func() time.Time) (*Store, error) {
	if now == nil {
		now = time.Now
	}
	s := &Store{path: path, now: now}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("join tokens: %w", err)
	}
	var f storeFile
	if err := json.Unmarshal(b, &f); err != nil || f.Version != 1 {
		return nil, fmt.Errorf("join tokens %s: not a version 1 token file", path)
	}
	s.recs = f.Tokens
	return s, nil
}

// Add stores a new token record.
func (s *Store) Add(r Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.save(append(s.pruned(), r))
}

// Take spends one use of tok: it must be known, unexpired and not used
// up. It returns the record as it was before the use.
func (s *Store) Take(tok enrol.Token) (Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	recs := s.pruned()
	i := slices.IndexFunc(recs, func(r Record) bool { return r.ID == tok.ID })
	if i < 0 || !tok.MatchesHash(recs[i].SecretHash) {
		return Record{}, ErrUnknownToken
	}
	r := recs[i]
	switch {
	case r.Revoked:
		return Record{}, ErrRevoked
	case !s.now().Before(r.Expires):
		return Record{}, ErrExpired
	case r.UsesLeft <= 0:
		return Record{}, ErrUsedUp
	}
	recs[i].UsesLeft--
	return r, s.save(recs)
}

// GiveBack returns a use that Take spent on a join that failed later,
// and forgets that join of device (NoteJoin) if it was noted.
func (s *Store) GiveBack(id, device string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	recs := s.pruned()
	if i := slices.IndexFunc(recs, func(r Record) bool { return r.ID == id }); i >= 0 {
		recs[i].UsesLeft++
		recs[i].Joins = slices.DeleteFunc(slices.Clone(recs[i].Joins), func(j Join) bool { return j.ID == device })
		_ = s.save(recs)
	}
}

// NoteJoin records that device joined with token id now; it is saved
// before the Pi's login is, so a hub that stops in between still knows.
func (s *Store) NoteJoin(id, device string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	recs := s.pruned()
	i := slices.IndexFunc(recs, func(r Record) bool { return r.ID == id })
	if i < 0 {
		return ErrUnknownToken
	}
	now := s.now()
	recs[i].Joins = append(slices.DeleteFunc(slices.Clone(recs[i].Joins), func(j Join) bool { return now.Sub(j.At) >= RetryWindow }),
		Join{ID: device, At: now.UTC()})
	return s.save(recs)
}

// Retry finds the join a Pi asks for again: tok is a single-use token,
// used by the id it names (or, if it names none, asked) less than
// RetryWindow ago, and not revoked since. It returns the record and the
// id.
func (s *Store) Retry(tok enrol.Token, asked string) (Record, string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.recs, func(r Record) bool { return r.ID == tok.ID })
	if i < 0 || !tok.MatchesHash(s.recs[i].SecretHash) {
		return Record{}, "", false
	}
	r := s.recs[i]
	id := r.Device
	if id == "" {
		id = asked
	}
	if r.Revoked || r.Uses != 1 || r.UsesLeft != 0 || len(r.Joins) != 1 || r.Joins[0].ID != id || s.now().Sub(r.Joins[0].At) >= RetryWindow {
		return Record{}, "", false
	}
	return r, id, true
}

// ForgetJoins ends any Retry of device: remove-pi calls it, so that a
// removed Pi's token cannot bring it back.
func (s *Store) ForgetJoins(device string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	recs, changed := s.pruned(), false
	for i := range recs {
		if slices.ContainsFunc(recs[i].Joins, func(j Join) bool { return j.ID == device }) {
			recs[i].Joins = slices.DeleteFunc(slices.Clone(recs[i].Joins), func(j Join) bool { return j.ID == device })
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return s.save(recs)
}

// ErrNoToken is a revoke of a token that cannot be used anyway: unknown,
// used up, expired or revoked already.
var ErrNoToken = errors.New("no pending join token")

// Revoke ends a pending token: later joins with it are refused as
// revoked. It returns the record as it was.
func (s *Store) Revoke(id string) (Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	recs := s.pruned()
	i := slices.IndexFunc(recs, func(r Record) bool { return r.ID == id })
	if i < 0 || recs[i].Revoked || recs[i].UsesLeft <= 0 || !s.now().Before(recs[i].Expires) {
		return Record{}, fmt.Errorf("%w %q (pifleet pis pending lists them)", ErrNoToken, id)
	}
	r := recs[i]
	recs[i].Revoked, recs[i].UsesLeft = true, 0
	return r, s.save(recs)
}

// Pending lists the tokens that can still be used, oldest first.
func (s *Store) Pending() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var out []Record
	for _, r := range s.recs {
		if r.UsesLeft > 0 && !r.Revoked && now.Before(r.Expires) {
			out = append(out, r)
		}
	}
	return out
}

// pruned is the records without those spent for longer than keepSpent.
func (s *Store) pruned() []Record {
	now := s.now()
	out := make([]Record, 0, len(s.recs)+1)
	for _, r := range s.recs {
		if now.Sub(r.Expires) < keepSpent {
			out = append(out, r)
		}
	}
	return out
}

func (s *Store) save(recs []Record) error {
	b, err := json.MarshalIndent(storeFile{Version: 1, Tokens: recs}, "", "  ")
	if err != nil {
		return err
	}
	if err := writeAtomic(s.path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("join tokens: %w", err)
	}
	s.recs = recs
	return nil
}

// writeAtomic writes path through a temporary file in its directory,
// created with mode (never wider on the way).
func writeAtomic(path string, b []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	err = tmp.Chmod(mode)
	if err == nil {
		_, err = tmp.Write(b)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
