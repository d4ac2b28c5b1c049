// Package lease elects one holder among several hubs for a job only one
// of them should do (posting alerts to Slack), with a key in a JetStream
// key-value bucket that expires unless its holder renews it.
//
// The rules:
//   - A hub takes the lease by creating the key (create fails while it
//     exists); the value is its id.
//   - The holder renews every TTL/3 by updating the key at the revision it
//     wrote last (so a hub that lost the key cannot overwrite a successor).
//   - The bucket's max age is TTL: a holder that dies (kill -9, partition)
//     stops renewing and its key expires TTL after its last renewal;
//     another hub takes it on its next try. A hub that stops cleanly
//     deletes the key at once.
//   - Held reports true only while the last renewal is younger than TTL/2,
//     so a holder cut off from the cluster stops acting well before the key
//     expires and another hub can take it. Around a failover no hub acts
//     for up to TTL; two hubs acting at once would need clocks (or pauses)
//     off by more than TTL/2.
package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the key-value bucket of the hubs' leases.
const Bucket = "pifleet_leases"

// Options configure a Lease.
type Options struct {
	Conn   *nats.Conn
	Name   string        // the lease, e.g. "alerts" (a key in Bucket)
	Holder string        // this hub's id
	TTL    time.Duration // 15 s
	// Replicas of the bucket: 3 in a three-node cluster, else 1 (0: 1).
	Replicas int
	Logger   *slog.Logger
	Now      func() time.Time
}

// Lease is one hub's side of a lease; Run takes and keeps it.
type Lease struct {
	o   Options
	log *slog.Logger

	mu      sync.Mutex
	held    bool
	rev     uint64
	renewed time.Time
	changes int
}

// New checks o.
func New(o Options) (*Lease, error) {
	if o.Conn == nil || o.Name == "" || o.Holder == "" {
		return nil, errors.New("lease: Conn, Name and Holder are required")
	}
	if o.TTL == 0 {
		o.TTL = 15 * time.Second
	}
	if o.TTL < time.Second {
		return nil, fmt.Errorf("lease: TTL %v under 1 s", o.TTL)
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Lease{o: o, log: o.Logger.With("component", "lease", "lease", o.Name)}, nil
}

// Held reports whether this hub holds the lease now (renewed within TTL/2).
func (l *Lease) Held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held && l.o.Now().Sub(l.renewed) < l.o.TTL/2
}

// Changes counts how often this hub took or lost the lease.
func (l *Lease) Changes() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changes
}

// Run takes the lease when it is free and keeps it until ctx ends; then it
// lets it go at once (deletes the key). Errors are logged and retried.
func (l *Lease) Run(ctx context.Context) error {
	js, err := jetstream.New(l.o.Conn)
	if err != nil {
		return fmt.Errorf("lease: %w", err)
	}
	var kv jetstream.KeyValue
	for kv == nil {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		kv, err = js.CreateOrUpdateKeyValue(cctx, jetstream.KeyValueConfig{Bucket: Bucket, TTL: l.o.TTL, History: 1,
			Storage: jetstream.MemoryStorage, Replicas: l.o.Replicas})
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil // stopped before the bucket was ready: nothing to say
			}
			l.log.Warn("lease bucket not ready; trying again", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(l.o.TTL / 3):
			}
		}
	}
	t := time.NewTicker(l.o.TTL / 3)
	defer t.Stop()
	for {
		l.try(ctx, kv)
		select {
		case <-ctx.Done():
			l.release(kv)
			return nil
		case <-t.C:
		}
	}
}

// try takes or renews the lease once.
func (l *Lease) try(ctx context.Context, kv jetstream.KeyValue) {
	l.mu.Lock()
	held, rev := l.held, l.rev
	l.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, l.o.TTL/3)
	defer cancel()
	var err error
	if held {
		rev, err = kv.Update(cctx, l.o.Name, []byte(l.o.Holder), rev)
	} else {
		rev, err = kv.Create(cctx, l.o.Name, []byte(l.o.Holder))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err == nil:
		if !l.held {
			l.changes++
			l.log.Info("this hub holds the lease now", "holder", l.o.Holder)
		}
		l.held, l.rev, l.renewed = true, rev, l.o.Now()
	case held && (errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists)):
		l.held = false
		l.changes++
		l.log.Warn("lost the lease to another hub", "err", err)
	case held:
		// Not renewed: Held turns false by itself after TTL/2; try on.
		l.log.Warn("lease not renewed", "err", err)
	case errors.Is(err, jetstream.ErrKeyExists):
		// another hub holds it
	default:
		l.log.Debug("lease not taken", "err", err)
	}
}

// release deletes the key if this hub still holds it, so another hub
// takes over without waiting for the TTL.
func (l *Lease) release(kv jetstream.KeyValue) {
	l.mu.Lock()
	held, rev := l.held, l.rev
	l.held = false
	l.mu.Unlock()
	if !held {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := kv.Delete(ctx, l.o.Name, jetstream.LastRevision(rev)); err != nil {
		l.log.Warn("lease not released (it expires by itself)", "err", err)
	}
}
