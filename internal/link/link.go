package link

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pifleet/pifleet/internal/transport"
	"github.com/pifleet/pifleet/internal/wire"
)

// Options configure a Link. The zero value of every optional field has a
// sensible default (see ensureDefaults).
type Options struct {
	Brokers   []string // e.g. mqtt://127.0.0.1:1883; tried in order
	ID        string   // device id (validated)
	BootID    string
	KeepAlive time.Duration // default 10s; at least 2s
	Logger    *slog.Logger

	ConnectTimeout time.Duration // default 10s
	// Reconnects wait a random time in [0, min(MaxBackoff, MinBackoff·2ⁿ))
	// after the n-th failure in a row ("full jitter"), so a fleet whose
	// broker restarts comes back spread out instead of in one wave.
	MinBackoff time.Duration // default 1s
	MaxBackoff time.Duration // default 60s

	// Configure may adjust the client options of every connection (TLS,
	// credentials). It is called once per connection attempt.
	Configure func(o *mqtt.ClientOptions) error

	// OnCommand receives the payload of every message on the device's
	// command topic. It must return quickly.
	OnCommand func(payload []byte)

	// OnUp is called (from the link's goroutine) after each successful
	// connect and birth, with the session epoch. The daemon republishes
	// its status there.
	OnUp func(epoch uint64)
	// OnDown is called when a connection is lost.
	OnDown func(err error)
	// OnConnectFailed is called after each failed connect attempt.
	OnConnectFailed func(err error)

	Now func() time.Time // default time.Now
}

// MinKeepAlive is the shortest keepalive accepted: brokers check at
// 1.5 × keepalive and below 2 s healthy clients get dropped (REFERENCE.md).
const MinKeepAlive = 2 * time.Second

func (o *Options) ensureDefaults() error {
	if err := wire.ValidateID(o.ID); err != nil {
		return fmt.Errorf("device id: %w", err)
	}
	if len(o.Brokers) == 0 {
		return errors.New("no broker URL given")
	}
	if o.KeepAlive == 0 {
		o.KeepAlive = 10 * time.Second
	}
	if o.KeepAlive < MinKeepAlive {
		return fmt.Errorf("keepalive %v is too short: at least %v", o.KeepAlive, MinKeepAlive)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 60 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

// Link is the agent's MQTT session.
type Link struct {
	o   Options
	log *slog.Logger

	mu     sync.Mutex
	client mqtt.Client // nil while disconnected
	epoch  uint64      // epoch of the current (or last) session
	floor  uint64      // next epoch must be greater than this

	rebirthPending bool      // a re-birth is scheduled (reassert)
	lastRebirth    time.Time // when the last re-birth went out
	kick           chan struct{}
}

// New validates o and returns a Link. Run starts it.
func New(o Options) (*Link, error) {
	if err := o.ensureDefaults(); err != nil {
		return nil, err
	}
	return &Link{o: o, log: o.Logger.With("component", "link"), kick: make(chan struct{}, 1)}, nil
}

// Connected reports whether a session is up.
func (l *Link) Connected() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.client != nil && l.client.IsConnectionOpen()
}

// Epoch returns the epoch of the current or last session (0 before the first).
func (l *Link) Epoch() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.epoch
}

// nextEpoch returns an epoch greater than every epoch used or seen before:
// wall-clock milliseconds, bumped past the floor when the clock is behind
// (a Pi without RTC boots in 1970).
func (l *Link) nextEpoch() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var e uint64
	if ms := l.o.Now().UnixMilli(); ms > 0 {
		e = uint64(ms)
	}
	if f := max(l.floor, l.epoch); e <= f {
		e = f + 1
	}
	l.epoch = e
	return e
}

func (l *Link) stateMsg(s wire.Lifecycle, epoch uint64) []byte {
	b, _ := json.Marshal(wire.State{V: wire.ProtocolVersion, State: s, Epoch: epoch, Time: l.o.Now().UTC(), BootID: l.o.BootID})
	return b
}

