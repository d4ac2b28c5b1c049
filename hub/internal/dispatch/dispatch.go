package dispatch

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pifleet/pifleet/hub/internal/chat"
	"github.com/pifleet/pifleet/internal/loglimit"
	"github.com/pifleet/pifleet/internal/policy"
	"github.com/pifleet/pifleet/internal/wire"
)

// Fleet is what the dispatcher needs from the fleet view.
type Fleet interface {
	// Resolve turns a target (id, comma list, label, "all") into ids.
	Resolve(target string) ([]string, error)
	// Online reports whether the device is connected now.
	Online(id string) bool
}

// JobStore shares commands in flight between the hubs of one ReplyTo;
// *jobs.Store implements it. Records are opaque bytes to the store.
type JobStore interface {
	Put(ctx context.Context, id string, rec []byte) error
	Get(ctx context.Context, id string) ([]byte, error) // nil, nil: no such job
	Claim(ctx context.Context, id, hub string) (bool, error)
	Delete(ctx context.Context, id string) error
}

// sharedJob is a command's record in the JobStore.
type sharedJob struct {
	record
	Owner string `json:"owner"` // the hub that sent it
}

// Publisher publishes an MQTT message and returns once the broker has it
// (QoS 1) or it failed.
type Publisher interface {
	Publish(topic string, qos byte, retained bool, payload []byte) error
}

// Options configure a Dispatcher.
type Options struct {
	Hub       string             // this hub's id (result topics are addressed to it)
	Key       ed25519.PrivateKey // signing key
	Fleet     Fleet
	Publisher Publisher
	Policy    *policy.Policy // nil: the built-in policy
	// TTL is how long a command may wait to start on the Pi (60 s).
	TTL time.Duration
	// Wait is how long Handle waits for all results before answering
	// with what it has (2 min); later results go to OnLateResult.
	Wait time.Duration
	// AllowOffline sends to Pis the fleet says are offline (they run it
	// only if they come back before the command expires).
	AllowOffline bool
	ConfirmTTL   time.Duration // how long a confirmation stays valid (5 min)
	FirstLines   int           // lines of output shown per Pi inline (6)
	// StateFile, when set, remembers commands in flight across a hub
	// restart (small JSON, written when a command is sent or finishes).
	StateFile string
	// OnLateResult receives results that arrive after Handle answered or
	// after a hub restart (e.g. post them to the request's channel).
	OnLateResult func(Result)
	// OnChunk, when set, sees each chunk as it arrives (live streaming).
	OnChunk func(device, id string, c wire.Chunk)
	// ReplyTo is where Pis send results (result/<ReplyTo>/<id>); default
	// Hub. Hubs sharing a fleet (a cluster) share one ReplyTo and a Jobs
	// store: each gets every result, and the one that sent the command
	// answers — or, when that hub is gone, another one does.
	ReplyTo string
	// Jobs, when set, shares the commands in flight with the other hubs
	// of ReplyTo (hub/internal/jobs).
	Jobs JobStore
	// TakeOverAfter is how long a hub waits before it takes over the
	// result of a job another hub sent (5 s): the sender, if alive, has
	// answered and deleted the job by then.
	TakeOverAfter time.Duration
	// Resend is the wait before each further copy of a command its Pi
	// has not acknowledged yet, the last repeated until it expires
	// (1 s, 2 s, 4 s, 8 s). Pis read commands at QoS 0: see wire.NoticeAccepted.
	Resend []time.Duration
	Now    func() time.Time
	Logger *slog.Logger
}

