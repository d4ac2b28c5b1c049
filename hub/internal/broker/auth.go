package broker

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/pifleet/pifleet/internal/credentials"
	"github.com/pifleet/pifleet/internal/loglimit"
	"github.com/pifleet/pifleet/internal/wire"
)

// AuthOptions configure the AuthHook.
type AuthOptions struct {
	Credentials *credentials.File
	// RequireTLS refuses clients that did not connect over TLS (a
	// plaintext listener left open by mistake lets nobody in).
	RequireTLS bool
	Logger     *slog.Logger
}

// AuthHook is a mochi hook that authenticates devices and hubs from a
// Credentials file and enforces the per-device ACL (see Identity). Add it
// with broker.Options.Hooks instead of the default allow-all hook.
type AuthHook struct {
	mqtt.HookBase
	creds      atomic.Pointer[credentials.File]
	requireTLS bool
	log        *slog.Logger
	clients    sync.Map // *mqtt.Client -> Identity
	refused    atomic.Int64
	denyLog    loglimit.Limit
}

// NewAuthHook returns a hook for the given credentials.
func NewAuthHook(o AuthOptions) (*AuthHook, error) {
	if o.Credentials == nil {
		return nil, errors.New("auth hook: no credentials")
	}
	if err := o.Credentials.Validate(); err != nil {
		return nil, fmt.Errorf("auth hook: %w", err)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	h := &AuthHook{requireTLS: o.RequireTLS, log: o.Logger.With("component", "broker-auth"),
		denyLog: loglimit.Limit{Per: time.Minute, Burst: 20}}
	h.creds.Store(o.Credentials)
	return h, nil
}

// SetCredentials swaps the credentials (e.g. on SIGHUP after provisioning
// a device). Connected clients keep their identity until they reconnect.
func (h *AuthHook) SetCredentials(c *credentials.File) error {
	if err := c.Validate(); err != nil {
		return err
	}
	h.creds.Store(c)
	return nil
}

// Refused counts refused connections.
func (h *AuthHook) Refused() int64 { return h.refused.Load() }

// ID implements mqtt.Hook.
func (h *AuthHook) ID() string { return "pifleet-auth" }

// Provides implements mqtt.Hook.
func (h *AuthHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnDisconnect}, []byte{b})
}

// OnConnectAuthenticate implements mqtt.Hook: certificate first (CN = id),
// else username = id and password; then the client id and will topic must
// fit the identity.
func (h *AuthHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	if cl.Net.Inline {
		return true
	}
	id, err := h.authenticate(cl, pk)
	if err != nil {
		h.refused.Add(1)
		// The username is logged (it is an id, not a secret); the password never.
		h.log.Warn("connection refused", "client", cl.ID, "username", string(pk.Connect.Username), "remote", cl.Net.Remote, "err", err)
		return false
	}
	h.clients.Store(cl, id)
	return true
}

func (h *AuthHook) authenticate(cl *mqtt.Client, pk packets.Packet) (Identity, error) {
	creds := h.creds.Load()
	tc, isTLS := cl.Net.Conn.(*tls.Conn)
	if h.requireTLS && !isTLS {
		return Identity{}, errors.New("plaintext connection refused: TLS required")
	}
	cn := ""
	if isTLS && len(tc.ConnectionState().VerifiedChains) > 0 {
		cn = tc.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	name, hub, err := creds.Login(string(pk.Connect.Username), string(pk.Connect.Password), cn)
	if err != nil {
		return Identity{}, err
	}
	id := Identity{RoleDevice, name}
	if hub {
		id.Role = RoleHub
	}
	if !id.ClientIDAllowed(cl.ID) {
		return Identity{}, fmt.Errorf("client id %q not allowed for %s %q (use %s)", cl.ID, id.Role, id.ID, wire.ClientID(wire.ClientAgent, id.ID))
	}
	if pk.Connect.WillFlag && !id.CanWrite(pk.Connect.WillTopic) {
		return Identity{}, fmt.Errorf("will topic %q is outside %s %q's topics", pk.Connect.WillTopic, id.Role, id.ID)
	}
	return id, nil
}

// OnACLCheck implements mqtt.Hook.
func (h *AuthHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	v, ok := h.clients.Load(cl)
	if !ok {
		return false
	}
	id := v.(Identity)
	if write {
		if !id.CanWrite(topic) {
			if ok, _ := h.denyLog.Allow(time.Now()); ok {
				h.log.Warn("publish denied", "id", id.ID, "role", id.Role, "topic", topic)
			}
			return false
		}
		return true
	}
	return id.CanRead(topic)
}

// OnDisconnect implements mqtt.Hook.
func (h *AuthHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) { h.clients.Delete(cl) }
