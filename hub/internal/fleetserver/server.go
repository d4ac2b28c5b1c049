package fleetserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pifleet/pifleet/hub/internal/api"
	"github.com/pifleet/pifleet/hub/internal/chat"
	"github.com/pifleet/pifleet/hub/internal/fleet"
	"github.com/pifleet/pifleet/hub/internal/jobs"
	"github.com/pifleet/pifleet/hub/internal/lease"
	"github.com/pifleet/pifleet/hub/internal/natsengine"
	"github.com/pifleet/pifleet/hub/internal/natsfeed"
	"github.com/pifleet/pifleet/internal/credentials"
	"github.com/pifleet/pifleet/internal/loglimit"
	"github.com/pifleet/pifleet/internal/transport"
	"github.com/pifleet/pifleet/internal/wire"
)

// Config configures a hub. Zero values get defaults.
type Config struct {
	ID      string // hub id; default "hub"
	Version string
	// BrokerURL is the external broker's MQTT URL, or several
	// separated by commas (paho tries them in turn); empty: start the
	// embedded nats engine.
	BrokerURL string
	// NATSURLs, with BrokerURL, are an external nats-server cluster's
	// NATS URLs (nats:// or tls://): the hub reads the fleet from its
	// JetStream as from the embedded engine, holds the alerts lease and
	// shares jobs there, and BrokerURL is the same cluster's MQTT
	// listeners, for the hub's own session (retained presence, will,
	// commands, results).
	NATSURLs []string
	// NATSOptions are the NATS connection's credentials and TLS.
	NATSOptions []nats.Option
	// ClusterName names the external NATS cluster's group of hubs
	// (Group: "hubs-<name>"); default "pifleet".
	ClusterName string
	MQTTListen  string // the embedded engine's MQTT address; default 127.0.0.1:1883
	HTTPListen  string // default 127.0.0.1:8080
	HTTPToken   string // required when HTTPListen is not loopback
	KeepAlive   time.Duration

	// ConfigureMQTT adjusts the hub's MQTT client (TLS, credentials).
	ConfigureMQTT func(o *mqtt.ClientOptions) error
	// DataDir keeps the embedded engine's store (in DataDir/nats) across
	// restarts; empty: a throw-away store.
	DataDir string
	// NATS configures the embedded nats-server (TLS, credentials); its
	// listen address, store (DataDir/nats) and logger come from the
	// fields above.
	NATS natsengine.Options

	Logger *slog.Logger
	Now    func() time.Time

	// APIRoutes are more routes of the HTTP API, behind its token
	// (enrolment's add-pi, pending, remove-pi).
	APIRoutes map[string]http.Handler

	// Ready, when set, is called once the hub serves HTTP and is connected.
	Ready func(h *Hub)
}

