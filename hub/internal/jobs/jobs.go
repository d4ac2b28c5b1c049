// Package jobs keeps the commands in flight that several hubs share, in a
// JetStream key-value bucket, so that a command's result reaches whoever
// asked even when the hub that sent it is gone: another hub finds the job
// (who asked, where to answer) and posts the result there, once.
//
// The dispatcher (hub/internal/dispatch) stores one record per command
// when it sends it and deletes it once it has the result. A hub that gets
// a result of a job it did not send waits a moment (the sender, if alive,
// deletes the record first), then takes the job over by claiming it: a
// create-only key, so of several waiting hubs one wins.
//
// The store also keeps, in a second bucket (EventsBucket), which hub took
// which Slack event: Slack gives each Socket Mode envelope to one of the
// app's open connections, one per hub, and sends it again (maybe to
// another hub) when it saw no ack in time; ClaimEvent lets exactly one hub
// answer it.
//
// A third bucket (ThreadsBucket) keeps each Pi's alert thread in Slack
// (hub/internal/slackbot, threads.go), so that the hub that posts alerts
// next — after a restart or a change of the alerts lease — continues it.
package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the key-value bucket of the shared jobs.
const Bucket = "pifleet_jobs"

// TTL is how long a job record lives unless deleted: commands expire
// within an hour (dispatch's longest TTL), so their results are long due.
const TTL = 2 * time.Hour

// EventsBucket is the key-value bucket of the Slack events (and slash
// commands, button clicks) a hub has taken.
const EventsBucket = "pifleet_slack_events"

// EventsTTL is how long a taken event is remembered: Slack retries an
// event up to three times within about six minutes.
const EventsTTL = 15 * time.Minute

// ThreadsBucket is the key-value bucket of the Pis' alert threads.
const ThreadsBucket = "pifleet_alert_threads"

// ThreadsTTL is how long a Pi's alert thread is kept after its last
// alert: a thread is never continued after a day (slackbot.ThreadMaxAge).
const ThreadsTTL = 25 * time.Hour

// Store is the shared job records.
type Store struct {
	kv      jetstream.KeyValue
	events  jetstream.KeyValue
	threads jetstream.KeyValue
}

// Open creates or opens the bucket (replicas: 3 in a three-node cluster).
func Open(ctx context.Context, nc *nats.Conn, replicas int) (*Store, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: Bucket, TTL: TTL, History: 1,
		Storage: jetstream.FileStorage, Replicas: max(replicas, 1)})
	if err != nil {
		return nil, fmt.Errorf("jobs: bucket %s: %w", Bucket, err)
	}
	// Memory is enough: a claim matters for minutes, and losing them all
	// (every node restarted at once) risks an answer twice, not none.
	events, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: EventsBucket, TTL: EventsTTL, History: 1,
		Storage: jetstream.MemoryStorage, Replicas: max(replicas, 1)})
	if err != nil {
		return nil, fmt.Errorf("jobs: bucket %s: %w", EventsBucket, err)
	}
	threads, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: ThreadsBucket, TTL: ThreadsTTL, History: 1,
		Storage: jetstream.FileStorage, Replicas: max(replicas, 1)})
	if err != nil {
		return nil, fmt.Errorf("jobs: bucket %s: %w", ThreadsBucket, err)
	}
	return &Store{kv: kv, events: events, threads: threads}, nil
}

// OpenWhenReady opens the store, trying again until it is open or ctx
// ends, and hands it to use. A cluster that is still forming (JetStream
// has no meta leader yet, as on a slow machine or with a node down) can
// take longer than one try, and a store never opened would leave the hub
// without shared jobs and Slack event claims for good.
func OpenWhenReady(ctx context.Context, nc *nats.Conn, replicas int, log *slog.Logger, use func(*Store)) {
	for try := 1; ; try++ {
		// A request that a forming cluster drops is never answered: a short
		// try and a new request recover sooner than one long wait (seen: a
		// first try that waited its whole 30 s while the lease, trying every
		// 5 s, was taken 15 s before).
		octx, cancel := context.WithTimeout(ctx, 10*time.Second)
		s, err := Open(octx, nc, replicas)
		cancel()
		if err == nil {
			log.Info("shared job store open", "tries", try)
			use(s)
			return
		}
		if ctx.Err() != nil {
			return
		}
		log.Warn("shared job store not open yet: a result whose hub is gone will not reach its asker, and a retried Slack event may be answered twice; trying again",
			"err", err, "tries", try)
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
}

// ClaimEvent takes the Slack event key (any string: an event id, a
// trigger id) for this hub: true for exactly one caller across the hubs
// within EventsTTL.
func (s *Store) ClaimEvent(ctx context.Context, key string) (bool, error) {
	sum := sha256.Sum256([]byte(key)) // Slack's ids hold characters a key may not
	_, err := s.events.Create(ctx, "e"+hex.EncodeToString(sum[:16]), []byte("taken"))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return false, nil
	}
	return err == nil, err
}

// Put stores the record of command id.
func (s *Store) Put(ctx context.Context, id string, rec []byte) error {
	_, err := s.kv.Put(ctx, id, rec)
	return err
}

// Get returns the record of command id, or nil when there is none (done,
// or never shared).
func (s *Store) Get(ctx context.Context, id string) ([]byte, error) {
	e, err := s.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return e.Value(), nil
}

// Claim takes command id's result over for hub: true for exactly one
// caller.
func (s *Store) Claim(ctx context.Context, id, hub string) (bool, error) {
	_, err := s.kv.Create(ctx, id+".claim", []byte(hub))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return false, nil
	}
	return err == nil, err
}

// Delete forgets command id (its result is handled).
func (s *Store) Delete(ctx context.Context, id string) error {
	return s.kv.Delete(ctx, id)
}

// AlertThread returns the record of device's alert thread, or nil when
// there is none (never, or more than ThreadsTTL ago).
func (s *Store) AlertThread(ctx context.Context, device string) ([]byte, error) {
	e, err := s.threads.Get(ctx, threadKey(device))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return e.Value(), nil
}

// SetAlertThread stores the record of device's alert thread.
func (s *Store) SetAlertThread(ctx context.Context, device string, rec []byte) error {
	_, err := s.threads.Put(ctx, threadKey(device), rec)
	return err
}

// threadKey is a device's key: ids may hold dots where a key may not
// (leading, trailing, doubled).
func threadKey(device string) string {
	sum := sha256.Sum256([]byte(device))
	return "t" + hex.EncodeToString(sum[:16])
}