// Run keeps a session up until ctx ends, then publishes "offline" and
// disconnects. It returns nil on a clean shutdown.
func (l *Link) Run(ctx context.Context) error {
	failures := 0
	for attempt := 0; ; attempt++ {
		broker := l.o.Brokers[attempt%len(l.o.Brokers)]
		lost, err := l.connect(ctx, broker)
		deliberate := false
		if err != nil {
			failures++
			l.log.Warn("connect failed", "broker", transport.Redacted(broker), "err", err)
			if l.o.OnConnectFailed != nil {
				l.o.OnConnectFailed(err)
			}
		} else {
			failures = 0
			select {
			case <-ctx.Done():
				l.shutdown()
				return nil
			case err := <-lost:
				l.log.Warn("connection lost", "broker", transport.Redacted(broker), "err", err)
				if l.o.OnDown != nil {
					l.o.OnDown(err)
				}
				failures = 1 // a lost session waits too: its broker may be going down for everyone
			case <-l.kick:
				deliberate = true // reconnect with a higher epoch: no wait
			}
		}
		if deliberate {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(Backoff(failures, l.o.MinBackoff, l.o.MaxBackoff, rand.Int64N)):
		}
	}
}

// Backoff is the wait after n failures in a row with full jitter: a
// uniformly random duration in [0, min(max, base·2ⁿ⁻¹)]. randN returns a
// number in [0, n).
func Backoff(n int, base, max time.Duration, randN func(int64) int64) time.Duration {
	if n <= 0 {
		return 0
	}
	ceil := max
	if n < 31 {
		ceil = min(max, base<<(n-1))
	}
	return time.Duration(randN(int64(ceil) + 1))
}

func (l *Link) connect(ctx context.Context, broker string) (<-chan error, error) {
	epoch := l.nextEpoch()
	lost := make(chan error, 1)
	opts := mqtt.NewClientOptions().
		AddBroker(broker).
		SetClientID(wire.ClientID(wire.ClientAgent, l.o.ID)).
		// MQTT 3.1.1 only: paho otherwise retries a refused login as
		// MQTT 3.1, which nats-server closes without an answer, so a
		// wrong password would read "EOF" instead of "not Authorized".
		SetProtocolVersion(4).
		SetKeepAlive(l.o.KeepAlive).
		SetPingTimeout(l.o.KeepAlive/2).
		SetConnectTimeout(l.o.ConnectTimeout).
		SetWriteTimeout(l.o.ConnectTimeout).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetCleanSession(true).
		SetOrderMatters(false).
		SetBinaryWill(wire.StateTopic(l.o.ID), l.stateMsg(wire.StateLost, epoch), 1, true).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			l.setClient(nil)
			select {
			case lost <- err:
			default:
			}
		})
	if l.o.Configure != nil {
		if err := l.o.Configure(opts); err != nil {
			return nil, fmt.Errorf("configure client: %w", err)
		}
	}
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	if !waitToken(ctx, tok, l.o.ConnectTimeout) {
		c.Disconnect(0)
		return nil, fmt.Errorf("connect %s: timed out after %v", transport.Redacted(broker), l.o.ConnectTimeout)
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("connect %s: %w", transport.Redacted(broker), err)
	}
	// Both at QoS 0. Our own state: checkOwnState needs only the
	// retained replay and the live copies. Commands: the hub sends a
	// command again until this Pi acknowledges it (wire.NoticeAccepted)
	// and the id store makes every copy after the first a no-op, so
	// QoS 1 would add nothing but cost: some brokers make every QoS 1
	// subscription far dearer (nats-server: a replicated JetStream
	// consumer per connection).
	subs := map[string]byte{wire.StateTopic(l.o.ID): 0}
	if l.o.OnCommand != nil {
		subs[wire.CmdTopic(l.o.ID)] = 0
	}
	tok = c.SubscribeMultiple(subs, l.route(c, epoch))
	if !tok.WaitTimeout(l.o.ConnectTimeout) || tok.Error() != nil {
		c.Disconnect(0)
		return nil, fmt.Errorf("subscribe: %v", tokErr(tok))
	}
	// paho does not report a refused filter as an error: a broker ACL that
	// refuses the command topic would silently disable commands.
	if st, ok := tok.(*mqtt.SubscribeToken); ok {
		for f, code := range st.Result() {
			if code >= 0x80 {
				l.log.Error("the broker refused a subscription (check its ACL for this device)", "topic", f, "code", fmt.Sprintf("%#x", code))
			}
		}
	}
	// Birth after the subscription: brokers send the retained state of the
	// previous session right after SUBACK, before they process our next
	// packet, so checkOwnState sees it before the birth overwrites it.
	if err := publishWait(c, wire.StateTopic(l.o.ID), l.stateMsg(wire.StateOnline, epoch), true, StateQoS, l.o.ConnectTimeout); err != nil {
		c.Disconnect(0)
		return nil, fmt.Errorf("publish birth: %w", err)
	}
	l.setClient(c)
	l.log.Info("connected", "broker", transport.Redacted(broker), "epoch", epoch)
	if l.o.OnUp != nil {
		l.o.OnUp(epoch)
	}
	return lost, nil
}