func (c *Config) ensureDefaults() error {
	if c.ID == "" {
		c.ID = "hub"
	}
	if err := wire.ValidateID(c.ID); err != nil {
		return fmt.Errorf("hub id: %w", err)
	}
	if c.MQTTListen == "" {
		c.MQTTListen = "127.0.0.1:1883"
	}
	if c.HTTPListen == "" {
		c.HTTPListen = "127.0.0.1:8080"
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if len(c.NATSURLs) > 0 && c.BrokerURL == "" {
		return errors.New("external NATS servers need the same servers' MQTT URLs too (the hub's own session speaks MQTT)")
	}
	if !transport.IsLoopbackAddr(c.HTTPListen) && c.HTTPToken == "" {
		return fmt.Errorf("refusing to serve the HTTP API on %s without a bearer token: set --http-token-file, or listen on 127.0.0.1", c.HTTPListen)
	}
	return nil
}

// Hub is a running hub.
type Hub struct {
	cfg    Config
	log    *slog.Logger
	Fleet  *fleet.Fleet
	Engine *chat.Engine

	nats     atomic.Pointer[natsengine.Engine] // set while the embedded nats engine runs
	extNATS  atomic.Pointer[nats.Conn]         // the connection to external NATS servers
	alerts   atomic.Pointer[lease.Lease]       // the alerts lease, with the nats engine
	jobs     atomic.Pointer[jobs.Store]        // the cluster's shared jobs
	clientMu sync.Mutex
	client   mqtt.Client // guarded by clientMu
	epoch    uint64

	onConnMu sync.Mutex
	counters map[string]func() any // AddStats; guarded by onConnMu
	onConn   []func(mqtt.Client)

	rejectLog loglimit.Limit // warnings about rejected messages

	everConnected atomic.Bool  // the hub's MQTT session came up at least once
	lastMessage   atomic.Int64 // unix nanoseconds of the last Pi message applied
}

// New builds a hub (nothing runs until Run).
func New(cfg Config) (*Hub, error) {
	if err := cfg.ensureDefaults(); err != nil {
		return nil, err
	}
	f := fleet.New(cfg.Now)
	return &Hub{cfg: cfg, log: cfg.Logger.With("component", "hub"), Fleet: f, Engine: chat.New(f, cfg.Now),
		rejectLog: loglimit.Limit{Per: time.Minute, Burst: 20}}, nil
}

// ID is the hub's id.
func (h *Hub) ID() string { return h.cfg.ID }

// BrokerURL is the broker the hub uses.
func (h *Hub) BrokerURL() string {
	if e := h.nats.Load(); e != nil {
		return e.MQTTURL()
	}
	return h.cfg.BrokerURL
}

// MQTT returns the hub's MQTT client (for dispatching commands); nil until
// Run has created it.
func (h *Hub) MQTT() mqtt.Client {
	h.clientMu.Lock()
	defer h.clientMu.Unlock()
	return h.client
}

// OnConnect registers fn to run after every (re)connect to the broker, for
// parts of the hub that subscribe to more topics (command results). The
// session is clean, so subscriptions must be renewed each time. Register
// before Run.
func (h *Hub) OnConnect(fn func(mqtt.Client)) {
	h.onConnMu.Lock()
	h.onConn = append(h.onConn, fn)
	h.onConnMu.Unlock()
}

// AddStats shows fn's counters in GET /api/stats under name. Register
// before Run.
func (h *Hub) AddStats(name string, fn func() any) {
	h.onConnMu.Lock()
	defer h.onConnMu.Unlock()
	if h.counters == nil {
		h.counters = map[string]func() any{}
	}
	h.counters[name] = fn
}

// feedFromNATS reports whether the hub reads the fleet from JetStream
// (the embedded engine, or an external nats-server cluster) rather than
// from MQTT subscriptions.
func (h *Hub) feedFromNATS() bool { return h.cfg.BrokerURL == "" || len(h.cfg.NATSURLs) > 0 }

// Run runs the hub until ctx ends.
func (h *Hub) Run(ctx context.Context) error {
	if h.feedFromNATS() {
		// The hub reads the fleet from JetStream (its embedded engine's
		// or an external cluster's): no MQTT queue to overflow. The
		// engine (or the NATS connection) hands each message to one ingest goroutine,
		// in arrival order; when it falls behind the engine waits
		// (backpressure, never a drop), and no Pi's connection ever runs
		// the hub's own work (decoding, alert callbacks).
		stopped := make(chan struct{}) // the engine is closed: ingest stops
		in := make(chan inbound, ingestQueue)
		go func() {
			for {
				select {
				case m := <-in:
					h.apply(m.topic, m.payload, m.retained)
				case <-stopped:
					return
				}
			}
		}()
		enqueue := func(topic string, payload []byte, retained bool) {
			select {
			case in <- inbound{topic, bytes.Clone(payload), retained}:
			case <-stopped:
			}
		}
		start := h.startNATS
		if h.cfg.BrokerURL != "" {
			start = h.startExternalNATS
		}
		stop, err := start(ctx, enqueue)
		if err != nil {
			close(stopped)
			return err
		}
		defer func() {
			stop()
			close(stopped)
		}()
	}
	ln, err := net.Listen("tcp", h.cfg.HTTPListen)
	if err != nil {
		return fmt.Errorf("HTTP API: listen on %s: %w", h.cfg.HTTPListen, err)
	}
	h.onConnMu.Lock()
	counters := maps.Clone(h.counters)
	h.onConnMu.Unlock()
	srv := &http.Server{Handler: (&api.Server{Fleet: h.Fleet, Engine: h.Engine, Token: h.cfg.HTTPToken, Logger: h.log, Counters: counters, Health: h.Health, Extra: h.cfg.APIRoutes}).Handler(),
		ReadHeaderTimeout: 5 * time.Second}
	httpErr := make(chan error, 1)
	go func() { httpErr <- srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	h.log.Info("HTTP API listening", "url", "http://"+ln.Addr().String())

	if err := h.connect(ctx); err != nil {
		return err
	}
	defer h.disconnect()
	if h.cfg.Ready != nil {
		h.cfg.Ready(h)
	}
	go h.sweep(ctx)
	select {
	case <-ctx.Done():
		return nil
	case err := <-httpErr:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("HTTP API: %w", err)
	}
}

// startNATS starts the embedded nats-server and reads the fleet from
// JetStream (natsfeed: every Pi's last state and status, then every
// update, on any node), not from MQTT's per-node retained replay; stop
// ends the feed and closes the engine.
func (h *Hub) startNATS(ctx context.Context, enqueue func(topic string, payload []byte, retained bool)) (stop func(), err error) {
	o := h.cfg.NATS
	o.MQTTListen = h.cfg.MQTTListen
	if o.NATSListen == "" {
		o.NATSListen = "127.0.0.1:0" // only the hub's own feed uses it
	}
	if o.Cluster != nil && o.ServerName == "" {
		o.ServerName = wire.ClientID(wire.ClientHub, h.cfg.ID) // one per node, stable across restarts
	}
	if o.StateDir == "" && h.cfg.DataDir != "" {
		o.StateDir = filepath.Join(h.cfg.DataDir, "nats")
	}
	if o.Logger == nil {
		o.Logger = slog.New(newQuietHandler(h.cfg.Logger.Handler()))
	}
	e, err := natsengine.Start(ctx, o)
	if err != nil {
		return nil, err
	}
	nc, err := e.ConnectNATS(nats.Name(wire.ClientID(wire.ClientHub, h.cfg.ID)))
	if err != nil {
		e.Close()
		return nil, fmt.Errorf("nats engine: the hub's own connection: %w", err)
	}
	replicas := 1
	if o.Cluster != nil {
		replicas = min(3, len(o.Cluster.Routes))
	}
	stopFeed, err := h.runFeed(ctx, nc, enqueue, func(context.Context) int { return replicas })
	if err != nil {
		nc.Close()
		e.Close()
		return nil, err
	}
	h.nats.Store(e)
	h.log.Info("embedded nats engine listening", "mqtt", e.MQTTURL())
	return func() {
		h.nats.Store(nil)
		stopFeed()
		nc.Close()
		if err := e.Close(); err != nil {
			h.log.Warn("stopping the embedded nats engine", "err", err)
		}
	}, nil
}

// startExternalNATS connects to an external nats-server cluster
// (Config.NATSURLs) and reads the fleet from its JetStream as startNATS
// does from the embedded engine; the connection reconnects forever.
func (h *Hub) startExternalNATS(ctx context.Context, enqueue func(topic string, payload []byte, retained bool)) (stop func(), err error) {
	urls := strings.Join(h.cfg.NATSURLs, ",")
	opts := append([]nats.Option{nats.Name(wire.ClientID(wire.ClientHub, h.cfg.ID)),
		nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true), nats.ReconnectWait(time.Second),
		nats.ConnectHandler(func(nc *nats.Conn) { h.log.Info("connected to NATS server", "server", nc.ConnectedUrlRedacted()) }),
		nats.ReconnectHandler(func(nc *nats.Conn) { h.log.Info("reconnected to NATS server", "server", nc.ConnectedUrlRedacted()) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				h.log.Warn("NATS connection lost; reconnecting", "err", err)
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if h.allowLog() {
				h.log.Warn("NATS", "err", err)
			}
		}),
		// A refused login (a password being rotated) is retried like
		// any other break instead of closing the connection for good.
		nats.IgnoreAuthErrorAbort(),
	}, h.cfg.NATSOptions...)
	nc, err := nats.Connect(urls, opts...)
	if err != nil {
		return nil, fmt.Errorf("NATS servers %s: %w", h.natsRedacted(), err)
	}
	// The shared buckets are replicated as nats-server replicates the
	// MQTT streams: over up to three nodes of the cluster (or its
	// mqtt.stream_replicas), so they survive what the fleet survives.
	stopFeed, err := h.runFeed(ctx, nc, enqueue, func(ctx context.Context) int { return h.mqttReplicas(ctx, nc) })
	if err != nil {
		nc.Close()
		return nil, err
	}
	h.extNATS.Store(nc)
	h.log.Info("reading the fleet from external NATS servers", "servers", h.natsRedacted(), "group", h.Group())
	return func() {
		h.extNATS.Store(nil)
		stopFeed()
		nc.Close()
	}, nil
}

// natsRedacted lists Config.NATSURLs without passwords.
func (h *Hub) natsRedacted() string { return transport.Redacted(h.cfg.NATSURLs...) }

// rmsgsStream is nats-server's stream of retained MQTT messages.
const rmsgsStream = "$MQTT_rmsgs"

// mqttReplicas waits for the cluster's retained-message stream (made when
// the first MQTT client, the hub's own session at the latest, connects)
// and returns its replica count; 0 when ctx ends first.
func (h *Hub) mqttReplicas(ctx context.Context, nc *nats.Conn) int {
	js, err := jetstream.New(nc)
	if err != nil {
		h.log.Error("JetStream", "err", err)
		return 0
	}
	for try := 1; ; try++ {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		s, err := js.Stream(cctx, rmsgsStream)
		var info *jetstream.StreamInfo
		if err == nil {
			info, err = s.Info(cctx)
		}
		cancel()
		if err == nil {
			return max(info.Config.Replicas, 1)
		}
		if ctx.Err() != nil {
			return 0
		}
		if try%10 == 3 {
			h.log.Warn("waiting for the NATS servers' MQTT retained-message stream (are MQTT and JetStream on?)", "stream", rmsgsStream, "err", err)
		}
		select {
		case <-ctx.Done():
			return 0
		case <-time.After(time.Second):
		}
	}
}

// runFeed reads the fleet over nc (natsfeed, Live) into enqueue, holds
// the alerts lease and opens the jobs store (shared by the hubs of a
// cluster; a hub alone keeps its Slack alert threads there across a
// restart); both get replicas(ctx) replicas (0: stopped).
// stop ends them all and lets the lease go; nc stays open.
func (h *Hub) runFeed(ctx context.Context, nc *nats.Conn, enqueue func(topic string, payload []byte, retained bool),
	replicas func(context.Context) int) (stop func(), err error) {
	feed, err := natsfeed.New(natsfeed.Options{Conn: nc, Logger: h.log, Live: true,
		OnSnapshot: func() { h.Fleet.Resync(h.cfg.Now()) }})
	if err != nil {
		return nil, err
	}
	feedCtx, cancel := context.WithCancel(ctx)
	feedDone := make(chan struct{})
	go func() {
		defer close(feedDone)
		if err := feed.Run(feedCtx, enqueue); err != nil {
			h.log.Error("fleet feed from NATS stopped", "err", err)
		}
	}()
	leaseDone := make(chan struct{})
	go func() {
		defer close(leaseDone)
		n := replicas(feedCtx)
		if n == 0 {
			return
		}
		jobsDone := make(chan struct{})
		go func() {
			defer close(jobsDone)
			jobs.OpenWhenReady(feedCtx, nc, n, h.log, h.jobs.Store)
		}()
		defer func() { <-jobsDone }()
		alertLease, err := lease.New(lease.Options{Conn: nc, Name: "alerts", Holder: h.cfg.ID, Replicas: n, Logger: h.log})
		if err != nil {
			h.log.Error("alerts lease", "err", err)
			return
		}
		h.alerts.Store(alertLease)
		if err := alertLease.Run(feedCtx); err != nil {
			h.log.Error("alerts lease stopped", "err", err)
		}
	}()
	h.AddStats("natsfeed", func() any { return feed.Stats() })
	h.AddStats("alerts_lease", func() any {
		var st struct {
			Held    bool `json:"held"`
			Changes int  `json:"changes"`
		}
		if l := h.alerts.Load(); l != nil {
			st.Held, st.Changes = l.Held(), l.Changes()
		}
		return st
	})
	return func() {
		cancel()
		<-feedDone
		<-leaseDone // lets the lease go at once, and waits for the jobs store
	}, nil
}

// SetCredentials swaps the embedded engine's logins (SIGHUP); it fails
// when no engine with logins runs.
func (h *Hub) SetCredentials(c *credentials.File) error {
	e := h.nats.Load()
	if e == nil {
		return errors.New("no embedded nats engine is running")
	}
	return e.SetCredentials(c)
}

// DisconnectDevice closes device id's live sessions on the embedded
// engine at once (a revoked login).
func (h *Hub) DisconnectDevice(id string) (int, error) {
	e := h.nats.Load()
	if e == nil {
		return 0, errors.New("no embedded nats engine is running")
	}
	return e.DisconnectDevice(id)
}

// forgetWait bounds each step of ForgetDevice.
const forgetWait = 5 * time.Second

// ForgetDevice deletes a removed device's retained state and status, so
// the view (of every hub) forgets it and a restart does not bring it
// back. Its will, sent when its session was closed, is waited for first
// (it would bring the device back as lost); it returns once the view no
// longer has the device.
func (h *Hub) ForgetDevice(ctx context.Context, id string) error {
	e := h.nats.Load()
	if e == nil {
		return errors.New("no embedded nats engine is running")
	}
	waitFor := func(cond func() bool) bool {
		ctx, cancel := context.WithTimeout(ctx, forgetWait)
		defer cancel()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for !cond() {
			select {
			case <-ctx.Done():
				return false
			case <-t.C:
			}
		}
		return true
	}
	waitFor(func() bool { d, ok := h.Fleet.Get(id); return !ok || !d.Online() })
	ctx2, cancel := context.WithTimeout(ctx, forgetWait)
	defer cancel()
	if err := e.DeleteRetained(ctx2, wire.StatusTopic(id), wire.StateTopic(id)); err != nil {
		return err
	}
	// The deleted state is gone from the broker: forget it here too rather
	// than wait for the feed to bring the delete back, which nats-server may
	// never do (it removes the delete's own record at once; natsfeed's
	// comparison finds it only within 30 s; seen in CI).
	if err := h.Fleet.Apply(wire.StateTopic(id), nil); err != nil {
		return err
	}
	if !waitFor(func() bool { _, ok := h.Fleet.Get(id); return !ok }) {
		return fmt.Errorf("the view still has %s %v after its retained state was deleted", id, forgetWait)
	}
	return nil
}

// Group is the reply-to that the hubs of one cluster share for command
// results ("hubs-<cluster name>"); "" when the hub is alone.
func (h *Hub) Group() string {
	var name string
	switch {
	case len(h.cfg.NATSURLs) > 0: // hubs of an external NATS cluster
		name = h.cfg.ClusterName
	case h.cfg.BrokerURL == "" && h.cfg.NATS.Cluster != nil:
		name = h.cfg.NATS.Cluster.Name
	default:
		return ""
	}
	if name == "" {
		name = "pifleet"
	}
	return "hubs-" + name
}

// Jobs is the job store (nil: no NATS, or not open yet). Commands and
// Slack events are shared through it only by the hubs of a cluster
// (Group).
func (h *Hub) Jobs() *jobs.Store { return h.jobs.Load() }

// HasJobs reports whether the hub opens a job store: with the embedded
// engine or an external NATS cluster, not with an external MQTT broker.
func (h *Hub) HasJobs() bool { return h.feedFromNATS() }

// AlertLeader reports whether this hub posts alerts now. With the
// embedded engine or an external NATS cluster, hubs sharing one fleet
// hold an "alerts" lease in JetStream and only its holder posts
// (hub/internal/lease); with an external MQTT broker the hub is alone
// and always does.
func (h *Hub) AlertLeader() bool {
	if l := h.alerts.Load(); l != nil {
		return l.Held()
	}
	return !h.feedFromNATS()
}

// Refused counts logins the embedded nats engine refused.
func (h *Hub) Refused() int64 {
	if e := h.nats.Load(); e != nil {
		return e.Refused()
	}
	return 0
}

func (h *Hub) presence(state wire.Lifecycle) []byte {
	b, _ := json.Marshal(wire.HubPresence{V: wire.ProtocolVersion, Hub: h.cfg.ID, State: state, Epoch: h.epoch, Time: h.cfg.Now().UTC(), Version: h.cfg.Version})
	return b
}

// connect starts the MQTT session: presence with a will, subscriptions to
// every device's retained state and status (which rebuilds the view).
func (h *Hub) connect(ctx context.Context) error {
	h.epoch = uint64(max(h.cfg.Now().UnixMilli(), 1))
	broker := h.BrokerURL()
	opts := mqtt.NewClientOptions()
	for _, u := range strings.Split(broker, ",") { // tried in turn
		if u = strings.TrimSpace(u); u != "" {
			opts.AddBroker(u)
		}
	}
	opts.
		SetClientID(wire.ClientID(wire.ClientHub, h.cfg.ID)).
		SetProtocolVersion(4). // MQTT 3.1.1 only, as the agent (internal/link)
		SetKeepAlive(h.cfg.KeepAlive).
		SetCleanSession(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(30*time.Second).
		SetOrderMatters(true). // per-topic order matters for epochs
		SetBinaryWill(wire.HubPresenceTopic(h.cfg.ID), h.presence(wire.StateLost), 1, true).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) { h.log.Warn("MQTT connection lost; reconnecting", "err", err) }).
		SetOnConnectHandler(func(c mqtt.Client) {
			h.everConnected.Store(true)
			h.log.Info("connected to MQTT broker", "broker", transport.Redacted(strings.Split(broker, ",")...))
			c.Publish(wire.HubPresenceTopic(h.cfg.ID), 1, true, h.presence(wire.StateOnline))
			if !h.feedFromNATS() { // NATS (embedded or external) feeds the fleet itself
				h.subscribeFleet(c)
			}
			h.onConnMu.Lock()
			fns := append([]func(mqtt.Client){}, h.onConn...)
			h.onConnMu.Unlock()
			for _, fn := range fns {
				fn(c)
			}
		})
	if h.cfg.ConfigureMQTT != nil {
		if err := h.cfg.ConfigureMQTT(opts); err != nil {
			return fmt.Errorf("MQTT client: %w", err)
		}
	}
	c := mqtt.NewClient(opts)
	h.clientMu.Lock()
	h.client = c
	h.clientMu.Unlock()
	tok := c.Connect()
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return fmt.Errorf("connect to MQTT broker %s: %w", broker, err)
		}
	case <-ctx.Done():
		return nil
	case <-time.After(15 * time.Second):
		h.log.Warn("MQTT broker not reachable yet; still trying in the background", "broker", transport.Redacted(strings.Split(broker, ",")...))
	}
	return nil
}

