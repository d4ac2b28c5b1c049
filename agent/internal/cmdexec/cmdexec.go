package cmdexec

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pifleet/pifleet/agent/internal/runner"
	"github.com/pifleet/pifleet/internal/policy"
	"github.com/pifleet/pifleet/internal/wire"
)

// Runner runs a job; *runner.Runner implements it.
type Runner interface {
	Run(ctx context.Context, job runner.Job, emit runner.Emit) runner.Result
}

// Options configure a Handler.
type Options struct {
	Device     string              // this Pi's id: commands for another device are rejected
	Keys       []ed25519.PublicKey // hub public keys; a command must be signed by one
	Store      *Store              // exactly-once store (required)
	Policy     *policy.Policy      // nil: the built-in policy
	Runner     Runner              // required
	ClockSkew  time.Duration       // tolerated lead of the hub's clock over ours (30 s)
	MaxTTL     time.Duration       // longest accepted Expires-Created (1 h)
	Keep       time.Duration       // ids are kept this long after their expiry (1 h)
	ChunkBytes int                 // largest chunk data (8 KiB)
	FlushEvery time.Duration       // a partial chunk waits at most this long (200 ms)
	FinalRetry time.Duration       // how long a final is retried while the link is down (10 min)
	// NoticeEvery is the least time between two "duplicate" notices for
	// the same command id (1 min); NoticeIDs bounds how many ids that is
	// remembered for (256): with every slot taken by an id noticed less
	// than NoticeEvery ago, further notices are suppressed.
	NoticeEvery time.Duration
	NoticeIDs   int
	Now         func() time.Time
	Logger      *slog.Logger
	Intake      IntakeOptions // bounds on what a payload costs before it verifies
}

