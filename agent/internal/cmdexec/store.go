package cmdexec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

var (
	bucketSeen = []byte("seen")
	// bucketMeta holds what the store knows about itself: keyLostAt and
	// keyLastWrite when it replaced a corrupt store (OpenStore).
	bucketMeta   = []byte("meta")
	keyLostAt    = []byte("lost_at")
	keyLastWrite = []byte("lost_last_write")
)

// Store remembers the commands this agent has accepted.
type Store struct {
	db        *bolt.DB
	recovered *Recovery
	lost      lost // zero: this store never replaced a corrupt one
}

// Recovery says what OpenStore did with a store file it found corrupt.
type Recovery struct {
	Err     error     // why the old file was unusable
	MovedTo string    // where the old file is now (for a post-mortem)
	At      time.Time // when the fresh store replaced it
}

// lost is when the ids of accepted commands were lost (a corrupt store
// replaced) and when the lost store was last written.
type lost struct{ at, lastWrite time.Time }

// fence is the creation time before which a command may be among the
// lost ids: commands created before it are refused. Every accepted
// command was recorded (a write: the file's mtime) before it ran, and
// was created at most skew after the Pi's clock at that moment; the
// lost store's last write bounds that, the replacement's time caps it
// (an mtime in the future), and nothing created before the replacement
// runs anyway.
func (l lost) fence(skew time.Duration) time.Time {
	if l.at.IsZero() {
		return time.Time{}
	}
	last := l.lastWrite
	if last.IsZero() || last.After(l.at) {
		last = l.at
	}
	if f := last.Add(skew); f.After(l.at) {
		return f
	}
	return l.at
}

// ErrStoreLocked is returned by OpenStore when another process holds the
// store (a second agent with the same data dir).
var ErrStoreLocked = errors.New("command store is in use by another process (a second agent with the same --data-dir?)")

// OpenStore opens (creating) the store file at path. Another process
// holding it makes this fail after a second instead of hanging.
//
// A file that is not a usable store (garbage, truncated, a bad page:
// bbolt refuses it, or reading it back faults or panics) is moved aside
// to path+".corrupt" and a fresh store is started; Recovered says so.
// The ids it held are lost, so the fresh store remembers when that
// happened, and the Handler refuses every command created before then
// (see lost.fence): such a command may have run already. Other errors
// (permissions, a full disk, a store in use) are returned: they are not
// the file's fault.
func OpenStore(path string) (*Store, error) {
	s, err := openChecked(path)
	if err == nil {
		return s, nil
	}
	var c *corruptError
	if !errors.As(err, &c) {
		return nil, err
	}
	rec := &Recovery{Err: c.err, MovedTo: path + ".corrupt", At: time.Now()}
	var mtime time.Time
	if st, serr := os.Stat(path); serr == nil {
		mtime = st.ModTime()
	}
	if err := os.Rename(path, rec.MovedTo); err != nil {
		return nil, fmt.Errorf("command store %s is corrupt (%v) and cannot be moved aside: %w", path, c.err, err)
	}
	s, err = openChecked(path)
	if err != nil {
		return nil, fmt.Errorf("start a fresh command store in place of the corrupt one (moved to %s): %w", rec.MovedTo, err)
	}
	s.lost = lost{at: rec.At, lastWrite: mtime}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMeta)
		if err := b.Put(keyLostAt, encodeTime(s.lost.at)); err != nil {
			return err
		}
		return b.Put(keyLastWrite, encodeTime(s.lost.lastWrite))
	})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("fresh command store %s: %w", path, err)
	}
	s.recovered = rec
	return s, nil
}

// corruptError marks an OpenStore failure that is the file's fault.
type corruptError struct{ err error }

func (c *corruptError) Error() string { return c.err.Error() }

// openChecked opens the store and reads all of it back once. It runs in
// a goroutine of its own that turns memory faults (a page past the end
// of a truncated file) into panics, and recovers them: bbolt panics or
// faults on some corrupt pages instead of returning an error.
func openChecked(path string) (*Store, error) {
	type result struct {
		s   *Store
		err error
	}
	ch := make(chan result, 1)
	go func() {
		var db *bolt.DB
		defer func() {
			if p := recover(); p != nil {
				if db != nil {
					closeQuietly(db)
				}
				ch <- result{err: &corruptError{fmt.Errorf("reading it failed: %v", p)}}
			}
		}()
		debug.SetPanicOnFault(true)
		var err error
		db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			ch <- result{err: fmt.Errorf("open %s: %w", path, ErrStoreLocked)}
			return
		case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
			ch <- result{err: &corruptError{fmt.Errorf("not a valid store: %w", err)}}
			return
		case err != nil:
			ch <- result{err: fmt.Errorf("open command store %s: %w", path, err)}
			return
		}
		s := &Store{db: db}
		if err := s.check(); err != nil {
			db.Close()
			ch <- result{err: &corruptError{err}}
			return
		}
		err = db.Update(func(tx *bolt.Tx) error {
			if _, err := tx.CreateBucketIfNotExists(bucketSeen); err != nil {
				return err
			}
			_, err := tx.CreateBucketIfNotExists(bucketMeta)
			return err
		})
		if err != nil {
			db.Close()
			ch <- result{err: fmt.Errorf("init command store %s: %w", path, err)}
			return
		}
		ch <- result{s: s}
	}()
	r := <-ch
	return r.s, r.err
}

// closeQuietly closes a db whose pages may fault.
func closeQuietly(db *bolt.DB) {
	defer func() { _ = recover() }()
	db.Close()
}

// check reads every key of the store back (which touches every page in
// use) and the meta bucket, and checks the file holds every page the
// store says it has.
func (s *Store) check() error {
	return s.db.View(func(tx *bolt.Tx) error {
		st, err := os.Stat(s.db.Path())
		if err != nil {
			return err
		}
		if tx.Size() > st.Size() {
			return fmt.Errorf("truncated: %d bytes, the store needs %d", st.Size(), tx.Size())
		}
		err = tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error { return nil })
		})
		if err != nil {
			return err
		}
		if b := tx.Bucket(bucketMeta); b != nil {
			s.lost = lost{at: decodeTime(b.Get(keyLostAt)), lastWrite: decodeTime(b.Get(keyLastWrite))}
		}
		return nil
	})
}

func encodeTime(t time.Time) []byte {
	var v [8]byte
	if !t.IsZero() {
		binary.BigEndian.PutUint64(v[:], uint64(t.UnixNano()))
	}
	return v[:]
}

func decodeTime(v []byte) time.Time {
	if len(v) != 8 || binary.BigEndian.Uint64(v) == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(v)))
}

// Recovered reports what OpenStore did with a corrupt store file; nil
// when it opened the file as it was.
func (s *Store) Recovered() *Recovery { return s.recovered }

// LogRecovery logs, as a warning, that OpenStore replaced a corrupt
// store, and what that means for commands (nothing when it did not).
func LogRecovery(log *slog.Logger, s *Store) {
	r := s.Recovered()
	if r == nil {
		return
	}
	log.Warn("the command store was corrupt: moved it aside and started a fresh one; commands created before the fence are refused (they may have run already), later ones run",
		"err", r.Err, "moved_to", r.MovedTo, "fence", s.lost.fence(defaultClockSkew).UTC().Format(time.RFC3339))
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