// subscribeFleet subscribes to every device's state and status on an
// external broker (after each connect: the session is clean).
func (h *Hub) subscribeFleet(c mqtt.Client) {
	// The broker replays every retained state next: what it claims
	// online must speak live again (fleet.Resync, Sweep).
	h.Fleet.Resync(h.cfg.Now())
	// QoS 0 on purpose: a broker queues QoS 1 messages to one
	// subscriber only so far (Mosquitto: 20 in flight + 1,000
	// queued, then "Outgoing messages are being dropped"), and 5,000
	// wills at once overflow that however fast the hub acks. At QoS 0
	// they stream over TCP. Nothing is lost for good: the view is
	// rebuilt from retained messages on every reconnect (Resync),
	// a live status proves a session and silence ends one.
	//
	// States first, in a SUBSCRIBE of their own: a broker replays every
	// retained message of a subscription at once, and Mosquitto drops
	// QoS 0 messages to a client with more than max_queued_messages (1,000)
	// packets waiting on its socket. 10,000 states (~1.5 MB) fit in the
	// socket buffers; 10,000 statuses (~15 MB) may not, and those the
	// broker drops come back live within one heartbeat (rule 2).
	h.subscribe(c, map[string]byte{wire.FilterAllStates: 0}, h.ingest)
	h.subscribe(c, map[string]byte{wire.FilterAllStatuses: 0}, h.ingest)
}

