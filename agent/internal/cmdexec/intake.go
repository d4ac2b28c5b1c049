package cmdexec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/pifleet/pifleet/internal/loglimit"
	"github.com/pifleet/pifleet/internal/wire"
)

// IntakeOptions bound the work a payload on the command topic costs before
// its signature is known: anyone who can publish there can send as many
// as the broker lets through (issue 14: 13,938 forged commands in 10 s
// once took an agent from 15 to 274 MB and cost it its MQTT session).
type IntakeOptions struct {
	// QueueLen and QueueBytes bound the payloads waiting for a verifier
	// (256 and 1 MiB; QueueBytes is at least wire.MaxPayload). A payload
	// that does not fit is dropped and counted (Stats.Dropped): the hub
	// sends a command again until the Pi acknowledges it.
	QueueLen   int
	QueueBytes int
	// Verifiers decode and verify queued payloads (2 goroutines, started
	// on demand and gone when the queue is empty).
	Verifiers int
	// MaxActive bounds the verified commands handled at once: running,
	// or waiting for a runner slot (8). A verifier holding a verified
	// command waits for room, so the queue behind it fills and drops.
	MaxActive int
}

func (o *IntakeOptions) ensureDefaults() {
	if o.QueueLen <= 0 {
		o.QueueLen = 256
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = 1 << 20
	}
	o.QueueBytes = max(o.QueueBytes, wire.MaxPayload)
	if o.Verifiers <= 0 {
		o.Verifiers = 2
	}
	if o.MaxActive <= 0 {
		o.MaxActive = 8
	}
}

// intake is the bounded path from the MQTT client's callback to handle:
// cheap checks, a fixed queue, a small pool of verifiers.
type intake struct {
	queue   chan queued
	bytes   atomic.Int64 // payload bytes in queue
	workers atomic.Int32 // verifiers running
	active  chan struct{}

	// Logs a flood can reach, each rate-limited (Stats counts them all).
	malformedLog, dropLog, unverifiedLog, replayLog loglimit.Limit
	// answers bounds the rejections published for commands that do not
	// verify, so a flood of them cannot make the Pi flood the broker.
	answers loglimit.Limit
}

type queued struct {
	ctx     context.Context
	payload []byte
	out     ResultSink
}

func newIntake(o IntakeOptions) *intake {
	return &intake{
		queue:         make(chan queued, o.QueueLen),
		active:        make(chan struct{}, o.MaxActive),
		malformedLog:  loglimit.Limit{Per: time.Minute, Burst: 5},
		dropLog:       loglimit.Limit{Per: time.Minute, Burst: 3},
		unverifiedLog: loglimit.Limit{Per: time.Minute, Burst: 5},
		replayLog:     loglimit.Limit{Per: time.Minute, Burst: 5},
		answers:       loglimit.Limit{Per: time.Minute, Burst: 20},
	}
}

// HandleCommand takes one command payload from the MQTT client's callback.
// It never blocks and never starts a goroutine per payload: after cheap
// checks (size, a JSON object) the payload waits in a fixed queue for one
// of a few verifiers, or is dropped and counted when the queue is full.
// Only a command that verifies (a trusted hub's signature, this device)
// gets a goroutine of its own, at most Intake.MaxActive at once.
func (h *Handler) HandleCommand(ctx context.Context, payload []byte, out ResultSink) {
	h.Stats.Received.Add(1)
	if err := precheck(payload); err != nil {
		h.Stats.Malformed.Add(1)
		h.limited(&h.in.malformedLog, h.log, slog.LevelWarn, "malformed command dropped", "err", err, "bytes", len(payload))
		return
	}
	n := int64(len(payload))
	if h.in.bytes.Add(n) > int64(h.o.Intake.QueueBytes) {
		h.in.bytes.Add(-n)
		h.drop()
		return
	}
	h.wg.Add(1)
	select {
	case h.in.queue <- queued{ctx: ctx, payload: payload, out: out}:
	default:
		h.in.bytes.Add(-n)
		h.wg.Done()
		h.drop()
		return
	}
	h.startVerifier()
}

// Wait waits until every accepted payload was handled: queued ones
// verified, commands run and their records published.
func (h *Handler) Wait() { h.wg.Wait() }

func (h *Handler) drop() {
	d := h.Stats.Dropped.Add(1)
	h.limited(&h.in.dropLog, h.log, slog.LevelWarn, "command queue full: payloads are dropped before verification (a flood on the command topic?); the hub sends its commands again",
		"dropped_total", d, "received_total", h.Stats.Received.Load())
}

// precheck refuses what cannot be a command without decoding it: nothing,
// more than any record may be, or not a JSON object.
func precheck(p []byte) error {
	if len(p) > wire.MaxPayload {
		return fmt.Errorf("%w: %d bytes, at most %d", wire.ErrTooLarge, len(p), wire.MaxPayload)
	}
	t := bytes.TrimSpace(p)
	if len(t) < 2 || t[0] != '{' || t[len(t)-1] != '}' {
		return errors.New("not a JSON object")
	}
	return nil
}