// route handles messages on the agent's own topics.
func (l *Link) route(c mqtt.Client, epoch uint64) mqtt.MessageHandler {
	return func(_ mqtt.Client, m mqtt.Message) {
		switch m.Topic() {
		case wire.CmdTopic(l.o.ID):
			if l.o.OnCommand != nil {
				l.o.OnCommand(m.Payload())
			}
		case wire.StateTopic(l.o.ID):
			l.checkOwnState(c, epoch, m.Payload())
		}
	}
}

// checkOwnState keeps the broker's retained state of this device true.
//
// A state with an epoch above ours from an earlier session (a clock that
// went backwards) could make a late will of that session look newer than
// our birth: we raise the floor and reconnect with a higher epoch.
//
// Once our birth is out, anything else on our state topic — an empty
// retained message (someone "forgot" a live Pi, or a broker lost it), an
// older epoch, or our own epoch marked offline or lost by somebody else —
// is answered by publishing the birth again (rate-limited), so every hub
// sees this session as online again within moments.
func (l *Link) checkOwnState(c mqtt.Client, epoch uint64, payload []byte) {
	if len(payload) == 0 {
		l.reassert(c, epoch, "retained state deleted")
		return
	}
	st, err := wire.DecodeState(payload)
	if err != nil {
		l.reassert(c, epoch, "retained state unreadable")
		return
	}
	switch {
	case st.Epoch == epoch && st.State == wire.StateOnline:
		return // our birth
	case st.Epoch < epoch:
		l.reassert(c, epoch, "retained state from an older session")
		return
	case st.Epoch == epoch:
		l.reassert(c, epoch, "retained state says "+string(st.State))
		return
	}
	l.mu.Lock()
	l.floor = max(l.floor, st.Epoch)
	l.mu.Unlock()
	l.log.Warn("broker holds a newer epoch than ours (clock behind?); reconnecting with a higher one", "ours", epoch, "seen", st.Epoch)
	go c.Disconnect(100) // the lost handler is not called on Disconnect: signal Run ourselves
	go func() {
		l.setClient(nil)
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}()
}

// RebirthEvery bounds how often the link re-publishes its birth when its
// retained state is disturbed (a flood on the state topic costs at most
// one publish per interval).
const RebirthEvery = 2 * time.Second

// reassert publishes the birth of session c again, at most once per
// RebirthEvery. Nothing happens before c's own birth is out (the retained
// state of the previous session arrives right after SUBACK) or after c
// ended.
func (l *Link) reassert(c mqtt.Client, epoch uint64, why string) {
	l.mu.Lock()
	if l.client != c || l.rebirthPending {
		l.mu.Unlock()
		return
	}
	l.rebirthPending = true
	wait := max(l.lastRebirth.Add(RebirthEvery).Sub(l.o.Now()), 0)
	l.mu.Unlock()
	time.AfterFunc(wait, func() {
		l.mu.Lock()
		l.rebirthPending = false
		l.lastRebirth = l.o.Now()
		current := l.client == c
		l.mu.Unlock()
		if !current {
			return
		}
		l.log.Info("re-publishing birth", "why", why, "epoch", epoch)
		if err := publishWait(c, wire.StateTopic(l.o.ID), l.stateMsg(wire.StateOnline, epoch), true, StateQoS, l.o.ConnectTimeout); err != nil {
			l.log.Warn("re-publish birth", "err", err)
		}
	})
}

func (l *Link) setClient(c mqtt.Client) {
	l.mu.Lock()
	l.client = c
	l.mu.Unlock()
}