func (h *Hub) disconnect() {
	c := h.MQTT()
	if c == nil {
		return
	}
	if c.IsConnectionOpen() {
		tok := c.Publish(wire.HubPresenceTopic(h.cfg.ID), 1, true, h.presence(wire.StateOffline))
		tok.WaitTimeout(2 * time.Second)
	}
	c.Disconnect(250)
}

// ingest feeds one message into the fleet. Bad messages are counted by the
// fleet and logged here, rate-limited so that a flood of garbage cannot
// fill the disk with logs.
func (h *Hub) ingest(_ mqtt.Client, m mqtt.Message) {
	h.apply(m.Topic(), m.Payload(), m.Retained())
}

func (h *Hub) apply(topic string, payload []byte, retained bool) {
	h.lastMessage.Store(h.cfg.Now().UnixNano())
	err := h.Fleet.ApplyMessage(topic, payload, retained)
	if err == nil || errors.Is(err, fleet.ErrStale) {
		if err != nil {
			h.log.Debug("ignored stale message", "topic", topic, "err", err)
		}
		return
	}
	if h.allowLog() {
		h.log.Warn("rejected message", "topic", trunc(topic, 200), "bytes", len(payload), "err", err)
	}
}

// ingestQueue is how many fleet messages from the embedded engine may wait
// for the ingest goroutine before their senders wait.
const ingestQueue = 4096