func (o *Options) ensureDefaults() error {
	if err := wire.ValidateID(o.Hub); err != nil {
		return fmt.Errorf("dispatch: hub id: %w", err)
	}
	if len(o.Key) != ed25519.PrivateKeySize {
		return errors.New("dispatch: no signing key")
	}
	if o.Fleet == nil || o.Publisher == nil {
		return errors.New("dispatch: Fleet and Publisher are required")
	}
	if o.Policy == nil {
		p, err := policy.New(policy.Config{})
		if err != nil {
			return err
		}
		o.Policy = p
	}
	if o.TTL == 0 {
		o.TTL = 60 * time.Second
	}
	if o.Wait == 0 {
		o.Wait = 2 * time.Minute
	}
	if o.ConfirmTTL == 0 {
		o.ConfirmTTL = 5 * time.Minute
	}
	if o.FirstLines == 0 {
		o.FirstLines = 6
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.OnLateResult == nil {
		o.OnLateResult = func(Result) {}
	}
	if o.ReplyTo == "" {
		o.ReplyTo = o.Hub
	}
	if err := wire.ValidateID(o.ReplyTo); err != nil {
		return fmt.Errorf("dispatch: reply-to: %w", err)
	}
	if o.TakeOverAfter == 0 {
		o.TakeOverAfter = 5 * time.Second
	}
	if len(o.Resend) == 0 {
		o.Resend = []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
	}
	return nil
}

// Request is what the dispatcher remembers about who asked (chat.Request
// without the text's secrets: only what is needed to answer later).
type Request struct {
	User    string `json:"user"`
	Channel string `json:"channel,omitempty"`
	Source  string `json:"source,omitempty"`
	Text    string `json:"text,omitempty"`
	Thread  string `json:"thread,omitempty"` // chat.Request.Thread: where a late result goes
}

// Result is one Pi's answer to one command.
type Result struct {
	ID      string
	Device  string
	Tool    string
	Argv    []string
	Final   wire.Final
	Output  string // reassembled from the chunks, or Final.Output
	Request Request
	// Missing is set when no final arrived in time (Final is empty).
	Missing bool
}

// Stats counts what the dispatcher saw on its result topics.
type Stats struct {
	// Duplicates: Pis reported (wire.NoticeDuplicate) a redelivery of a
	// command in flight, which they did not run again.
	Duplicates int64
	// StrayDuplicates: the same for a command not in flight (finished,
	// forgotten, or never sent by this hub): someone replayed an old
	// command, or the broker redelivered one after its final.
	StrayDuplicates int64
	// BadRecords: result messages dropped because their topic or payload
	// did not parse (logged too).
	BadRecords int64
	// Resent: further copies of commands sent because their Pi had not
	// acknowledged them yet; Accepted: acknowledgements (wire.NoticeAccepted).
	Resent, Accepted int64
	// TakenOver: results of another hub's commands this hub answered
	// because that hub had not (Options.Jobs).
	TakenOver int64
	// BackgroundDropped: clears and take-overs not started because
	// maxBackground were running (a flood of finals).
	BackgroundDropped int64
	// Mismatched: records whose id or device is not their topic's
	// (forged, or a broken agent); dropped.
	Mismatched int64
	// Unknown: chunks and finals of commands not in flight (sent before a
	// restart without state, finished already, or never sent by this
	// hub: the rejection of a forged command that named it).
	Unknown int64
	// OtherNotices: notices of a reason this hub does not know.
	OtherNotices int64
}

// Dispatcher sends commands and collects their results.
type Dispatcher struct {
	o   Options
	log *slog.Logger

	mu       sync.Mutex
	inflight map[string]*flight  // by command id
	confirms map[string]*pending // by token
	stats    Stats

	// oddLog bounds the log records about unexpected, forged or malformed
	// result messages (anyone who can publish on a result topic can send
	// them as fast as the broker forwards); Stats counts them all.
	oddLog loglimit.Limit
	// bg bounds the goroutines result messages start (clearing a retained
	// final, taking over another hub's result): a flood of forged finals
	// must not start one each.
	bg chan struct{}
}

// maxBackground is how many such goroutines may run at once.
const maxBackground = 256

// background runs fn in a goroutine when fewer than maxBackground run,
// and otherwise drops it (counted in Stats.BackgroundDropped).
func (d *Dispatcher) background(fn func()) {
	select {
	case d.bg <- struct{}{}:
		go func() {
			defer func() { <-d.bg }()
			fn()
		}()
	default:
		d.count(&d.stats.BackgroundDropped)
		d.odd(slog.LevelWarn, "too many result messages at once: one dropped (a flood of forged results?)")
	}
}

// Stats returns the dispatcher's counters.
func (d *Dispatcher) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// flight is one command to one Pi.
type flight struct {
	rec    record
	chunks map[uint64]wire.Chunk
	done   chan Result // buffered 1; nil once Handle stopped waiting
	// track reports the Pi's final to whoever asked (Slack edits its
	// placeholder with the run's status); nil after a restart, and once
	// the answer has gone.
	track *tracker
	// unacked is closed when the Pi acknowledged the command (any record
	// for its id) or the flight ends: it stops the re-sends. nil after a
	// restart (nothing re-sends those).
	unacked chan struct{}
}

// acked stops f's re-sends (d.mu held).
func (f *flight) acked() {
	if f.unacked != nil {
		close(f.unacked)
		f.unacked = nil
	}
}

// record is what survives a restart in the state file.
type record struct {
	ID      string    `json:"id"`
	Device  string    `json:"device"`
	Tool    string    `json:"tool"`
	Argv    []string  `json:"argv"`
	Expires time.Time `json:"expires"`
	Request Request   `json:"request"`
}

type pending struct {
	user    string
	req     chat.Request
	tool    string
	target  string
	dec     policy.Decision
	expires time.Time
}

// New returns a Dispatcher, loading commands in flight from StateFile.
func New(o Options) (*Dispatcher, error) {
	if err := o.ensureDefaults(); err != nil {
		return nil, err
	}
	d := &Dispatcher{o: o, log: o.Logger.With("component", "dispatch"),
		inflight: map[string]*flight{}, confirms: map[string]*pending{}, oddLog: loglimit.Limit{Per: time.Minute, Burst: 20},
		bg: make(chan struct{}, maxBackground)}
	recs, err := loadState(o.StateFile)
	if err != nil {
		d.log.Warn("state file unreadable; results of commands sent before the restart will arrive without their request", "err", err)
	}
	for _, r := range recs {
		d.inflight[r.ID] = &flight{rec: r, chunks: map[uint64]wire.Chunk{}}
	}
	return d, nil
}

// Handle answers `aws <target> <args…>` (the aws tool). Register it with
// the chat engine for the verb "aws".
func (d *Dispatcher) Handle(ctx context.Context, req chat.Request, args []string) chat.Reply {
	return d.handle(ctx, "aws", req, args)
}

// ForTool returns a chat handler for another configured tool (gcloud, az).
func (d *Dispatcher) ForTool(tool string) chat.Handler { return toolHandler{d, tool} }

type toolHandler struct {
	d    *Dispatcher
	tool string
}

func (t toolHandler) Handle(ctx context.Context, req chat.Request, args []string) chat.Reply {
	return t.d.handle(ctx, t.tool, req, args)
}

func problem(format string, a ...any) chat.Reply {
	return chat.Reply{Text: fmt.Sprintf(format, a...), Problem: true}
}

func (d *Dispatcher) handle(ctx context.Context, tool string, req chat.Request, args []string) chat.Reply {
	if len(args) < 2 {
		return problem("Usage: %s <device|id,id|label|all> <%s arguments…>, e.g. `%s pi1 ec2 describe-instances`.", tool, tool, tool)
	}
	target := args[0]
	if _, err := d.o.Fleet.Resolve(target); err != nil {
		return problem("%s.", capitalise(err.Error()))
	}
	dec, err := d.o.Policy.Check(tool, args[1:], d.o.Policy.RolesOf(req.User))
	if err != nil {
		return problem("Refused: %v.", err)
	}
	if dec.Class == policy.Mutating {
		return d.askConfirm(req, tool, target, dec)
	}
	return d.run(ctx, req, tool, target, dec)
}

func (d *Dispatcher) askConfirm(req chat.Request, tool, target string, dec policy.Decision) chat.Reply {
	token := newID("k")
	summary := fmt.Sprintf("%s %s on %s (role %s)", tool, strings.Join(dec.Argv, " "), target, dec.Role)
	d.mu.Lock()
	now := d.o.Now()
	for k, p := range d.confirms {
		if now.After(p.expires) {
			delete(d.confirms, k)
		}
	}
	d.confirms[token] = &pending{user: req.User, req: req, tool: tool, target: target, dec: dec, expires: now.Add(d.o.ConfirmTTL)}
	d.mu.Unlock()
	return chat.Reply{
		Text:    fmt.Sprintf("This changes things: %s. Confirm within %s to run it.", summary, chat.Duration(d.o.ConfirmTTL)),
		Title:   "Confirm: " + tool + " " + dec.Verb,
		Confirm: &chat.Confirm{Token: token, Summary: summary},
	}
}

// Confirm runs a mutating command that user approved with token.
func (d *Dispatcher) Confirm(ctx context.Context, user, token string) chat.Reply {
	d.mu.Lock()
	p, ok := d.confirms[token]
	if ok && p.user == user {
		delete(d.confirms, token) // single use
	}
	d.mu.Unlock()
	switch {
	case !ok:
		return problem("That confirmation is unknown or was used already.")
	case p.user != user:
		return problem("Only the person who asked can confirm this.")
	case d.o.Now().After(p.expires):
		return problem("That confirmation expired; ask again.")
	}
	// The policy may have changed since: check again.
	dec, err := d.o.Policy.Check(p.tool, p.dec.Argv, d.o.Policy.RolesOf(user))
	if err != nil {
		return problem("Refused: %v.", err)
	}
	req := p.req
	if th := chat.ThreadFrom(ctx); th != "" {
		req.Thread = th // the answer, and any late result, go where the buttons were
	}
	return d.run(ctx, req, p.tool, p.target, dec)
}

// run sends the command to every online target and waits for the results.
func (d *Dispatcher) run(ctx context.Context, req chat.Request, tool, target string, dec policy.Decision) chat.Reply {
	ids, err := d.o.Fleet.Resolve(target)
	if err != nil {
		return problem("%s.", capitalise(err.Error()))
	}
	var results []Result
	var waits []chan Result
	var sent []string
	track := newTracker(ctx, d.o.Now)
	defer track.close()
	for _, dev := range ids {
		if r, ok := d.o.Fleet.(interface{ Runs(id, tool string) bool }); ok && !r.Runs(dev, tool) {
			results = append(results, Result{Device: dev, Missing: true, Final: wire.Final{Outcome: wire.OutcomeRejected,
				Error: "this Pi does not run " + tool + " commands (its agent has no --hub-key, or " + tool + " is not in its policy)"}})
			continue
		}
		if !d.o.AllowOffline && !d.o.Fleet.Online(dev) {
			results = append(results, Result{Device: dev, Missing: true, Final: wire.Final{Outcome: wire.OutcomeRejected,
				Error: "offline: not sent (a command is never queued for an offline Pi)"}})
			continue
		}
		track.add(dev)
		ch, err := d.send(ctx, req, tool, dev, dec, track)
		if err != nil {
			track.final(dev, wire.Final{Outcome: wire.OutcomeError})
			results = append(results, Result{Device: dev, Missing: true, Final: wire.Final{Outcome: wire.OutcomeError, Error: err.Error()}})
			continue
		}
		waits = append(waits, ch)
		sent = append(sent, dev)
	}
	track.report()
	wctx, cancel := context.WithTimeout(ctx, d.o.Wait)
	defer cancel()
	got := map[string]bool{}
	pending := waits[:0:0]
	for _, ch := range waits {
		select {
		case r := <-ch:
			results = append(results, r)
			got[r.Device] = true
		case <-wctx.Done():
			pending = append(pending, ch)
		}
	}
	for _, r := range d.stopWaiting(pending) {
		results = append(results, r)
		got[r.Device] = true
	}
	later := "the hub logs it when it arrives"
	switch {
	case req.Source == "slack" && req.Thread != "":
		later = "it is posted in this thread when it arrives"
	case req.Source == "slack":
		later = "it is posted in this channel when it arrives"
	}
	for _, dev := range sent {
		if !got[dev] {
			results = append(results, Result{Device: dev, Missing: true, Final: wire.Final{Outcome: wire.OutcomeError,
				Error: fmt.Sprintf("no result within %s; %s", chat.Duration(d.o.Wait), later)}})
		}
	}
	return d.render(tool, dec, results)
}

// send signs and publishes one command and registers it in flight.
func (d *Dispatcher) send(ctx context.Context, req chat.Request, tool, dev string, dec policy.Decision, track *tracker) (chan Result, error) {
	now := d.o.Now().UTC().Truncate(time.Millisecond)
	cmd := wire.Command{V: wire.ProtocolVersion, ID: newID("c"), Hub: d.o.Hub, Device: dev, ReplyTo: d.o.ReplyTo,
		Created: now, Expires: now.Add(d.o.TTL), Tool: tool, Argv: dec.Argv, Role: dec.Role}
	cmd.Sign(d.o.Key)
	b, err := json.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("encode command: %w", err)
	}
	ch := make(chan Result, 1)
	unacked := make(chan struct{})
	f := &flight{rec: record{ID: cmd.ID, Device: dev, Tool: tool, Argv: dec.Argv, Expires: cmd.Expires,
		Request: Request{User: req.User, Channel: req.Channel, Source: req.Source, Text: req.Text, Thread: req.Thread}},
		chunks: map[uint64]wire.Chunk{}, done: ch, unacked: unacked, track: track}
	d.mu.Lock()
	d.pruneLocked(time.Hour)
	d.inflight[cmd.ID] = f
	d.saveLocked()
	d.mu.Unlock()
	d.shareJob(f.rec)
	if err := d.o.Publisher.Publish(wire.CmdTopic(dev), 1, false, b); err != nil {
		d.mu.Lock()
		delete(d.inflight, cmd.ID)
		f.acked()
		d.saveLocked()
		d.mu.Unlock()
		return nil, fmt.Errorf("send to %s: %w", dev, err)
	}
	d.log.Info("command sent", "id", cmd.ID, "device", dev, "tool", tool, "verb", dec.Verb, "user", req.User)
	go d.resend(cmd.ID, dev, b, d.o.TTL, unacked)
	return ch, nil
}