func (o *Options) ensureDefaults() error {
	if o.Store == nil || o.Runner == nil {
		return errors.New("cmdexec: Store and Runner are required")
	}
	if err := wire.ValidateID(o.Device); err != nil {
		return fmt.Errorf("cmdexec: device: %w", err)
	}
	if len(o.Keys) == 0 {
		return errors.New("cmdexec: no hub public key configured")
	}
	if o.Policy == nil {
		p, err := policy.New(policy.Config{})
		if err != nil {
			return err
		}
		o.Policy = p
	}
	if o.ClockSkew == 0 {
		o.ClockSkew = defaultClockSkew
	}
	if o.MaxTTL == 0 {
		o.MaxTTL = time.Hour
	}
	if o.Keep == 0 {
		o.Keep = time.Hour
	}
	if o.ChunkBytes == 0 {
		o.ChunkBytes = 8 << 10
	}
	if o.FlushEvery == 0 {
		o.FlushEvery = 200 * time.Millisecond
	}
	if o.FinalRetry == 0 {
		o.FinalRetry = 10 * time.Minute
	}
	if o.NoticeEvery == 0 {
		o.NoticeEvery = time.Minute
	}
	if o.NoticeIDs == 0 {
		o.NoticeIDs = 256
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Intake.ensureDefaults()
	return nil
}

const defaultClockSkew = 30 * time.Second

// Stats count what the handler did (for logs and health).
//
// Replayed counts every delivery of an id already handled, verified or
// not; Notices the "duplicate" notices published for them, and
// NoticesLimited those suppressed by the per-id rate limit. Dropped
// counts payloads dropped unread because the intake queue was full, and
// RejectionsLimited the rejections of commands that do not verify that
// were not published (rate limit).
type Stats struct {
	Received, Malformed, Replayed, Rejected, Ran atomic.Int64
	Notices, NoticesLimited                      atomic.Int64
	Dropped, RejectionsLimited                   atomic.Int64
}

// ResultSink publishes result records of a command (QoS 1) on
// wire.ResultTopic; the agent's MQTT link (*link.Link) implements it.
// PublishFinal retains the record (retain: every final but the rejection
// of a command that did not verify) until the hub clears it; PublishChunk
// and PublishNotice never retain (a non-retained publish leaves the
// broker's retained Final as it is).
type ResultSink interface {
	PublishChunk(hub, cmdID string, c wire.Chunk) error
	PublishFinal(hub, cmdID string, f wire.Final, retain bool) error
	PublishNotice(hub, cmdID string, n wire.Notice) error
}

// Handler implements daemon.CommandHandler.
type Handler struct {
	o       Options
	log     *slog.Logger
	wg      sync.WaitGroup
	notices limiter
	in      *intake
	Stats   Stats
}

// New returns a Handler.
func New(o Options) (*Handler, error) {
	if err := o.ensureDefaults(); err != nil {
		return nil, err
	}
	return &Handler{o: o, log: o.Logger.With("component", "cmdexec"),
		notices: limiter{every: o.NoticeEvery, max: o.NoticeIDs, last: map[string]time.Time{}}, in: newIntake(o.Intake)}, nil
}

// rejection is a reason to refuse a command, reported to the hub.
type rejection struct {
	reason     string
	unverified bool // not for this Pi, or not signed by a trusted hub
	// notRetained: the rejection is published once, not retained (a
	// command that may have run already: a retained rejection would
	// replace the retained final of its run).
	notRetained bool
}

func (h *Handler) handle(ctx context.Context, payload []byte, out ResultSink) {
	cmd, err := wire.DecodeCommand(payload)
	if err != nil {
		h.Stats.Malformed.Add(1)
		h.log.Warn("malformed command dropped", "err", err, "bytes", len(payload))
		return
	}
	log := h.log.With("id", cmd.ID, "hub", cmd.Hub)
	replyTo := cmd.Hub
	if cmd.ReplyTo != "" && wire.ValidateID(cmd.ReplyTo) == nil {
		replyTo = cmd.ReplyTo
	}
	key := cmd.Hub + "/" + cmd.ID
	if seen, err := h.o.Store.Seen(key); err == nil && seen {
		h.duplicate(log, out, replyTo, cmd, key, false)
		return
	}
	job, rej := h.admit(cmd, key)
	if rej != nil {
		if rej.reason == "" { // lost a race with a concurrent redelivery
			h.duplicate(log, out, replyTo, cmd, key, true) // admit verified it
			return
		}
		h.Stats.Rejected.Add(1)
		f := wire.Final{ID: cmd.ID, Seq: 1, Outcome: wire.OutcomeRejected, ExitCode: -1, Error: rej.reason}
		if rej.unverified {
			// Answered once and not retained: whoever sent it hears it
			// if listening, but cannot leave retained records on the
			// broker through this Pi, nor keep it busy retrying. The
			// warning (a stale --hub-key looks like this) is rate-limited
			// so a flood cannot write the SD card through the journal.
			if h.notices.allow("\x00unverified-warning", h.o.Now()) {
				log.Warn("command rejected (further unverified commands are logged at debug for a while)", "reason", rej.reason)
			} else {
				log.Debug("command rejected", "reason", rej.reason)
			}
			h.publishOnce(log, out, replyTo, f)
			return
		}
		log.Warn("command rejected", "reason", rej.reason)
		if rej.notRetained {
			h.publishOnce(log, out, replyTo, f)
			return
		}
		h.publishFinal(log, out, replyTo, f)
		return
	}
	h.Stats.Ran.Add(1)
	// The hub's acknowledgement: it stops sending this command again.
	// Commands reach the Pi at QoS 0; should this notice be lost, the
	// next copy gets a duplicate notice instead.
	ack := wire.Notice{V: wire.ProtocolVersion, Kind: wire.KindNotice, ID: cmd.ID, Device: h.o.Device, Reason: wire.NoticeAccepted}
	if err := out.PublishNotice(replyTo, cmd.ID, ack); err != nil {
		log.Warn("publish accepted notice (the hub sends the command again until it hears of it)", "err", err)
	}
	log.Info("running", "tool", job.Tool.Image, "argv_words", len(job.Argv))
	ch := newChunker(h.o.ChunkBytes, h.o.FlushEvery, func(c wire.Chunk) {
		c.V, c.Kind, c.ID, c.Device = wire.ProtocolVersion, wire.KindChunk, cmd.ID, h.o.Device
		if err := out.PublishChunk(replyTo, cmd.ID, c); err != nil {
			log.Warn("publish chunk", "seq", c.Seq, "err", err)
		}
	})
	res := h.o.Runner.Run(ctx, job, ch.add)
	seq := ch.close()
	f := wire.Final{ID: cmd.ID, Seq: seq + 1, Outcome: res.Outcome, ExitCode: res.ExitCode,
		DurationMS: res.Duration.Milliseconds(), Bytes: res.Bytes, Truncated: res.Truncated, Output: res.Output, ImageID: res.ImageID}
	if res.Err != nil && res.Outcome != wire.OutcomeExited {
		f.Error = res.Err.Error()
	}
	h.publishFinal(log, out, replyTo, f)
	log.Info("finished", "outcome", f.Outcome, "exit", f.ExitCode, "ms", f.DurationMS, "bytes", f.Bytes)
}

// duplicate handles a command whose id was already handled: it is never
// run again and gets no second Final (that would replace the retained
// Final of the first run). If it verifies (verified: already checked) the
// hub is told with a non-retained Notice, at most once per NoticeEvery
// per id; an unverifiable one is only logged and counted, so nobody
// without a hub key can make the Pi publish.
func (h *Handler) duplicate(log *slog.Logger, out ResultSink, replyTo string, cmd wire.Command, key string, verified bool) {
	h.Stats.Replayed.Add(1)
	if !verified && (cmd.Device != h.o.Device || !cmd.Verify(h.o.Keys)) {
		// Rate-limited: a flood of such copies must not write the SD
		// card through the journal; Stats.Replayed counts them.
		h.limited(&h.in.replayLog, log, slog.LevelDebug, "command already handled: redelivery or replay dropped; this copy does not verify (not signed by a trusted hub key for this Pi), so the hub is not told")
		return
	}
	if !h.notices.allow(key, h.o.Now()) {
		h.Stats.NoticesLimited.Add(1)
		// A replay flood of one signed command reaches this.
		h.limited(&h.in.replayLog, log, slog.LevelInfo, "command already handled: redelivery or replay dropped; notice to the hub suppressed (at most one per id per NoticeEvery)")
		return
	}
	log.Info("command already handled: redelivery or replay dropped; telling the hub")
	n := wire.Notice{V: wire.ProtocolVersion, Kind: wire.KindNotice, ID: cmd.ID, Device: h.o.Device, Reason: wire.NoticeDuplicate}
	if err := out.PublishNotice(replyTo, cmd.ID, n); err != nil {
		log.Warn("publish duplicate notice", "err", err) // informational: not retried
		return
	}
	h.Stats.Notices.Add(1)
}

// limiter lets one event per key through every `every`, remembering at
// most max keys; when all of them are recent, it lets nothing new through.
type limiter struct {
	mu    sync.Mutex
	every time.Duration
	max   int
	last  map[string]time.Time
}

func (l *limiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	recent := func(t time.Time) bool { d := now.Sub(t); return d >= 0 && d < l.every } // a clock stepped back forgets
	if t, ok := l.last[key]; ok {
		if recent(t) {
			return false
		}
	} else if len(l.last) >= l.max {
		for k, t := range l.last {
			if !recent(t) {
				delete(l.last, k)
			}
		}
		if len(l.last) >= l.max {
			return false
		}
	}
	l.last[key] = now
	return true
}

// admit runs every check, in an order that never lets an unverified
// command write to the store.
func (h *Handler) admit(cmd wire.Command, key string) (runner.Job, *rejection) {
	reject := func(format string, a ...any) (runner.Job, *rejection) {
		return runner.Job{}, &rejection{reason: fmt.Sprintf(format, a...)}
	}
	unverified := func(reason string) (runner.Job, *rejection) {
		return runner.Job{}, &rejection{reason: reason, unverified: true}
	}
	if reason := h.unverified(cmd); reason != "" {
		return unverified(reason)
	}
	now := h.o.Now()
	switch {
	case !cmd.Expires.After(cmd.Created):
		return reject("expires (%s) is not after created (%s)", cmd.Expires.Format(time.RFC3339), cmd.Created.Format(time.RFC3339))
	case cmd.Expires.Sub(cmd.Created) > h.o.MaxTTL:
		return reject("time to live %v is longer than the %v this Pi accepts", cmd.Expires.Sub(cmd.Created), h.o.MaxTTL)
	case !now.Before(cmd.Expires):
		return reject("expired at %s (Pi clock %s)", cmd.Expires.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case now.Add(h.o.ClockSkew).Before(cmd.Created):
		return reject("not valid yet: created %s but the Pi clock says %s (is the Pi's clock synchronised?)", cmd.Created.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if fence := h.o.Store.lost.fence(h.o.ClockSkew); cmd.Created.Before(fence) {
		// The ids this Pi had accepted before were lost with a corrupt
		// store (OpenStore): this one may be among them.
		return runner.Job{}, &rejection{notRetained: true, reason: fmt.Sprintf(
			"created %s, before %s, when this Pi lost its record of the commands it ran (a corrupt command store, moved aside): it may have run already, so it is not run; send it again",
			cmd.Created.UTC().Format(time.RFC3339), fence.UTC().Format(time.RFC3339))}
	}
	fresh, err := h.o.Store.Mark(key, cmd.Expires, now.Add(-h.o.Keep))
	if err != nil {
		return reject("cannot record the command, so it is not run (exactly once): %v", err)
	}
	if !fresh {
		return runner.Job{}, &rejection{}
	}
	var roles []string
	if cmd.Role != "" {
		roles = []string{cmd.Role}
	}
	d, err := h.o.Policy.Check(cmd.Tool, cmd.Argv, roles)
	if err != nil {
		return reject("policy on the Pi: %v", err)
	}
	tool, _ := h.o.Policy.Tool(cmd.Tool)
	return runner.Job{ID: cmd.ID, Tool: tool, Argv: d.Argv}, nil
}

// publishOnce publishes the rejection of a command that did not verify:
// not retained, not retried.
func (h *Handler) publishOnce(log *slog.Logger, out ResultSink, replyTo string, f wire.Final) {
	f.V, f.Kind, f.Device = wire.ProtocolVersion, wire.KindFinal, h.o.Device
	if err := out.PublishFinal(replyTo, f.ID, f, false); err != nil {
		log.Debug("publish rejection", "err", err)
	}
}

// publishFinal publishes f retained, trimming its Output so that the record fits
// in wire.MaxPayload once encoded (JSON escaping can grow it).
func (h *Handler) publishFinal(log *slog.Logger, out ResultSink, replyTo string, f wire.Final) {
	f.V, f.Kind, f.Device = wire.ProtocolVersion, wire.KindFinal, h.o.Device
	for {
		b, _ := json.Marshal(f)
		if len(b) <= wire.MaxPayload-1024 || f.Output == "" {
			break
		}
		f.Output = f.Output[:len(f.Output)/2]
		f.Truncated = true
	}
	// The final is the one record the hub must get: while the link is
	// down, keep trying (backing off) for FinalRetry.
	deadline := h.o.Now().Add(h.o.FinalRetry)
	wait := 500 * time.Millisecond
	for {
		err := out.PublishFinal(replyTo, f.ID, f, true)
		if err == nil {
			return
		}
		if !h.o.Now().Before(deadline) {
			log.Error("publish final: giving up", "err", err)
			return
		}
		log.Warn("publish final; retrying", "err", err, "in", wait)
		time.Sleep(wait)
		wait = min(wait*2, 30*time.Second)
	}
}
