package broker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Options configure the embedded broker.
type Options struct {
	// Listen is the TCP address, default 127.0.0.1:1883 (loopback: nothing
	// is exposed unless the operator asks).
	Listen string
	// TLS, when set, makes the listener speak MQTT over TLS.
	TLS *tls.Config
	// Hooks replace the default allow-all authentication (e.g. the
	// per-device credentials and ACL hook). Each is added in order.
	Hooks []mqtt.Hook
	// DataDir, when set, persists retained messages and sessions in
	// DataDir/broker.db (bbolt), so a hub restart keeps the fleet's
	// retained state even for devices that are offline.
	DataDir string
	// MaxPacket caps incoming packets (default 512 KiB).
	MaxPacket uint32
	Logger    *slog.Logger
}

// ClientWritesPending is the depth of each client's write queue in the
// embedded broker.
const ClientWritesPending = 1024

// Broker is a running embedded broker.
type Broker struct {
	srv   *mqtt.Server
	ln    net.Listener
	addr  net.Addr
	tls   bool
	subs  atomic.Int64   // inline subscription ids
	store *retainedStore // nil without DataDir
}

// Start listens and serves in the background.
func Start(o Options) (*Broker, error) {
	if o.Listen == "" {
		o.Listen = "127.0.0.1:1883"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxPacket == 0 {
		o.MaxPacket = 512 << 10
	}
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = o.MaxPacket
	// mochi reserves a write queue of this many entries for every client
	// (8,192 by default: ~200 KB per connected Pi measured at 10,000).
	// A Pi receives a few messages a day; the hub reads as fast as the
	// queue fills (see the README's "How many Pis").
	caps.MaximumClientWritesPending = ClientWritesPending
	// mochi deletes every retained message older than this (default one
	// day), whatever the MQTT version: a Pi switched off for a weekend
	// would vanish from the fleet. Retained messages here live until
	// replaced or cleared.
	caps.MaximumMessageExpiryInterval = 0
	srv := mqtt.New(&mqtt.Options{
		Logger:       newMochiLogger(o.Logger.With("component", "broker")), // see mochiLog
		Capabilities: caps,
		InlineClient: true, // Subscribe: the hub's own fleet ingest
	})
	hooks := o.Hooks
	if len(hooks) == 0 {
		hooks = []mqtt.Hook{new(auth.AllowHook)}
	}
	for _, h := range hooks {
		if err := srv.AddHook(h, nil); err != nil {
			srv.Close()
			return nil, fmt.Errorf("broker hook %s: %w", h.ID(), err)
		}
	}
	var store *retainedStore
	if o.DataDir != "" {
		if err := os.MkdirAll(o.DataDir, 0o750); err != nil {
			srv.Close()
			return nil, fmt.Errorf("broker data dir: %w", err)
		}
		path := filepath.Join(o.DataDir, "broker.db")
		var err error
		store, err = openRetainedStore(path, o.Logger, FlushEvery)
		if err != nil {
			srv.Close()
			return nil, fmt.Errorf("broker store %s: %w (is another hub using it?)", path, err)
		}
		if err := srv.AddHook(store, nil); err != nil {
			store.Stop()
			srv.Close()
			return nil, fmt.Errorf("broker store %s: %w", path, err)
		}
	}
	// Listen ourselves so that a busy port is a clear error now, not a log
	// line from a goroutine later, and so ":0" works in tests; and so
	// that Close can stop listening before mochi drops the clients.
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		srv.Close()
		return nil, fmt.Errorf("embedded broker: listen on %s: %w (is another broker running? use --mqtt-listen or --broker)", o.Listen, err)
	}
	addr := ln.Addr()
	served := ln
	if o.TLS != nil {
		served = tls.NewListener(ln, o.TLS)
	}
	if err := srv.AddListener(listeners.NewNet("tcp", served)); err != nil {
		ln.Close()
		srv.Close()
		return nil, fmt.Errorf("embedded broker: listener: %w", err)
	}
	if err := srv.Serve(); err != nil {
		ln.Close()
		return nil, fmt.Errorf("embedded broker: serve: %w", err)
	}
	return &Broker{srv: srv, ln: ln, addr: addr, tls: o.TLS != nil, store: store}, nil
}

// Subscribe delivers every message published on filter to fn inside the
// broker process: no network and no per-client queue, so nothing is
// dropped however large the burst (the retained replay of 20,000 states
// and statuses at a hub start overflowed a 1,024-deep client queue). fn
// runs in the publishing client's goroutine, so it must be quick; it gets
// a client's messages in the order they were sent.
//
// retained is true for the copies replayed when the subscription starts.
// A client that publishes while that replay runs may have its message
// marked retained too: the fleet then treats it as a claim that its next
// message confirms.
func (b *Broker) Subscribe(filter string, fn func(topic string, payload []byte, retained bool)) error {
	var replaying atomic.Bool
	replaying.Store(true)
	defer replaying.Store(false)
	id := int(b.subs.Add(1))
	return b.srv.Subscribe(filter, id, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		fn(pk.TopicName, pk.Payload, replaying.Load() && pk.FixedHeader.Retain)
	})
}

// URL is the broker's URL for clients.
func (b *Broker) URL() string {
	addr := b.addr.String()
	// A broker listening on all addresses is dialled on loopback.
	if ta, ok := b.addr.(*net.TCPAddr); ok && ta.IP.IsUnspecified() {
		addr = net.JoinHostPort("127.0.0.1", fmt.Sprint(ta.Port))
	}
	if b.tls {
		return "mqtts://" + addr
	}
	return "mqtt://" + addr
}

// CloseTimeout bounds Close. mochi v2.7.9 can wait for ever for client
// goroutines that never finish: seen at 10,000 Pis after CONNACK writes
// timed out on an overloaded machine, which left `systemctl restart`
// hanging until systemd's SIGKILL.
const CloseTimeout = 5 * time.Second

// Close stops the broker. Clients see their connection close; their wills
// are published, as with any broker going away. Retained messages are
// written to disk even when mochi does not finish closing in time.
//
// It stops listening first: mochi drops its clients before it closes its
// listener, and takes (but never serves nor closes) a connection made in
// between, so a client that reconnected at once waited out its connect
// timeout (30 s for paho's default) instead of being refused and trying
// again, or trying its next broker.
func (b *Broker) Close() error {
	if b == nil || b.srv == nil {
		return errors.New("broker not started")
	}
	b.ln.Close()
	done := make(chan error, 1)
	go func() { done <- b.srv.Close() }()
	select {
	case err := <-done:
		return err
	case <-time.After(CloseTimeout):
	}
	if b.store != nil {
		if err := b.store.Stop(); err != nil {
			return fmt.Errorf("embedded broker did not stop within %v; writing its retained messages: %w", CloseTimeout, err)
		}
	}
	return fmt.Errorf("embedded broker did not stop within %v (client connections still closing); retained messages were saved", CloseTimeout)
}