// resend publishes the signed command b again on the Options.Resend
// schedule until the Pi acknowledges it (unacked closed) or ttl has
// passed (the Pi would refuse it as expired). Copies are harmless: the
// Pi runs an id once and answers a copy with at most a duplicate notice.
func (d *Dispatcher) resend(id, dev string, b []byte, ttl time.Duration, unacked <-chan struct{}) {
	end := time.Now().Add(ttl)
	for i := 0; ; i++ {
		wait := d.o.Resend[min(i, len(d.o.Resend)-1)]
		if time.Until(end) < wait {
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-unacked:
			t.Stop()
			return
		case <-t.C:
		}
		select {
		case <-unacked: // acknowledged while the timer fired
			return
		default:
		}
		d.mu.Lock()
		d.stats.Resent++
		d.mu.Unlock()
		if err := d.o.Publisher.Publish(wire.CmdTopic(dev), 1, false, b); err != nil {
			d.log.Warn("send again", "id", id, "device", dev, "err", err)
			continue
		}
		d.log.Info("command sent again: its Pi has not acknowledged it yet", "id", id, "device", dev, "copy", i+2)
	}
}

// stopWaiting detaches Handle from flights that have not finished, so
// their results go to OnLateResult, and returns the results that arrived
// between the deadline and now (they belong in the answer). final sends
// on a flight's channel under d.mu, so no result falls between the two.
func (d *Dispatcher) stopWaiting(waits []chan Result) []Result {
	d.mu.Lock()
	defer d.mu.Unlock()
	set := map[chan Result]bool{}
	for _, w := range waits {
		set[w] = true
	}
	for _, f := range d.inflight {
		if set[f.done] {
			f.done = nil
			f.track = nil // the answer has gone: no more progress
		}
	}
	// A result that arrived between the deadline and now is in its channel.
	var arrived []Result
	for _, w := range waits {
		select {
		case r := <-w:
			arrived = append(arrived, r)
		default:
		}
	}
	return arrived
}