// shutdown publishes "offline" with the current epoch and disconnects.
func (l *Link) shutdown() {
	l.mu.Lock()
	c, epoch := l.client, l.epoch
	l.client = nil
	l.mu.Unlock()
	if c == nil || !c.IsConnectionOpen() {
		return
	}
	// QoS 1, not StateQoS: the broker acknowledges "offline" before the
	// close below. Closing a socket with unread incoming data (our own
	// birth echoed back, a PINGRESP) sends a reset, and the broker may
	// then drop what it had not read yet — the offline with it, leaving
	// the will's "lost" (seen under qemu in CI).
	if err := publishWait(c, wire.StateTopic(l.o.ID), l.stateMsg(wire.StateOffline, epoch), true, 1, 2*time.Second); err != nil {
		l.log.Warn("publish offline", "err", err)
	}
	c.Disconnect(250)
	l.log.Info("disconnected cleanly", "epoch", epoch)
}

// ErrNotConnected is returned by publishes while no session is up.
var ErrNotConnected = errors.New("not connected to a broker")

// StateQoS is the QoS of the device's state (birth, offline) and status
// publishes: 0. Each connection is a fresh session that publishes its
// birth and a full status again, so QoS 1 would retry nothing; what it
// did cost was a broker-side acknowledgement per message — and in
// nats-server a permanent ack-pipeline goroutine and queue per client
// from its first QoS 1 publish (at 10,000 Pis: 10,000 goroutines, 87 MB
// of queues, ~170 MiB RSS and a tenth of a core, measured). Our own
// subscription echoes the birth back (checkOwnState), and a status lost
// with a dying connection is published again with the next one. Results
// stay QoS 1: the broker keeps the final.
const StateQoS = 0

// Publish sends payload to topic with QoS 1 and waits for the broker's ack.
func (l *Link) Publish(topic string, payload []byte, retained bool) error {
	return l.publish(topic, payload, retained, 1)
}

func (l *Link) publish(topic string, payload []byte, retained bool, qos byte) error {
	l.mu.Lock()
	c := l.client
	l.mu.Unlock()
	if c == nil {
		return ErrNotConnected
	}
	return publishWait(c, topic, payload, retained, qos, l.o.ConnectTimeout)
}

// PublishStatus publishes st on the device's status topic (at StateQoS),
// retained or not: a heartbeat that changes nothing goes out not retained
// (see PROTOCOL.md, Topics).
func (l *Link) PublishStatus(st wire.Status, retained bool) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode status: %w", err)
	}
	return l.publish(wire.StatusTopic(l.o.ID), b, retained, StateQoS)
}

// PublishChunk implements daemon.ResultSink.
func (l *Link) PublishChunk(hub, cmdID string, c wire.Chunk) error {
	b, _ := json.Marshal(c)
	return l.Publish(wire.ResultTopic(l.o.ID, hub, cmdID), b, false)
}

// PublishFinal implements daemon.ResultSink: the final record is retained
// (retain) until the hub clears it.
func (l *Link) PublishFinal(hub, cmdID string, f wire.Final, retain bool) error {
	b, _ := json.Marshal(f)
	return l.Publish(wire.ResultTopic(l.o.ID, hub, cmdID), b, retain)
}

// PublishNotice implements daemon.ResultSink: a notice is informational
// and never retained, so it cannot replace the command's retained final.
func (l *Link) PublishNotice(hub, cmdID string, n wire.Notice) error {
	b, _ := json.Marshal(n)
	return l.Publish(wire.ResultTopic(l.o.ID, hub, cmdID), b, false)
}

// publishWait publishes and waits for the broker's ack (QoS 1) or for
// the message to be written (QoS 0).
func publishWait(c mqtt.Client, topic string, payload []byte, retained bool, qos byte, timeout time.Duration) error {
	tok := c.Publish(topic, qos, retained, payload)
	if !tok.WaitTimeout(timeout) {
		return fmt.Errorf("publish %s: not sent within %v", topic, timeout)
	}
	return tok.Error()
}

func waitToken(ctx context.Context, tok mqtt.Token, timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		return true
	case <-ctx.Done():
		return false
	case <-t.C:
		return false
	}
}

func tokErr(tok mqtt.Token) error {
	if err := tok.Error(); err != nil {
		return err
	}
	return errors.New("timed out")
}
