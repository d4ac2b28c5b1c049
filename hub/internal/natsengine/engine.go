package natsengine

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/pifleet/pifleet/internal/credentials"
	"github.com/pifleet/pifleet/internal/loglimit"
	"github.com/pifleet/pifleet/internal/transport"
)

// Options configure the engine. The zero value works: loopback listeners
// on the default ports, no logins, a throw-away store.
type Options struct {
	// StateDir holds the JetStream store (StateDir/nats): retained
	// messages and MQTT sessions survive a restart. Empty: a temporary
	// directory, removed by Close.
	StateDir string
	// MQTTListen is the MQTT listener, default 127.0.0.1:1883 (port 0:
	// any free port).
	MQTTListen string
	// NATSListen is the NATS listener for the hub's own nats.go
	// connection (ConnectNATS), default 127.0.0.1:4222. With credentials
	// only the engine's own login is accepted there.
	NATSListen string
	// ServerName names the server; it must stay the same across
	// restarts (retained deletes are finished by the server that stored
	// them). Default "pifleet-hub".
	ServerName string
	// TLS, when set, makes the MQTT listener speak TLS only.
	TLS *transport.ServerFiles
	// Credentials, when set, is who may log in and what each identity may
	// publish and read. nil: anyone may connect and do anything, so both
	// listeners must then be on loopback.
	Credentials *credentials.File
	// AllowPlaintext accepts Credentials without TLS (loopback tests):
	// otherwise passwords would cross the network in the clear.
	AllowPlaintext bool
	// Cluster, when set, joins this engine to the other nodes listed (see
	// Cluster). ServerName must then differ per node.
	Cluster *Cluster
	// WarmupTimeout bounds the wait for the retained-message view to be
	// complete (see Start), default 30 s.
	WarmupTimeout time.Duration
	Logger        *slog.Logger
}