type inbound struct {
	topic    string
	payload  []byte
	retained bool
}

// SweepEvery is how often the hub looks for sessions that went silent
// without a will (fleet.Sweep).
const SweepEvery = 2 * time.Second

func (h *Hub) sweep(ctx context.Context) {
	t := time.NewTicker(SweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n := h.Fleet.Sweep(); n > 0 {
				h.log.Info("Pis silent past their heartbeat taken as lost (no will arrived)", "count", n)
			}
		}
	}
}

func (h *Hub) allowLog() bool {
	ok, _ := h.rejectLog.Allow(h.cfg.Now())
	if ok && h.rejectLog.Exhausted() {
		h.log.Warn("too many rejected messages; muting this log for a minute (see /api/stats)")
	}
	return ok
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// quietHandler is the embedded engine's log: records below warn are
// dropped (nats-server's notices are its own starts and stops), and
// warnings are rate-limited: an embedded broker may warn once per client
// about ordinary events (a connection closed by its Pi), and at 10,000
// Pis a restart would write thousands of such lines.
type quietHandler struct {
	slog.Handler
	lim *loglimit.Limit
}

func newQuietHandler(h slog.Handler) quietHandler {
	return quietHandler{Handler: h, lim: &loglimit.Limit{Per: time.Minute, Burst: 10}}
}

func (q quietHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && q.Handler.Enabled(ctx, l)
}

func (q quietHandler) Handle(ctx context.Context, r slog.Record) error {
	// A cluster node that is down makes the others log a route error
	// every second per route connection: limited like the warnings.
	if r.Level < slog.LevelError || strings.HasPrefix(r.Message, "Error trying to connect to route") {
		ok, muted := q.lim.Allow(r.Time)
		if muted > 0 {
			m := slog.NewRecord(r.Time, slog.LevelWarn, "embedded broker warnings were muted", 0)
			m.AddAttrs(slog.Int("muted", muted), slog.Duration("per", q.lim.Per))
			_ = q.Handler.Handle(ctx, m)
		}
		if !ok {
			return nil
		}
	}
	return q.Handler.Handle(ctx, r)
}

func (q quietHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return quietHandler{q.Handler.WithAttrs(as), q.lim}
}

func (q quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{q.Handler.WithGroup(name), q.lim}
}

// subscribe subscribes and checks every SUBACK return code (paho does not
// report a refused filter as an error). A refusal may pass (a broker that
// refuses a SUBSCRIBE whose packet id clashes with one of its own
// in-flight ids, code 0x91), so a refused filter is retried a few times
// before the hub says so.
func (h *Hub) subscribe(c mqtt.Client, filters map[string]byte, cb mqtt.MessageHandler) {
	for attempt := 1; ; attempt++ {
		tok := c.SubscribeMultiple(filters, cb)
		if !tok.WaitTimeout(10 * time.Second) {
			h.log.Warn("subscribe: no SUBACK within 10s", "filters", len(filters))
			return
		}
		err := tok.Error()
		if err == nil {
			for f, code := range tok.(*mqtt.SubscribeToken).Result() {
				if code >= 0x80 {
					err = fmt.Errorf("broker refused %s (code %#x)", f, code)
				}
			}
		}
		if err == nil {
			return
		}
		if attempt == 5 {
			h.log.Error("subscribe failed; the fleet view will be incomplete until the next reconnect", "err", err)
			return
		}
		time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
	}
}

// Health says whether the hub does its job — its MQTT session to the
// broker is up, and with external NATS servers its NATS connection too —
// and, one line each, the broker (and NATS) connection, the age of
// the last message from a Pi, and the fleet's size: for GET /healthz and
// systemd's STATUS.
func (h *Hub) Health() (ok bool, text string) {
	broker := h.BrokerURL()
	c := h.MQTT()
	var b strings.Builder
	switch {
	case c != nil && c.IsConnectionOpen():
		ok = true
		fmt.Fprintf(&b, "broker: connected to %s\n", broker)
	case h.everConnected.Load():
		fmt.Fprintf(&b, "broker: connection to %s lost; reconnecting\n", broker)
	default:
		fmt.Fprintf(&b, "broker: %s not reached yet\n", broker)
	}
	if nc := h.extNATS.Load(); nc != nil {
		if nc.IsConnected() {
			fmt.Fprintf(&b, "nats: connected to %s\n", nc.ConnectedUrlRedacted())
		} else {
			ok = false // the fleet view is not fed
			fmt.Fprintf(&b, "nats: %s not reached; reconnecting\n", h.natsRedacted())
		}
	}
	if last := h.lastMessage.Load(); last == 0 {
		b.WriteString("last message from a Pi: none yet\n")
	} else {
		age := h.cfg.Now().Sub(time.Unix(0, last)).Round(time.Second)
		fmt.Fprintf(&b, "last message from a Pi: %s ago\n", age)
	}
	st := h.Fleet.Summary()
	fmt.Fprintf(&b, "devices: %d, %d online\n", st.Total, st.Online)
	return ok, b.String()
}
