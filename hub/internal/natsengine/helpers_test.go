package natsengine_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/pifleet/pifleet/hub/internal/natsengine"
	"github.com/pifleet/pifleet/internal/credentials"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/transport"
	"github.com/pifleet/pifleet/internal/transport/pki"
)

// fleetPKI is one hub, password devices (pi-a, pi-b, pi.kitchen) and one
// certificate device (pi-c), with every file a client or server needs.
type fleetPKI struct {
	dir                string
	ca                 string
	fleetCA            *pki.CA
	serverCert, srvKey string
	creds              *credentials.File
	pw                 map[string]string // id -> password file
	cert, key          map[string]string // id -> client cert / key file
}

func newFleetPKI(t *testing.T) *fleetPKI {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	ca, _, err := pki.NewCA("pifleet test CA", now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f := &fleetPKI{dir: dir, pw: map[string]string{}, cert: map[string]string{}, key: map[string]string{},
		creds: &credentials.File{Version: credentials.Version}}
	f.ca, f.fleetCA = f.write(t, "ca.pem", ca.CertPEM), ca
	sc, sk, err := ca.Issue(pki.Server, "broker", []string{"127.0.0.1", "localhost"}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f.serverCert, f.srvKey = f.write(t, "broker.pem", sc), f.write(t, "broker.key", sk)
	for _, x := range []struct {
		hub bool
		id  string
	}{{true, "hub"}, {false, "pi-a"}, {false, "pi-b"}, {false, "pi.kitchen"}} {
		pw, _ := credentials.NewPassword()
		h, err := credentials.HashPassword(pw)
		if err != nil {
			t.Fatal(err)
		}
		f.creds.Set(x.hub, credentials.Entry{ID: x.id, PasswordHash: h})
		f.pw[x.id] = f.write(t, x.id+".password", []byte(pw+"\n"))
	}
	f.creds.Set(false, credentials.Entry{ID: "pi-c"})
	for _, id := range []string{"pi-c", "pi-x"} { // pi-x: good certificate, not in the credentials
		c, k, err := ca.Issue(pki.Client, id, nil, now, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		f.cert[id], f.key[id] = f.write(t, id+".pem", c), f.write(t, id+".key", k)
	}
	f.pw["wrong"] = f.write(t, "wrong.password", []byte("not-the-password\n"))
	return f
}

// issue makes a client certificate (CN cn) from the fleet CA, stored as
// f.cert[name], and returns its PEM.
func (f *fleetPKI) issue(t *testing.T, name, cn string) []byte {
	t.Helper()
	c, k, err := f.fleetCA.Issue(pki.Client, cn, nil, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f.cert[name], f.key[name] = f.write(t, name+".pem", c), f.write(t, name+".key", k)
	return c
}

func (f *fleetPKI) write(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(f.dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// as returns client settings for an identity logging in by password.
func (f *fleetPKI) as(id string) transport.Options {
	return transport.Options{CAFile: f.ca, Username: id, PasswordFile: f.pw[id]}
}

// plain is as without TLS.
func (f *fleetPKI) plain(id string) transport.Options {
	return transport.Options{Username: id, PasswordFile: f.pw[id]}
}

// withCert returns client settings for a certificate login.
func (f *fleetPKI) withCert(id string) transport.Options {
	return transport.Options{CAFile: f.ca, CertFile: f.cert[id], KeyFile: f.key[id]}
}

func (f *fleetPKI) tls() *transport.ServerFiles {
	return &transport.ServerFiles{CertFile: f.serverCert, KeyFile: f.srvKey, ClientCAFile: f.ca}
}

// start runs an engine on free loopback ports and closes it at the end.
func start(t *testing.T, o natsengine.Options) *natsengine.Engine {
	t.Helper()
	o.MQTTListen, o.NATSListen = "127.0.0.1:0", "127.0.0.1:0"
	e, err := natsengine.Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return e
}

type client struct {
	paho.Client
	msgs chan paho.Message
}

func connect(url string, o transport.Options, clientID string, will string) (*client, error) {
	opts := paho.NewClientOptions().AddBroker(url).SetClientID(clientID).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(20 * time.Second).
		SetCleanSession(true)
	if will != "" {
		opts.SetWill(will, "lost", 1, false)
	}
	if err := o.Apply(opts); err != nil {
		return nil, err
	}
	c := &client{msgs: make(chan paho.Message, 10000)}
	opts.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { c.msgs <- m })
	c.Client = paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(30 * time.Second) {
		return nil, errors.New("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	return c, nil
}

func mustConnect(t *testing.T, url string, o transport.Options, clientID string) *client {
	t.Helper()
	c, err := connect(url, o, clientID, "")
	if err != nil {
		t.Fatalf("connect %s as %q: %v", url, clientID, err)
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

// sub subscribes and returns the SUBACK codes, in filter order.
func (c *client) sub(t *testing.T, filters ...string) []byte {
	t.Helper()
	var codes []byte
	for _, f := range filters {
		tok := c.Subscribe(f, 1, func(_ paho.Client, m paho.Message) { c.msgs <- m })
		if !tok.WaitTimeout(20 * time.Second) {
			t.Fatalf("subscribe %s timed out", f)
		}
		codes = append(codes, tok.(*paho.SubscribeToken).Result()[f])
	}
	return codes
}

func (c *client) pub(t *testing.T, topic string, qos byte, retained bool, payload string) {
	t.Helper()
	tok := c.Publish(topic, qos, retained, payload)
	if !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// next returns the next message, failing after a generous deadline.
func (c *client) next(t *testing.T) paho.Message {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(20 * time.Second):
		t.Fatal("no message within 20s")
		return nil
	}
}

// rawConnect logs in over a raw connection (TLS when url is mqtts://) with
// a will on willTopic and returns the connection and whether the CONNACK
// accepted it. Closing the connection without DISCONNECT makes the
// server publish the will.
func rawConnect(t *testing.T, url, caFile, clientID, user, pass, willTopic string) (net.Conn, bool) {
	t.Helper()
	addr := url[strings.Index(url, "://")+3:]
	var conn net.Conn
	var err error
	if strings.HasPrefix(url, "mqtts://") {
		cfg, cerr := transport.Options{CAFile: caFile}.TLSConfig()
		if cerr != nil {
			t.Fatal(cerr)
		}
		cfg.ServerName = "127.0.0.1"
		conn, err = tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	} else {
		conn, err = net.DialTimeout("tcp", addr, 10*time.Second)
	}
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := conn.Write(testenv.MQTTConnect(clientID, user, pass, willTopic, "lost")); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	_, err = io.ReadFull(conn, ack)
	_ = conn.SetDeadline(time.Time{})
	return conn, err == nil && ack[0] == 0x20 && ack[3] == 0
}

func password(t *testing.T, f *fleetPKI, id string) string {
	t.Helper()
	pw, err := transport.ReadPasswordFile(f.pw[id])
	if err != nil {
		t.Fatal(err)
	}
	return pw
}