// startVerifier starts a verifier unless Intake.Verifiers already run.
func (h *Handler) startVerifier() {
	for {
		n := h.in.workers.Load()
		if int(n) >= h.o.Intake.Verifiers {
			return
		}
		if h.in.workers.CompareAndSwap(n, n+1) {
			go h.verifier()
			return
		}
	}
}

// verifier screens queued payloads until the queue is empty.
func (h *Handler) verifier() {
	for {
		select {
		case q := <-h.in.queue:
			h.in.bytes.Add(-int64(len(q.payload)))
			h.screen(q)
			continue
		default:
		}
		h.in.workers.Add(-1)
		// A payload queued after the check above, by a HandleCommand that
		// saw every verifier still running, would wait for the next one:
		// take it if no other verifier has started meanwhile.
		if len(h.in.queue) == 0 {
			return
		}
		n := h.in.workers.Load()
		if int(n) >= h.o.Intake.Verifiers || !h.in.workers.CompareAndSwap(n, n+1) {
			return // another verifier runs and will see it
		}
	}
}

// screen decodes and verifies one payload. A command that verifies goes to
// handle (which checks everything again, records it exactly once and runs
// it) in a goroutine of its own once one of Intake.MaxActive slots is free;
// anything else is settled here, cheaply and quietly.
func (h *Handler) screen(q queued) {
	defer h.wg.Done()
	cmd, err := wire.DecodeCommand(q.payload)
	if err != nil {
		h.Stats.Malformed.Add(1)
		h.limited(&h.in.malformedLog, h.log, slog.LevelWarn, "malformed command dropped", "err", err, "bytes", len(q.payload))
		return
	}
	reason := h.unverified(cmd)
	if reason == "" {
		h.in.active <- struct{}{}
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			defer func() { <-h.in.active }()
			h.handle(q.ctx, q.payload, q.out)
		}()
		return
	}
	log := h.log.With("id", cmd.ID, "hub", cmd.Hub)
	key := cmd.Hub + "/" + cmd.ID
	if seen, err := h.o.Store.Seen(key); err == nil && seen {
		// A copy of a handled command that does not verify: counted,
		// never answered (only a hub key can make the Pi publish).
		h.Stats.Replayed.Add(1)
		h.limited(&h.in.replayLog, log, slog.LevelDebug, "command already handled: redelivery or replay dropped; this copy does not verify (not signed by a trusted hub key for this Pi), so the hub is not told")
		return
	}
	h.Stats.Rejected.Add(1)
	// A stale --hub-key looks like this too, hence a warning, but one a
	// flood cannot turn into an SD card's worth of journal.
	h.limited(&h.in.unverifiedLog, log, slog.LevelWarn, "command rejected", "reason", reason)
	replyTo := cmd.Hub
	if cmd.ReplyTo != "" && wire.ValidateID(cmd.ReplyTo) == nil {
		replyTo = cmd.ReplyTo
	}
	// Answered once, not retained, and only so often: whoever sent it
	// hears why if listening, but cannot leave retained records on the
	// broker through this Pi, nor make it publish at the flood's rate.
	if ok, _ := h.in.answers.Allow(h.o.Now()); !ok {
		h.Stats.RejectionsLimited.Add(1)
		return
	}
	f := wire.Final{ID: cmd.ID, Seq: 1, Outcome: wire.OutcomeRejected, ExitCode: -1, Error: reason}
	h.wg.Add(1)
	go func() { // at most answers.Burst per minute, each bounded by the link's publish timeout
		defer h.wg.Done()
		h.publishOnce(log, q.out, replyTo, f)
	}()
}

// unverified returns why cmd does not verify (another device, or not
// signed by a trusted hub key), or "" when it does.
func (h *Handler) unverified(cmd wire.Command) string {
	if cmd.Device != h.o.Device {
		return fmt.Sprintf("command is for device %q, this is %q", cmd.Device, h.o.Device)
	}
	if !cmd.Verify(h.o.Keys) {
		return "bad signature: not signed by a hub key this Pi trusts"
	}
	return ""
}

// limited logs through l: Burst records per Per, then a note that more
// are muted, and with the next one the count of those muted.
func (h *Handler) limited(l *loglimit.Limit, log *slog.Logger, level slog.Level, msg string, args ...any) {
	if !log.Enabled(context.Background(), level) {
		return
	}
	ok, muted := l.Allow(h.o.Now())
	if !ok {
		return
	}
	if muted > 0 {
		args = append(args, "muted_before", muted)
	}
	if l.Exhausted() {
		msg += fmt.Sprintf(" (more like this are muted for %v; the command handler's stats count them)", l.Per)
	}
	log.Log(context.Background(), level, msg, args...)
}

// LogValue makes Stats a log attribute group (the agent logs it at stop).
func (s *Stats) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int64("received", s.Received.Load()), slog.Int64("dropped", s.Dropped.Load()),
		slog.Int64("malformed", s.Malformed.Load()), slog.Int64("rejected", s.Rejected.Load()),
		slog.Int64("rejections_limited", s.RejectionsLimited.Load()), slog.Int64("replayed", s.Replayed.Load()),
		slog.Int64("notices", s.Notices.Load()), slog.Int64("notices_limited", s.NoticesLimited.Load()),
		slog.Int64("ran", s.Ran.Load()))
}
