package natsfeed

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pifleet/pifleet/internal/loglimit"
	"github.com/pifleet/pifleet/internal/wire"
)

// Handler receives one retained record: its MQTT topic, its payload
// (empty: the retained message was deleted; fn may keep the slice) and
// whether it is part of a snapshot (a replayed claim) rather than live.
// Run calls it from one goroutine, in stream order (with Options.Live,
// from a second one too).
type Handler func(topic string, payload []byte, retained bool)

// Options configures a Feed. Conn or URL is required.
type Options struct {
	// Conn is used as is and not closed. It should reconnect forever
	// (nats.MaxReconnects(-1)): Run ends when it is closed.
	Conn *nats.Conn
	// URL is dialed by Run when Conn is nil, with NATSOptions
	// (credentials, TLS, name) after the feed's own: reconnect forever.
	URL         string
	NATSOptions []nats.Option

	// Filters are the MQTT topic filters to read; default every device's
	// state and status (wire.FilterAllStates, wire.FilterAllStatuses).
	Filters []string
	// OnSnapshot, when set, runs before the first record of each
	// snapshot (the hub's Fleet.Resync).
	OnSnapshot func()
	// Live also subscribes to the status subjects (not the states) on
	// core NATS and passes every non-empty status at once
	// (retained=false), from a second goroutine, besides the stream's
	// copy. A status of a new session brings it online in the view. Core NATS needs no JetStream
	// leader, so updates keep flowing while a node's loss moves the
	// stream's leader (seconds); the stream's copy still comes. The
	// handler then sees most records twice and may see an older one
	// after a newer: the hub's fleet view orders them by epoch and
	// sequence. Deletes (empty) come only from the stream.
	// A hub needs it: agents publish heartbeats that change nothing not
	// retained (PROTOCOL.md), and those never reach the stream.
	Live bool

	Logger *slog.Logger
}

// Stats are the feed's counters.
type Stats struct {
	Snapshots      int64 `json:"snapshots"`        // snapshots delivered in full
	SnapshotMsgs   int64 `json:"snapshot_msgs"`    // records passed with retained=true
	LiveMsgs       int64 `json:"live_msgs"`        // records passed with retained=false
	Forgotten      int64 `json:"forgotten"`        // topics gone during a break, passed as empty
	Reconciled     int64 `json:"reconciled"`       // deletes the stream's own clean-up hid, found by comparing subjects, passed as empty
	Restarts       int64 `json:"restarts"`         // times the feed started over after a break or error
	LastSnapshotMS int64 `json:"last_snapshot_ms"` // how long the last full snapshot took
	CoreMsgs       int64 `json:"core_msgs"`        // records passed from core NATS (Options.Live)
	CoreDropped    int64 `json:"core_dropped"`     // core messages the client dropped (slow consumer); the stream still brings them
	CoreDuplicates int64 `json:"core_duplicates"`  // live stream records not passed: core NATS had passed the same
}

// Feed reads retained device records from JetStream (see the package doc).
type Feed struct {
	opts     Options
	subjects []string
	log      *slog.Logger
	warn     loglimit.Limit

	snapshots, snapshotMsgs, liveMsgs, forgotten, restarts, lastSnapMS, coreMsgs atomic.Int64
	coreSubs                                                                     []*nats.Subscription

	mu       sync.Mutex // guards coreSubs and coreLast
	coreLast map[string]uint64
	seed     maphash.Seed
	coreDup  atomic.Int64

	// known holds the topics fn last got a value for, with the subject
	// of their record (Run's goroutine only).
	known map[string]string
	// reconcileEvery is how often a live session compares known with the
	// stream's subjects (reconcileInterval; tests shorten it).
	reconcileEvery time.Duration
	reconciled     atomic.Int64
}

// heartbeat is how often the server tells an idle consumer it is alive;
// two missed ones (the consumer's node was lost) start the feed over.
const heartbeat = 2 * time.Second

