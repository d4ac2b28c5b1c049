package broker

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.etcd.io/bbolt"
)

// retainedStore keeps the broker's retained messages in a bbolt file —
// and nothing else: pifleet's sessions are clean, so clients,
// subscriptions and in-flight messages need no persistence.
//
// Writes are batched: every retained publish (each Pi's status heartbeat
// is one) only marks its topic dirty, and one transaction every FlushEvery
// writes the latest value of each dirty topic. mochi's own bolt hook wrote
// (and fsynced) one transaction per retained message and per client
// connect; at 10,000 Pis that was most of the hub's CPU. A crash loses at
// most FlushEvery of retained updates, which live Pis re-send anyway.
//
// The file format is mochi's bolt hook's (bucket "pifleet", key
// "RET_<topic>", storage.Message), so existing broker.db files load.
type retainedStore struct {
	mqtt.HookBase
	db     *bbolt.DB
	bucket []byte
	log    *slog.Logger
	every  time.Duration

	mu    sync.Mutex
	dirty map[string]*storage.Message // nil value: delete

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	stopErr  error
}

// FlushEvery is how often retained changes are written to disk.
const FlushEvery = 2 * time.Second

func openRetainedStore(path string, log *slog.Logger, every time.Duration) (*retainedStore, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, err
	}
	s := &retainedStore{db: db, bucket: []byte("pifleet"), log: log, every: every,
		dirty: map[string]*storage.Message{}, stop: make(chan struct{}), done: make(chan struct{})}
	if err := db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(s.bucket)
		if err != nil {
			return err
		}
		// Drop what older versions stored besides retained messages
		// (clients, subscriptions, in-flight): it is never read.
		var stale [][]byte
		c := b.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if !bytes.HasPrefix(k, []byte(storage.RetainedKey+"_")) {
				stale = append(stale, bytes.Clone(k))
			}
		}
		for _, k := range stale {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		db.Close()
		return nil, err
	}
	go s.loop()
	return s, nil
}

func (s *retainedStore) ID() string { return "pifleet-retained" }

func (s *retainedStore) Provides(b byte) bool {
	return b == mqtt.OnRetainMessage || b == mqtt.OnRetainedExpired || b == mqtt.StoredRetainedMessages
}

// OnRetainMessage records the newest retained message of a topic (r == -1:
// the retained message was cleared).
func (s *retainedStore) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, r int64) {
	var m *storage.Message
	if r != -1 {
		m = &storage.Message{
			ID: retainedKey(pk.TopicName), T: storage.RetainedKey, FixedHeader: pk.FixedHeader,
			TopicName: pk.TopicName, Payload: bytes.Clone(pk.Payload), Created: pk.Created,
			Client: cl.ID, Origin: pk.Origin,
		}
	}
	s.mu.Lock()
	s.dirty[pk.TopicName] = m
	s.mu.Unlock()
}

func (s *retainedStore) OnRetainedExpired(topic string) {
	s.mu.Lock()
	s.dirty[topic] = nil
	s.mu.Unlock()
}

// StoredRetainedMessages loads every retained message at start.
func (s *retainedStore) StoredRetainedMessages() ([]storage.Message, error) {
	var out []storage.Message
	prefix := []byte(storage.RetainedKey + "_")
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(s.bucket).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var m storage.Message
			if err := m.UnmarshalBinary(v); err != nil {
				s.log.Warn("skipping an unreadable retained message in the broker store", "key", strings.ToValidUTF8(string(k), "?"), "err", err)
				continue
			}
			out = append(out, m)
		}
		return nil
	})
	return out, err
}

func retainedKey(topic string) string { return storage.RetainedKey + "_" + topic }

func (s *retainedStore) loop() {
	defer close(s.done)
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if err := s.Flush(); err != nil {
				s.log.Error("writing retained messages to the broker store failed; retrying", "err", err)
			}
		}
	}
}

// Flush writes the pending changes in one transaction. On failure they
// stay pending (unless newer ones replaced them) for the next try.
func (s *retainedStore) Flush() error {
	s.mu.Lock()
	batch := s.dirty
	s.dirty = make(map[string]*storage.Message, len(batch))
	s.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(s.bucket)
		for topic, m := range batch {
			var err error
			if m == nil {
				err = b.Delete([]byte(retainedKey(topic)))
			} else {
				data, merr := m.MarshalBinary()
				if merr != nil {
					return merr
				}
				err = b.Put([]byte(retainedKey(topic)), data)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", topic, err)
			}
		}
		return nil
	})
	if err != nil {
		s.mu.Lock()
		for topic, m := range batch {
			if _, newer := s.dirty[topic]; !newer {
				s.dirty[topic] = m
			}
		}
		s.mu.Unlock()
	}
	return err
}

// Stop writes what is pending and closes the file. It may be called more
// than once (the broker's Close and a Close that timed out both do).
func (s *retainedStore) Stop() error {
	s.stopOnce.Do(func() {
		close(s.stop)
		<-s.done
		s.stopErr = s.Flush()
		if err := s.db.Close(); s.stopErr == nil {
			s.stopErr = err
		}
	})
	return s.stopErr
}
