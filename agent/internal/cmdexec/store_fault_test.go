package cmdexec

// The command store against real damaged files (issue 14's fault suite):
// a store that bbolt refuses, or that faults when read, must not keep
// the agent from starting, and must not let a command run twice.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/pifleet/pifleet/internal/policy"
	"github.com/pifleet/pifleet/internal/wire"
)

// storeWithIDs writes a real store holding n ids (several pages) and
// closes it.
func storeWithIDs(t *testing.T, path string, n int) {
	t.Helper()
	st, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	exp := encodeTime(time.Now().Add(time.Hour))
	err = st.db.Update(func(tx *bolt.Tx) error { // one transaction: fast
		for i := range n {
			if err := tx.Bucket(bucketSeen).Put([]byte("hub1/c"+strings.Repeat("0", 20)+itoa(i)), exp); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

func itoa(i int) string {
	var b []byte
	for {
		b = append([]byte{byte('0' + i%10)}, b...)
		if i /= 10; i == 0 {
			return string(b)
		}
	}
}

// rootPage returns the page id of the "seen" bucket's root in a closed
// store.
func rootPage(t *testing.T, path string) uint64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var root uint64
	db.View(func(tx *bolt.Tx) error {
		root = uint64(tx.Bucket(bucketSeen).Root())
		return nil
	})
	if root < 2 {
		t.Fatalf("the seen bucket is inline (root %d): store too small for this test", root)
	}
	return root
}

// faultFixture is a handler on the store at path with the real clock.
type faultFixture struct {
	pub   ed25519.PublicKey
	key   ed25519.PrivateKey
	store *Store
	run   *countingRunner
	h     *Handler
}

func openFault(t *testing.T, path string, pub ed25519.PublicKey, key ed25519.PrivateKey) *faultFixture {
	t.Helper()
	st, err := OpenStore(path)
	if err != nil {
		t.Fatalf("the agent does not start: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	p, _ := policy.New(policy.Config{})
	f := &faultFixture{pub: pub, key: key, store: st, run: &countingRunner{}}
	f.h, err = New(Options{Device: "pi1", Keys: []ed25519.PublicKey{pub}, Store: st, Policy: p, Runner: f.run, FlushEvery: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// send delivers a signed aws command created at created and returns its
// final.
func (f *faultFixture) send(t *testing.T, id string, created time.Time) (wire.Final, bool) {
	t.Helper()
	c := wire.Command{V: 1, ID: id, Hub: "hub1", Device: "pi1", ReplyTo: "hub1",
		Created: created.UTC(), Expires: created.Add(time.Hour).UTC(), Tool: "aws", Argv: []string{"ec2", "describe-instances"}}
	c.Sign(f.key)
	b, _ := jsonMarshal(c)
	var s sink
	f.h.HandleCommand(context.Background(), b, &s)
	f.h.Wait()
	_, finals := s.snapshot()
	switch {
	case len(finals) == 0 && len(s.noticesSnapshot(wire.NoticeDuplicate)) == 1:
		return wire.Final{Error: "duplicate"}, false
	case len(finals) != 1:
		t.Fatalf("command %s: %d finals, want 1", id, len(finals))
	}
	return finals[0], s.retained[0]
}

func TestCorruptStoreIsMovedAsideAndNothingRunsTwice(t *testing.T) {
	page := os.Getpagesize()
	random := func(n int) []byte { b := make([]byte, n); rand.Read(b); return b }
	cases := []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"garbage", func(t *testing.T, path string) { os.WriteFile(path, random(64<<10), 0o600) }},
		{"a few bytes", func(t *testing.T, path string) { os.WriteFile(path, []byte("pifleet\n"), 0o600) }},
		{"zeros", func(t *testing.T, path string) { os.WriteFile(path, make([]byte, 32<<10), 0o600) }},
		{"both meta pages overwritten", func(t *testing.T, path string) {
			storeWithIDs(t, path, 2000)
			f, _ := os.OpenFile(path, os.O_WRONLY, 0)
			f.WriteAt(random(2*page), 0)
			f.Close()
		}},
		{"truncated", func(t *testing.T, path string) {
			storeWithIDs(t, path, 2000)
			os.Truncate(path, int64(3*page))
		}},
		{"its last page in use cut off", func(t *testing.T, path string) {
			storeWithIDs(t, path, 2000)
			db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			var size int64
			db.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil }) // the high-water mark
			db.Close()
			os.Truncate(path, size-int64(page))
		}},
		{"a page in use overwritten", func(t *testing.T, path string) {
			storeWithIDs(t, path, 2000)
			root := rootPage(t, path)
			f, _ := os.OpenFile(path, os.O_WRONLY, 0)
			f.WriteAt(bytes.Repeat([]byte{0xa5}, page), int64(root)*int64(page))
			f.Close()
		}},
	}
	pub, key, _ := ed25519.GenerateKey(nil)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "commands.db")
			tc.damage(t, path)
			// The damage happened long ago (the usual case: found at boot).
			old := time.Now().Add(-time.Hour)
			os.Chtimes(path, old, old)
			damaged, _ := os.ReadFile(path)
			start := time.Now()

			f := openFault(t, path, pub, key)
			if r := f.store.Recovered(); r == nil || r.Err == nil || r.MovedTo != path+".corrupt" {
				t.Errorf("Recovered() = %+v, want the reason and where the file went", r)
			} else {
				t.Logf("found corrupt: %v", r.Err)
			}
			if kept, err := os.ReadFile(path + ".corrupt"); err != nil || !bytes.Equal(kept, damaged) {
				t.Errorf("the corrupt store is not kept as %s.corrupt (%v)", filepath.Base(path), err)
			}
			// A command from before the start may be one of the lost ids:
			// refused, not run, and not retained (a retained rejection
			// would replace the real final of its first run).
			fin, retained := f.send(t, "before", start.Add(-time.Second))
			if fin.Outcome != wire.OutcomeRejected || !strings.Contains(fin.Error, "may have run already") || retained || f.run.count() != 0 {
				t.Errorf("a command created before the start: final %+v retained=%v, ran %d; want rejected (may have run already), not retained, not run",
					fin, retained, f.run.count())
			}
			// A command created after the start runs.
			if fin, _ := f.send(t, "after", time.Now()); fin.Outcome != wire.OutcomeExited || f.run.count() != 1 {
				t.Errorf("a command created after the start: final %+v, ran %d; want it run", fin, f.run.count())
			}
			// The next start opens the fresh store as it is and still
			// refuses what the lost store may have held.
			f.store.Close()
			f = openFault(t, path, pub, key)
			if r := f.store.Recovered(); r != nil {
				t.Errorf("the fresh store was found corrupt at the next start: %v", r.Err)
			}
			if _, err := os.Stat(path + ".corrupt"); err != nil {
				t.Errorf("the corrupt store is gone: %v", err)
			}
			if fin, _ := f.send(t, "before2", start.Add(-time.Minute)); fin.Outcome != wire.OutcomeRejected || f.run.count() != 0 {
				t.Errorf("after a second restart, a command created before the first: final %+v, ran %d; want rejected", fin, f.run.count())
			}
			if fin, _ := f.send(t, "after", time.Now()); fin.Error != "duplicate" || f.run.count() != 0 {
				t.Errorf("after a second restart, the command run after the first: %+v, ran %d; want a duplicate, not run", fin, f.run.count())
			}
		})
	}
}