// reconcileInterval is how often a live feed compares the topics it holds
// with the stream's subjects. nats-server stores an empty retained publish
// (a delete) as a record and then deletes that record itself, at once and
// asynchronously (mqtt.go: "Delete this very message we just processed"):
// a consumer that is behind never gets it, and the view would keep a
// device the operator forgot (seen in CI: TestDeleteArrivesEmpty). A topic
// the handler holds that the stream no longer has is then passed as
// deleted. One look costs a list of the state subjects (about 60 bytes a
// Pi): at 10,000 Pis 0.9 % of a core for states and statuses measured,
// states alone about half.
const reconcileInterval = 30 * time.Second

// snapshotIdle is how long a snapshot may wait for its next record before
// the feed asks the server whether any are left.
const snapshotIdle = time.Second

// Backoff between attempts after an error (a break restarts at once).
const (
	minBackoff = 250 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// New checks opts and builds a feed (nothing runs until Run).
func New(opts Options) (*Feed, error) {
	if opts.Conn == nil && opts.URL == "" {
		return nil, errors.New("natsfeed: neither a NATS connection nor a URL")
	}
	if len(opts.Filters) == 0 {
		opts.Filters = []string{wire.FilterAllStates, wire.FilterAllStatuses}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	f := &Feed{opts: opts, log: opts.Logger.With("component", "natsfeed"),
		warn: loglimit.Limit{Per: time.Minute, Burst: 5}, known: map[string]string{}, reconcileEvery: reconcileInterval,
		coreLast: map[string]uint64{}, seed: maphash.MakeSeed()}
	for _, filter := range opts.Filters {
		s, err := filterSubject(filter)
		if err != nil {
			return nil, fmt.Errorf("natsfeed: %w", err)
		}
		f.subjects = append(f.subjects, s)
	}
	return f, nil
}

// Stats returns the feed's counters (safe at any time).
func (f *Feed) Stats() Stats {
	st := Stats{Snapshots: f.snapshots.Load(), SnapshotMsgs: f.snapshotMsgs.Load(), LiveMsgs: f.liveMsgs.Load(),
		Forgotten: f.forgotten.Load(), Reconciled: f.reconciled.Load(), Restarts: f.restarts.Load(), LastSnapshotMS: f.lastSnapMS.Load(), CoreMsgs: f.coreMsgs.Load(),
		CoreDuplicates: f.coreDup.Load()}
	for _, sub := range f.subs() {
		if n, err := sub.Dropped(); err == nil {
			st.CoreDropped += int64(n)
		}
	}
	return st
}

// Run feeds fn until ctx ends (then it returns nil) or the NATS connection
// is closed for good. Errors on the way are logged and retried.
func (f *Feed) Run(ctx context.Context, fn Handler) error {
	nc := f.opts.Conn
	if nc == nil {
		var err error
		nc, err = nats.Connect(f.opts.URL, append([]nats.Option{nats.Name("pifleet-hub-natsfeed"),
			nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true)}, f.opts.NATSOptions...)...)
		if err != nil {
			return fmt.Errorf("natsfeed: connect to %s: %w", f.opts.URL, err)
		}
		defer nc.Close()
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("natsfeed: %w", err)
	}
	events := nc.StatusChanged(nats.CONNECTED, nats.CLOSED)
	defer nc.RemoveStatusListener(events)
	if f.opts.Live {
		stop, err := f.runCore(nc, fn)
		if err != nil {
			return err
		}
		defer stop()
	}
	backoff := minBackoff
	for {
		full, err := f.session(ctx, js, fn, events)
		switch {
		case ctx.Err() != nil:
			return nil
		case nc.IsClosed():
			return errors.New("natsfeed: the NATS connection was closed")
		}
		if full {
			backoff = minBackoff // a snapshot got through: this is a new break, not a loop
		}
		f.restarts.Add(1)
		if ok, muted := f.warn.Allow(time.Now()); ok {
			f.log.Warn("retained feed starting over", "err", err, "in", backoff, "muted_before", muted)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// session reads one snapshot and then live records until a break, an
// error or the end of ctx. full reports whether the snapshot completed.
func (f *Feed) session(ctx context.Context, js jetstream.JetStream, fn Handler, events <-chan nats.Status) (full bool, err error) {
	for len(events) > 0 {
		<-events // a reconnect before this snapshot is covered by it
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	// MaxResetAttempts: nats.go re-creates a lost ordered consumer by
	// itself, by default for ever (seen in CI: a feed that never got
	// another record after the consumer's node was stopped, with nothing
	// logged). A few tries, then the error comes back here and Run starts
	// over with a fresh consumer, a snapshot and a log line.
	cons, err := js.OrderedConsumer(cctx, RetainedStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: f.subjects, DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy, MaxResetAttempts: 3})
	cancel()
	if err != nil {
		return false, fmt.Errorf("consume %s: %w", RetainedStream, err)
	}
	pending := cons.CachedInfo().NumPending
	it, err := cons.Messages(jetstream.PullHeartbeat(heartbeat))
	if err != nil {
		return false, fmt.Errorf("consume %s: %w", RetainedStream, err)
	}
	brk := make(chan error, 1)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
		case s := <-events:
			brk <- fmt.Errorf("NATS connection %s", s)
		case <-done:
		}
		it.Stop()
	}()

	snap := f.startSnapshot(fn, pending)
	var consumer string
	nextLook := time.Now().Add(f.reconcileEvery)
	for {
		wait := snapshotIdle
		if snap == nil {
			if time.Now().After(nextLook) {
				if err := f.reconcile(ctx, js, fn); err != nil {
					f.log.Debug("retained topics not compared with the stream", "err", err)
				}
				nextLook = time.Now().Add(f.reconcileEvery)
			}
			wait = time.Until(nextLook)
		}
		msg, err := it.Next(jetstream.NextMaxWait(max(wait, time.Millisecond)))
		if snap == nil && errors.Is(err, nats.ErrTimeout) {
			continue // time to compare with the stream
		}
		if snap != nil && errors.Is(err, nats.ErrTimeout) {
			// The records still pending when the last one was sent were
			// removed since (deleted ones): nothing says "0 pending" now.
			if ci, err := cons.Info(ctx); err == nil && ci.NumPending == 0 {
				snap = f.endSnapshot(fn, snap)
			}
			continue
		}
		if err != nil {
			select {
			case err = <-brk:
			default:
			}
			return snap == nil, err
		}
		meta, err := msg.Metadata()
		if err != nil {
			return snap == nil, fmt.Errorf("record from %s: %w", RetainedStream, err)
		}
		if consumer == "" {
			consumer = meta.Consumer
		} else if meta.Consumer != consumer {
			return snap == nil, errors.New("the ordered consumer was re-created (stream leader change or missed heartbeats)")
		}
		f.deliver(fn, topicOf(msg), msg.Subject(), msg.Data(), snap)
		if snap != nil && meta.NumPending == 0 {
			snap = f.endSnapshot(fn, snap)
		}
	}
}

// snapshot tracks one snapshot in progress.
type snapshot struct {
	start time.Time
	seen  map[string]struct{} // topics with a value in this snapshot
}

// startSnapshot begins a snapshot of pending records; nil when there are
// none (the snapshot is complete at once).
func (f *Feed) startSnapshot(fn Handler, pending uint64) *snapshot {
	if f.opts.OnSnapshot != nil {
		f.opts.OnSnapshot()
	}
	s := &snapshot{start: time.Now(), seen: map[string]struct{}{}}
	if pending == 0 {
		return f.endSnapshot(fn, s)
	}
	return s
}

// endSnapshot passes every topic that had a value before and is absent
// from the snapshot as deleted, and returns nil (no snapshot in progress).
func (f *Feed) endSnapshot(fn Handler, s *snapshot) *snapshot {
	for topic := range f.known {
		if _, ok := s.seen[topic]; !ok {
			delete(f.known, topic)
			f.forgotten.Add(1)
			fn(topic, nil, true)
		}
	}
	f.snapshots.Add(1)
	f.lastSnapMS.Store(time.Since(s.start).Milliseconds())
	return nil
}

func (f *Feed) deliver(fn Handler, topic, subject string, payload []byte, snap *snapshot) {
	if len(payload) == 0 {
		delete(f.known, topic)
	} else {
		f.known[topic] = subject
		if snap != nil {
			snap.seen[topic] = struct{}{}
		}
	}
	if snap != nil {
		f.snapshotMsgs.Add(1)
	} else {
		f.liveMsgs.Add(1)
		if f.opts.Live && f.coreHad(topic, payload) {
			f.coreDup.Add(1) // the same record came from core NATS already
			return
		}
	}
	fn(topic, payload, snap != nil)
}

// reconcile passes as deleted every known state topic whose subject the
// stream no longer holds (see reconcileInterval); statuses are not
// compared, as an empty status changes nothing in the hub's view. Records the session has not
// read yet are harmless: a topic added since is not known yet, and a
// topic deleted and written again is in the stream.
func (f *Feed) reconcile(ctx context.Context, js jetstream.JetStream, fn Handler) error {
	if len(f.known) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, RetainedStream)
	if err != nil {
		return err
	}
	have := map[string]struct{}{}
	for _, filter := range f.subjects {
		if !strings.HasSuffix(filter, ".state") {
			continue // only a state's delete changes the view (a cleared status keeps what it knew); half the cost
		}
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(filter))
		if err != nil {
			return err
		}
		for subj := range info.State.Subjects {
			have[subj] = struct{}{}
		}
	}
	for topic, subj := range f.known {
		if _, ok := have[subj]; !ok && strings.HasSuffix(subj, ".state") {
			delete(f.known, topic)
			f.reconciled.Add(1)
			f.liveMsgs.Add(1)
			fn(topic, nil, false)
		}
	}
	return nil
}