// HandleResult takes one message from wire.ResultFilter(hub). It never
// blocks on the network (the clear is published in the background), so it
// is safe in an MQTT client's message callback.
func (d *Dispatcher) HandleResult(topic string, payload []byte) {
	if len(payload) == 0 {
		return // our own clear of a retained final
	}
	pt, err := wire.ParseTopic(topic)
	if err != nil || pt.Leaf != wire.LeafResult || pt.Hub != d.o.ReplyTo {
		d.count(&d.stats.BadRecords)
		d.odd(slog.LevelWarn, "result on an unexpected topic", "topic", topic, "err", err)
		return
	}
	rec, err := wire.DecodeResult(payload)
	if err != nil {
		d.count(&d.stats.BadRecords)
		d.odd(slog.LevelWarn, "bad result record", "topic", topic, "err", err)
		return
	}
	switch {
	case rec.Chunk != nil:
		d.chunk(pt, *rec.Chunk)
	case rec.Final != nil:
		d.final(topic, pt, *rec.Final)
	case rec.Notice != nil:
		d.notice(topic, pt, *rec.Notice)
	}
}

// count adds one to a counter in d.stats.
func (d *Dispatcher) count(c *int64) {
	d.mu.Lock()
	*c++
	d.mu.Unlock()
}

// odd logs a record about an unexpected, forged or malformed result
// message: 20 a minute, then a note that more are muted (Stats counts
// them all). A level that is not logged uses none of the 20.
func (d *Dispatcher) odd(level slog.Level, msg string, args ...any) {
	if !d.log.Enabled(context.Background(), level) {
		return
	}
	ok, muted := d.oddLog.Allow(d.o.Now())
	if !ok {
		return
	}
	if muted > 0 {
		args = append(args, "muted_before", muted)
	}
	if d.oddLog.Exhausted() {
		msg += " (more records about unexpected results are muted for a minute; /api/stats counts them)"
	}
	d.log.Log(context.Background(), level, msg, args...)
}