func (o *Options) ensureDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.MQTTListen, "127.0.0.1:1883")
	def(&o.NATSListen, "127.0.0.1:4222")
	def(&o.ServerName, "pifleet-hub")
	if o.WarmupTimeout == 0 {
		o.WarmupTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Engine is a running embedded nats-server.
type Engine struct {
	srv     *server.Server
	auth    *authenticator // nil without credentials
	secret  string         // engineUser's password
	mqttURL string
	natsURL string
	tmpDir  string      // removed by Close
	srvTLS  *tls.Config // the MQTT listener's, nil without TLS
	log     *slog.Logger
}

// CloseTimeout bounds Close. nats-server's shutdown publishes the wills
// of connected clients through JetStream, each bounded by its JS API
// timeout (5 s).
const CloseTimeout = 10 * time.Second

// Start runs the server and returns once MQTT works: JetStream is up, the
// MQTT streams exist and the server's retained-message view holds every
// retained message under pifleet/v1 (see warmUp). ctx bounds the start.
func Start(ctx context.Context, o Options) (*Engine, error) {
	o.ensureDefaults()
	if err := o.check(); err != nil {
		return nil, err
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("nats engine: secret: %w", err)
	}
	e := &Engine{secret: hex.EncodeToString(secret), log: o.Logger.With("component", "natsengine")}
	sopts, tlsCfg, err := e.serverOptions(&o)
	if err != nil {
		e.removeTmp()
		return nil, err
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		e.removeTmp()
		return nil, fmt.Errorf("nats engine: %w", err)
	}
	srv.SetLoggerV2(slogger{o.Logger.With("component", "nats-server")}, false, false, false)
	e.srv = srv
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		e.Close()
		return nil, errors.New("nats engine: listeners not ready within 10s")
	}
	if !srv.JetStreamEnabled() {
		e.Close()
		return nil, fmt.Errorf("nats engine: JetStream did not start (store %s; see the log)", sopts.StoreDir)
	}
	e.natsURL = "nats://" + dialAddr(srv.Addr())
	e.srvTLS = tlsCfg
	if err := e.warmUp(ctx, o.WarmupTimeout, tlsCfg); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// check refuses settings that would open the fleet to anyone.
func (o *Options) check() error {
	if o.Cluster != nil {
		if err := o.Cluster.validate(o); err != nil {
			return err
		}
	}
	if o.Credentials == nil {
		for _, a := range []string{o.MQTTListen, o.NATSListen} {
			if !transport.IsLoopbackAddr(a) {
				return fmt.Errorf("refusing to open the embedded broker on %s to anyone: set credentials, or listen on 127.0.0.1", a)
			}
		}
		return nil
	}
	if err := o.Credentials.Validate(); err != nil {
		return fmt.Errorf("nats engine: %w", err)
	}
	if o.TLS == nil && !o.AllowPlaintext {
		return errors.New("nats engine: credentials without TLS would send passwords in the clear: set TLS (or AllowPlaintext for a loopback test)")
	}
	return nil
}

// serverOptions turns o into nats-server options.
func (e *Engine) serverOptions(o *Options) (*server.Options, *tls.Config, error) {
	stateDir := o.StateDir
	if stateDir == "" {
		d, err := os.MkdirTemp("", "pifleet-natsengine-")
		if err != nil {
			return nil, nil, fmt.Errorf("nats engine: %w", err)
		}
		e.tmpDir, stateDir = d, d
	}
	store := filepath.Join(stateDir, "nats")
	if err := os.MkdirAll(store, 0o750); err != nil {
		return nil, nil, fmt.Errorf("nats engine: state dir: %w", err)
	}
	mqttHost, mqttPort, err := freeAddr(o.MQTTListen, "MQTT")
	if err != nil {
		return nil, nil, err
	}
	natsHost, natsPort, err := freeAddr(o.NATSListen, "NATS")
	if err != nil {
		return nil, nil, err
	}
	var tlsCfg *tls.Config
	if o.TLS != nil {
		if tlsCfg, err = o.TLS.ServerTLS(); err != nil {
			return nil, nil, err
		}
	}
	sopts := &server.Options{
		ServerName: o.ServerName,
		Host:       natsHost,
		Port:       natsPort,
		JetStream:  true,
		StoreDir:   store,
		MQTT:       server.MQTTOpts{Host: mqttHost, Port: mqttPort, TLSConfig: tlsCfg},
		NoSigs:     true,
	}
	if o.Cluster != nil {
		if err := o.Cluster.apply(o, sopts); err != nil {
			return nil, nil, err
		}
	}
	if o.Credentials != nil {
		e.auth = &authenticator{secret: e.secret, log: e.log, limitLog: loglimit.Limit{Per: time.Minute, Burst: 20}}
		e.auth.creds.Store(o.Credentials)
		sopts.CustomClientAuthentication = e.auth
	}
	scheme := "mqtt://"
	if tlsCfg != nil {
		scheme = "mqtts://"
	}
	e.mqttURL = scheme + net.JoinHostPort(dialHost(mqttHost), strconv.Itoa(mqttPort))
	return sopts, tlsCfg, nil
}

// freeAddr checks that addr can be listened on now, so that a busy port is
// a clear error rather than a server log line, and resolves port 0.
func freeAddr(addr, what string) (string, int, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", 0, fmt.Errorf("embedded broker: %s listen on %s: %w (is another broker running?)", what, addr, err)
	}
	ta := ln.Addr().(*net.TCPAddr)
	ln.Close()
	host, _, _ := net.SplitHostPort(addr)
	return host, ta.Port, nil
}

// dialHost is where a client on this machine reaches a listener on host.
func dialHost(host string) string {
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return "127.0.0.1"
	}
	return host
}

func dialAddr(a net.Addr) string {
	host, port, _ := net.SplitHostPort(a.String())
	return net.JoinHostPort(dialHost(host), port)
}

// MQTTURL is the MQTT listener's URL for clients on this machine
// (mqtts:// with TLS).
func (e *Engine) MQTTURL() string { return e.mqttURL }

