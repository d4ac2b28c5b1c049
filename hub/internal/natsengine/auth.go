package natsengine

import (
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/pifleet/pifleet/internal/credentials"
	"github.com/pifleet/pifleet/internal/loglimit"
)

// engineUser is the engine's own login (the hub's NATS connection and the
// warm-up). ':' is never part of an id, so no credentials entry can be it.
const engineUser = "pifleet:engine"

// authenticator is nats-server's CustomClientAuthentication: it checks
// logins against the credentials file, whose "$7$" hashes nats-server
// cannot check itself, and registers each identity's permissions.
type authenticator struct {
	creds    atomic.Pointer[credentials.File]
	secret   string // engineUser's password, new at every start
	log      *slog.Logger
	refused  atomic.Int64
	limitLog loglimit.Limit
}

// Check implements server.Authentication. It runs in the connection's read
// loop, for NATS and MQTT clients alike, before the CONNACK.
func (a *authenticator) Check(c server.ClientAuthentication) bool {
	opts := c.GetOpts()
	cid, isMQTT, err := mqttClientID(c)
	if err != nil {
		a.refuse(c, cid, opts.Username, err)
		return false
	}
	if opts.Username == engineUser {
		if subtle.ConstantTimeCompare([]byte(opts.Password), []byte(a.secret)) != 1 {
			a.refuse(c, cid, opts.Username, errors.New("wrong password"))
			return false
		}
		c.RegisterUser(&server.User{Username: engineUser}) // no permissions: everything
		return true
	}
	if !isMQTT {
		a.refuse(c, cid, opts.Username, errors.New("the NATS port is the hub's own; devices and hubs log in over MQTT"))
		return false
	}
	id, err := a.authenticate(c, cid)
	if err != nil {
		a.refuse(c, cid, opts.Username, err)
		return false
	}
	c.RegisterUser(&server.User{Username: id.id, Permissions: id.permissions()})
	return true
}

func (a *authenticator) refuse(c server.ClientAuthentication, cid, user string, err error) {
	a.refused.Add(1)
	if ok, _ := a.limitLog.Allow(time.Now()); ok {
		// The username is logged (it is an id, not a secret); the password never.
		a.log.Warn("connection refused", "client", cid, "username", user, "remote", c.RemoteAddress(), "err", err)
	}
}

// authenticate logs a client in (credentials.File.Login): a verified
// client certificate first (CN = id, SHA-256 as issued), else username = id and password;
// then the client id must fit the identity.
func (a *authenticator) authenticate(c server.ClientAuthentication, cid string) (identity, error) {
	creds := a.creds.Load()
	var cert *x509.Certificate // verified against the fleet CA; Login checks its CN and SHA-256
	if cs := c.GetTLSConnectionState(); cs != nil && len(cs.VerifiedChains) > 0 {
		cert = cs.VerifiedChains[0][0]
	}
	name, hub, err := creds.Login(c.GetOpts().Username, c.GetOpts().Password, cert)
	if err != nil {
		return identity{}, err
	}
	id := identity{roleDevice, name}
	if hub {
		id.role = roleHub
	}
	if !id.clientIDAllowed(cid) {
		return identity{}, fmt.Errorf("client id %q not allowed for %s %q", cid, id.role, id.id)
	}
	return id, nil
}

// mqttClientID returns the MQTT client id of c, and whether c is an MQTT
// connection at all. nats-server does not show either through
// server.ClientAuthentication, so they are read from its client struct
// (fields mqtt and mqtt.cid, v2.15.3). The read happens in the client's
// own read loop, which wrote them. If a nats-server upgrade renames them,
// every login is refused (fail closed) and the engine's tests fail.
func mqttClientID(c server.ClientAuthentication) (cid string, isMQTT bool, err error) {
	v := reflect.ValueOf(c)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return "", false, fmt.Errorf("nats-server client is a %T, not a struct pointer", c)
	}
	m := v.Elem().FieldByName("mqtt")
	if !m.IsValid() || m.Kind() != reflect.Pointer {
		return "", false, errors.New("this nats-server has no client.mqtt field: cannot tell MQTT logins")
	}
	if m.IsNil() {
		return "", false, nil
	}
	f := m.Elem().FieldByName("cid")
	if !f.IsValid() || f.Kind() != reflect.String {
		return "", true, errors.New("this nats-server has no client.mqtt.cid field: cannot check MQTT client ids")
	}
	return f.String(), true, nil
}