// notice logs and counts an informational record. It never ends a Pi's
// part, never reaches OnLateResult and never clears anything: the notice
// is not retained, and the Final on the same topic is the real result.
func (d *Dispatcher) notice(topic string, pt wire.ParsedTopic, n wire.Notice) {
	if n.ID != pt.CmdID || n.Device != pt.Device {
		d.count(&d.stats.Mismatched)
		d.odd(slog.LevelWarn, "notice does not match its topic", "topic", topic)
		return
	}
	if n.Reason != wire.NoticeDuplicate && n.Reason != wire.NoticeAccepted {
		d.count(&d.stats.OtherNotices)
		d.odd(slog.LevelInfo, "notice of an unknown reason from a Pi", "id", n.ID, "device", pt.Device, "reason", n.Reason)
		return
	}
	d.mu.Lock()
	f, ok := d.inflight[n.ID]
	inflight := ok && f.rec.Device == pt.Device
	if inflight {
		f.acked()
	}
	switch {
	case n.Reason == wire.NoticeAccepted:
		d.stats.Accepted++
	case inflight:
		d.stats.Duplicates++
	default:
		d.stats.StrayDuplicates++
	}
	d.mu.Unlock()
	// Limited but for the acknowledgement of a command in flight (one
	// per command): a Pi sends few notices, but anyone can publish one.
	switch {
	case n.Reason == wire.NoticeAccepted && inflight:
		d.log.Debug("Pi accepted command "+n.ID, "id", n.ID, "device", pt.Device)
		return
	case n.Reason == wire.NoticeAccepted:
		d.odd(slog.LevelDebug, "Pi accepted command "+n.ID+", which is not in flight", "id", n.ID, "device", pt.Device)
		return
	}
	if inflight {
		d.odd(slog.LevelDebug, "Pi got another copy of command "+n.ID+" (a re-send crossed its acknowledgement), already handled; still waiting for its result",
			"id", n.ID, "device", pt.Device)
		return
	}
	if d.o.Jobs != nil { // another hub's command, most likely
		d.odd(slog.LevelDebug, "Pi reports a copy of command "+n.ID+", not this hub's", "id", n.ID, "device", pt.Device)
		return
	}
	d.odd(slog.LevelWarn, "Pi reports a replay of command "+n.ID+", already handled, which is not in flight: someone replayed an old command (or the broker redelivered a finished one)",
		"id", n.ID, "device", pt.Device)
}