// coreHad reports whether payload is the last record core NATS passed
// for topic (Options.Live), and forgets it: the stream's live copy of a
// record the handler has is not passed again (half the hub's decoding).
func (f *Feed) coreHad(topic string, payload []byte) bool {
	h := maphash.Bytes(f.seed, payload)
	f.mu.Lock()
	defer f.mu.Unlock()
	if last, ok := f.coreLast[topic]; ok && last == h {
		delete(f.coreLast, topic)
		return true
	}
	return false
}

// coreSaw remembers the last record core NATS passed for topic.
func (f *Feed) coreSaw(topic string, payload []byte) {
	h := maphash.Bytes(f.seed, payload)
	f.mu.Lock()
	f.coreLast[topic] = h
	f.mu.Unlock()
}

// topicOf is a record's MQTT topic: its header, else its subject mapped
// back.
func topicOf(m interface {
	Headers() nats.Header
	Subject() string
}) string {
	if t := m.Headers().Get(headerTopic); t != "" {
		return t
	}
	return subjectTopic(m.Subject())
}

// coreBuffer is how many core messages may wait for the handler; beyond
// it the client drops them (counted), and the stream brings them anyway.
const coreBuffer = 16384

// runCore subscribes to the feed's subjects on core NATS and passes every
// non-empty message to fn from its own goroutine until stop.
func (f *Feed) runCore(nc *nats.Conn, fn Handler) (stop func(), err error) {
	ch := make(chan *nats.Msg, coreBuffer)
	var subs []*nats.Subscription
	for _, s := range f.subjects {
		if strings.HasSuffix(s, ".state") {
			// States (births, wills) only from the stream, in its order:
			// a forged or stale "lost" passed after the Pi's newer
			// "online" of the same session would end that session in
			// the view for good (seen in TestScaleNATS).
			continue
		}
		sub, err := nc.ChanSubscribe(strings.TrimPrefix(s, retainedPrefix), ch)
		if err != nil {
			for _, sub := range subs {
				sub.Unsubscribe()
			}
			return nil, fmt.Errorf("natsfeed: core subscription: %w", err)
		}
		subs = append(subs, sub)
	}
	f.mu.Lock()
	f.coreSubs = subs
	f.mu.Unlock()
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case m := <-ch:
				if len(m.Data) == 0 {
					continue // deletes come from the stream alone
				}
				f.coreMsgs.Add(1)
				topic := subjectTopic(m.Subject)
				f.coreSaw(topic, m.Data)
				fn(topic, m.Data, false)
			case <-done:
				return
			}
		}
	}()
	return func() {
		for _, sub := range subs {
			sub.Unsubscribe()
		}
		close(done)
		<-finished
	}, nil
}

func (f *Feed) subs() []*nats.Subscription {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.coreSubs
}