// A store that was written moments before it was found corrupt may hold
// commands created up to the clock-skew tolerance later: those are
// refused too.
func TestCorruptStoreRecentlyWrittenFencesTheSkew(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	path := filepath.Join(t.TempDir(), "commands.db")
	os.WriteFile(path, make([]byte, 32<<10), 0o600)
	f := openFault(t, path, pub, key)
	if fin, _ := f.send(t, "skew", time.Now().Add(10*time.Second)); fin.Outcome != wire.OutcomeRejected || f.run.count() != 0 {
		t.Errorf("a command created 10 s ahead of a store written just now: %+v; want rejected (within the 30 s skew)", fin)
	}
	// Half a minute later (the handler's clock), the fence is behind.
	p, _ := policy.New(policy.Config{})
	h, err := New(Options{Device: "pi1", Keys: []ed25519.PublicKey{pub}, Store: f.store, Policy: p, Runner: f.run,
		Now: func() time.Time { return time.Now().Add(31 * time.Second) }})
	if err != nil {
		t.Fatal(err)
	}
	f.h = h
	if fin, _ := f.send(t, "later", time.Now().Add(31*time.Second)); fin.Outcome != wire.OutcomeExited {
		t.Errorf("a command created after the fence: %+v; want it run", fin)
	}
}

// What is not the file's fault is not taken for corruption: a store in
// use by another agent, and one that was closed normally, stay where
// they are.
func TestStoreNotCorruptStaysPut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "commands.db")
	storeWithIDs(t, path, 10)
	st, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := OpenStore(path); !errors.Is(err, ErrStoreLocked) {
		t.Errorf("a store in use: got %v, want ErrStoreLocked", err)
	}
	if _, err := os.Stat(path + ".corrupt"); err == nil {
		t.Error("a store in use was moved aside")
	}
	if st.Recovered() != nil || st.Len() != 10 {
		t.Errorf("a sound store: Recovered %+v, %d ids; want as it was", st.Recovered(), st.Len())
	}
}