func (d *Dispatcher) chunk(pt wire.ParsedTopic, c wire.Chunk) {
	if c.ID != pt.CmdID || c.Device != pt.Device {
		d.count(&d.stats.Mismatched)
		return
	}
	d.mu.Lock()
	f, ok := d.inflight[c.ID]
	if ok && f.rec.Device == pt.Device {
		f.acked()
		if len(f.chunks) < 100000 {
			f.chunks[c.Seq] = c
		}
	}
	if !ok || f.rec.Device != pt.Device {
		d.stats.Unknown++
	}
	d.mu.Unlock()
	if ok && d.o.OnChunk != nil {
		d.o.OnChunk(pt.Device, c.ID, c)
	}
}

func (d *Dispatcher) final(topic string, pt wire.ParsedTopic, fin wire.Final) {
	// Clear the retained final whatever it is: it is addressed to us.
	d.background(func() {
		if err := d.o.Publisher.Publish(topic, 1, true, nil); err != nil {
			d.odd(slog.LevelWarn, "clear retained final", "topic", topic, "err", err)
		}
	})
	if fin.ID != pt.CmdID || fin.Device != pt.Device {
		d.count(&d.stats.Mismatched)
		d.odd(slog.LevelWarn, "final does not match its topic", "topic", topic)
		return
	}
	d.mu.Lock()
	f, ok := d.inflight[fin.ID]
	if ok && f.rec.Device != pt.Device {
		ok = false
	}
	var res Result
	var done chan Result
	if !ok {
		d.stats.Unknown++
	}
	if ok {
		delete(d.inflight, fin.ID)
		f.acked()
		d.saveLocked()
		res = Result{ID: fin.ID, Device: pt.Device, Tool: f.rec.Tool, Argv: f.rec.Argv, Final: fin,
			Output: reassemble(f.chunks, fin), Request: f.rec.Request}
		done = f.done
		if f.track != nil {
			f.track.final(pt.Device, fin) // before the wait sees the result
		}
		if done != nil {
			// Under the lock, so stopWaiting sees it (room for one: never
			// blocks).
			done <- res
		}
	}
	d.mu.Unlock()
	if ok {
		d.jobDone(fin.ID)
	}
	switch {
	case !ok && d.o.Jobs != nil:
		d.background(func() { d.takeOver(pt, fin) }) // another hub's command, or nobody's
	case !ok:
		// A final from before a restart without state, a duplicate, or
		// the rejection of a forged command that named this hub. It
		// carries no request, so OnLateResult can only log it: both are
		// rate-limited (whatever the log level).
		if ok, muted := d.oddLog.Allow(d.o.Now()); ok {
			d.log.Info("result of an unknown command", "id", fin.ID, "device", pt.Device, "outcome", fin.Outcome, "muted_before", muted)
			d.o.OnLateResult(Result{ID: fin.ID, Device: pt.Device, Final: fin, Output: fin.Output})
		}
	case done == nil: // nobody waits any more (or it was sent before a restart)
		d.log.Info("late result", "id", fin.ID, "device", pt.Device, "outcome", fin.Outcome)
		d.o.OnLateResult(res)
	}
}