// NATSURL is the NATS listener's URL for clients on this machine.
func (e *Engine) NATSURL() string { return e.natsURL }

// ConnectNATS connects to the embedded server as the engine's own login,
// which may publish and subscribe anything (JetStream included): the hub's
// connection. It is in-process (a pipe, not a loopback socket): every
// status the hub reads would otherwise cost a write and a read system call
// and two poller wake-ups.
func (e *Engine) ConnectNATS(opts ...nats.Option) (*nats.Conn, error) {
	return nats.Connect(e.natsURL, append([]nats.Option{nats.UserInfo(engineUser, e.secret), nats.InProcessServer(e.srv)}, opts...)...)
}

// SetCredentials swaps the credentials (e.g. on SIGHUP after provisioning
// a device). Connected clients keep their identity until they reconnect.
func (e *Engine) SetCredentials(c *credentials.File) error {
	if e.auth == nil {
		return errors.New("nats engine: started without credentials")
	}
	if err := c.Validate(); err != nil {
		return err
	}
	e.auth.creds.Store(c)
	return nil
}

// DisconnectDevice closes the live sessions of device id at once, as a
// broker does for a revoked login: the client sees its connection close
// and its will is published. Changing the credentials alone leaves
// connected clients in. A device can only hold its own MQTT client ids
// (clientIDAllowed), so its sessions are found by those, whether it
// logged in by password or certificate. It returns how many it closed.
func (e *Engine) DisconnectDevice(id string) (int, error) {
	n := 0
	for _, cid := range (identity{roleDevice, id}).clientIDs() {
		cz, err := e.srv.Connz(&server.ConnzOptions{MQTTClient: cid})
		if err != nil {
			return n, fmt.Errorf("nats engine: sessions of %s: %w", id, err)
		}
		for _, c := range cz.Conns {
			if e.srv.DisconnectClientByID(c.Cid) == nil {
				n++
			}
		}
	}
	return n, nil
}

// DeleteRetained deletes the retained messages on topics, as the engine's
// own login over MQTT: no device or hub identity may delete another
// device's state (a removed Pi's, for one), and a retained delete must go
// through MQTT for the server to drop its copy. It returns once each
// delete is acknowledged.
func (e *Engine) DeleteRetained(ctx context.Context, topics ...string) error {
	opts := paho.NewClientOptions().AddBroker(e.mqttURL).SetClientID("pifleet-engine-admin-" + strings.NewReplacer(".", "~", " ", "_").Replace(e.srv.Name())).
		SetUsername(engineUser).SetPassword(e.secret).SetCleanSession(true).SetProtocolVersion(4).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(10 * time.Second)
	if e.srvTLS != nil {
		opts.SetTLSConfig(pinnedClientTLS(e.srvTLS))
	}
	c := paho.NewClient(opts)
	if err := wait(ctx, c.Connect()); err != nil {
		return fmt.Errorf("nats engine: connect to delete retained messages: %w", err)
	}
	defer c.Disconnect(0)
	for _, t := range topics {
		if err := wait(ctx, c.Publish(t, 1, true, []byte{})); err != nil {
			return fmt.Errorf("nats engine: delete retained %s: %w", t, err)
		}
	}
	return nil
}

// Refused counts refused logins (0 without credentials).
func (e *Engine) Refused() int64 {
	if e.auth == nil {
		return 0
	}
	return e.auth.refused.Load()
}

// Close stops the server: clients see their connection close and their
// wills are published, as with any broker going away. It returns within
// CloseTimeout.
func (e *Engine) Close() error {
	if e == nil || e.srv == nil {
		return errors.New("nats engine not started")
	}
	done := make(chan struct{})
	go func() {
		e.srv.Shutdown()
		e.srv.WaitForShutdown()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(CloseTimeout):
		return fmt.Errorf("nats engine did not stop within %v", CloseTimeout)
	}
	e.removeTmp()
	return nil
}

func (e *Engine) removeTmp() {
	if e.tmpDir != "" {
		os.RemoveAll(e.tmpDir)
	}
}
