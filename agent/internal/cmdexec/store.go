package cmdexec

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

var bucketSeen = []byte("seen")

// Store remembers the commands this agent has accepted.
type Store struct {
	db *bolt.DB
}

// OpenStore opens (creating) the store file at path. Another process
// holding it makes this fail after a second instead of hanging.
func OpenStore(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("open command store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketSeen)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init command store %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// Seen reports whether key was accepted before (read-only: no disk write).
func (s *Store) Seen(key string) (bool, error) {
	var seen bool
	err := s.db.View(func(tx *bolt.Tx) error {
		seen = tx.Bucket(bucketSeen).Get([]byte(key)) != nil
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("read command store: %w", err)
	}
	return seen, nil
}

// Mark records key with its command's expiry unless it is already there,
// and prunes keys whose expiry is before pruneBefore. It reports whether
// key was new: the check and the write are one transaction, so of two
// deliveries racing only one gets true.
func (s *Store) Mark(key string, expires, pruneBefore time.Time) (bool, error) {
	var fresh bool
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSeen)
		if b.Get([]byte(key)) != nil {
			return nil
		}
		var old [][]byte
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(v) != 8 || time.Unix(0, int64(binary.BigEndian.Uint64(v))).Before(pruneBefore) {
				old = append(old, append([]byte(nil), k...))
			}
		}
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], uint64(expires.UnixNano()))
		fresh = true
		return b.Put([]byte(key), v[:])
	})
	if err != nil {
		return false, fmt.Errorf("write command store: %w", err)
	}
	return fresh, nil
}

// Len returns the number of remembered commands.
func (s *Store) Len() int {
	n := 0
	s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketSeen).Stats().KeyN
		return nil
	})
	return n
}