// reassemble joins the chunks in sequence order when none is missing, and
// falls back to the final's copy of the output otherwise.
func reassemble(chunks map[uint64]wire.Chunk, fin wire.Final) string {
	if len(chunks) == 0 || fin.Seq < 1 || uint64(len(chunks)) != fin.Seq-1 {
		return fin.Output
	}
	var b strings.Builder
	for s := uint64(1); s < fin.Seq; s++ {
		c, ok := chunks[s]
		if !ok {
			return fin.Output
		}
		b.WriteString(c.Data)
	}
	return b.String()
}

// Pending returns the ids of commands in flight (sorted).
func (d *Dispatcher) Pending() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ids []string
	for id := range d.inflight {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Prune forgets commands in flight whose expiry is older than age (a Pi
// that never answered). Sending a command prunes those older than an hour,
// so the hub need not call it.
func (d *Dispatcher) Prune(age time.Duration) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pruneLocked(age)
}

func (d *Dispatcher) pruneLocked(age time.Duration) int {
	n := 0
	cut := d.o.Now().Add(-age)
	for id, f := range d.inflight {
		if f.rec.Expires.Before(cut) && f.done == nil {
			delete(d.inflight, id)
			f.acked()
			n++
		}
	}
	if n > 0 {
		d.saveLocked()
	}
	return n
}

func newID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func capitalise(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// shareJob stores a command's record for the other hubs of ReplyTo.
func (d *Dispatcher) shareJob(rec record) {
	if d.o.Jobs == nil {
		return
	}
	b, _ := json.Marshal(sharedJob{record: rec, Owner: d.o.Hub})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.o.Jobs.Put(ctx, rec.ID, b); err != nil {
		d.log.Warn("job not shared with the other hubs: if this hub goes away, its result reaches nobody", "id", rec.ID, "err", err)
	}
}

// jobDone forgets a shared job whose result this hub has handled, in the
// background (retried for a while: another hub would otherwise take it
// over and answer twice).
func (d *Dispatcher) jobDone(id string) {
	if d.o.Jobs == nil {
		return
	}
	go func() {
		for attempt := 0; attempt < 5; attempt++ {
			ctx, cancel := context.WithTimeout(context.Background(), d.o.TakeOverAfter/2)
			err := d.o.Jobs.Delete(ctx, id)
			cancel()
			if err == nil {
				return
			}
			d.log.Warn("shared job not forgotten; trying again", "id", id, "err", err)
			time.Sleep(200 * time.Millisecond)
		}
	}()
}

// takeOver handles the final of a command this hub did not send: after
// TakeOverAfter, if the job is still shared (its hub has not answered:
// it is gone) and this hub wins the claim, the result goes to
// OnLateResult with the original request — once among all hubs.
func (d *Dispatcher) takeOver(pt wire.ParsedTopic, fin wire.Final) {
	time.Sleep(d.o.TakeOverAfter)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := d.o.Jobs.Get(ctx, fin.ID)
	if err != nil {
		d.log.Warn("shared job unreadable: result not taken over", "id", fin.ID, "err", err)
		return
	}
	if b == nil {
		d.odd(slog.LevelDebug, "result of a command this hub did not send, answered by its hub", "id", fin.ID, "device", pt.Device)
		return
	}
	var job sharedJob
	if err := json.Unmarshal(b, &job); err != nil || job.Device != pt.Device {
		d.odd(slog.LevelWarn, "shared job does not match its result", "id", fin.ID, "device", pt.Device, "err", err)
		return
	}
	won, err := d.o.Jobs.Claim(ctx, fin.ID, d.o.Hub)
	if err != nil || !won {
		if err != nil {
			d.log.Warn("shared job not claimed", "id", fin.ID, "err", err)
		}
		return
	}
	if err := d.o.Jobs.Delete(ctx, fin.ID); err != nil {
		d.log.Warn("shared job not forgotten", "id", fin.ID, "err", err)
	}
	d.count(&d.stats.TakenOver)
	d.log.Info("result of another hub's command taken over: that hub did not answer", "id", fin.ID, "device", pt.Device, "hub", job.Owner, "outcome", fin.Outcome)
	d.o.OnLateResult(Result{ID: fin.ID, Device: pt.Device, Tool: job.Tool, Argv: job.Argv, Final: fin, Output: fin.Output, Request: job.Request})
}
