package broker_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/pifleet/pifleet/hub/internal/broker"
	"github.com/pifleet/pifleet/internal/credentials"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/transport"
	"github.com/pifleet/pifleet/internal/transport/pki"
	"github.com/pifleet/pifleet/internal/wire"
)

// fleetPKI is one hub, two password devices (pi-a, pi-b) and one
// certificate device (pi-c), with every file a client or broker needs.
type fleetPKI struct {
	dir                string
	ca                 string
	serverCert, srvKey string
	creds              *credentials.File
	pw                 map[string]string // id -> password file
	cert, key          map[string]string // id -> client cert / key file
}

func newFleetPKI(t *testing.T) *fleetPKI {
	t.Helper()
	// Not t.TempDir: its parent is 0700, and mosquitto started as root
	// drops to user mosquitto before it reads the password file.
	dir, err := os.MkdirTemp("", "pifleet-broker-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ca, _, err := pki.NewCA("pifleet test CA", now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f := &fleetPKI{dir: dir, pw: map[string]string{}, cert: map[string]string{}, key: map[string]string{},
		creds: &credentials.File{Version: credentials.Version}}
	f.ca = f.write("ca.pem", ca.CertPEM)
	sc, sk, err := ca.Issue(pki.Server, "broker", []string{"127.0.0.1", "localhost"}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f.serverCert, f.srvKey = f.write("broker.pem", sc), f.write("broker.key", sk)
	for _, x := range []struct {
		hub bool
		id  string
	}{{true, "hub"}, {false, "pi-a"}, {false, "pi-b"}} {
		pw, _ := credentials.NewPassword()
		h, err := credentials.HashPassword(pw)
		if err != nil {
			t.Fatal(err)
		}
		f.creds.Set(x.hub, credentials.Entry{ID: x.id, PasswordHash: h})
		f.pw[x.id] = f.write(x.id+".password", []byte(pw+"\n"))
	}
	f.creds.Set(false, credentials.Entry{ID: "pi-c"})
	for _, id := range []string{"pi-c", "pi-x"} { // pi-x: good certificate, not in the credentials
		c, k, err := ca.Issue(pki.Client, id, nil, now, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		f.cert[id], f.key[id] = f.write(id+".pem", c), f.write(id+".key", k)
	}
	f.pw["wrong"] = f.write("wrong.password", []byte("not-the-password\n"))
	return f
}

func (f *fleetPKI) write(name string, b []byte) string {
	p := filepath.Join(f.dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		panic(err)
	}
	return p
}

// as returns client settings for an identity logging in by password.
func (f *fleetPKI) as(id string) transport.Options {
	return transport.Options{CAFile: f.ca, Username: id, PasswordFile: f.pw[id]}
}

// withCert returns client settings for a certificate login.
func (f *fleetPKI) withCert(id string) transport.Options {
	return transport.Options{CAFile: f.ca, CertFile: f.cert[id], KeyFile: f.key[id]}
}

type client struct {
	paho.Client
	msgs chan paho.Message
}

func connect(url string, o transport.Options, clientID string, will string) (*client, error) {
	opts := paho.NewClientOptions().AddBroker(url).SetClientID(clientID).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(10 * time.Second).
		SetCleanSession(true)
	if will != "" {
		opts.SetWill(will, "lost", 1, false)
	}
	if err := o.Apply(opts); err != nil {
		return nil, err
	}
	c := &client{msgs: make(chan paho.Message, 100)}
	opts.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { c.msgs <- m })
	c.Client = paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(20 * time.Second) {
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

func (c *client) sub(t *testing.T, filters ...string) {
	t.Helper()
	for _, f := range filters {
		tok := c.Subscribe(f, 1, func(_ paho.Client, m paho.Message) { c.msgs <- m })
		if !tok.WaitTimeout(20 * time.Second) {
			t.Fatalf("subscribe %s timed out", f)
		}
	}
}

func (c *client) pub(t *testing.T, topic string, qos byte, payload string) {
	t.Helper()
	tok := c.Publish(topic, qos, false, payload)
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

// target is a broker under test: Mosquitto with the generated config (the
// embedded nats engine has the same checks in natsengine's TestPolicy).
type target struct {
	url string // mqtts://127.0.0.1:PORT
}

// runPolicy runs the same checks against any broker. Negative checks never
// wait for "nothing happens": a forbidden message is followed by an
// allowed one on the same path, and the allowed one must arrive first.
func runPolicy(t *testing.T, f *fleetPKI, tg target) {
	t.Run("wrong credentials refused", func(t *testing.T) {
		for name, o := range map[string]transport.Options{
			"wrong password":   {CAFile: f.ca, Username: "pi-a", PasswordFile: f.pw["wrong"]},
			"unknown user":     {CAFile: f.ca, Username: "pi-zz", PasswordFile: f.pw["pi-a"]},
			"other's password": {CAFile: f.ca, Username: "pi-a", PasswordFile: f.pw["pi-b"]},
			"anonymous":        {CAFile: f.ca},
		} {
			if c, err := connect(tg.url, o, "pifleet-agent-pi-a", ""); err == nil {
				c.Disconnect(0)
				t.Errorf("%s: connected, want refused", name)
			}
		}
	})

	t.Run("device cannot publish another device's state", func(t *testing.T) {
		hub := mustConnect(t, tg.url, f.as("hub"), "hub")
		hub.sub(t, wire.FilterAllStates)
		a := mustConnect(t, tg.url, f.as("pi-a"), "pifleet-agent-pi-a")
		a.pub(t, wire.StateTopic("pi-b"), 0, "forged")
		a.pub(t, wire.StateTopic("pi-a"), 1, "real")
		if m := hub.next(t); m.Topic() != wire.StateTopic("pi-a") {
			t.Errorf("hub got %s %q first, want pi-a's own state: the forged state for pi-b got through", m.Topic(), m.Payload())
		}
	})

	t.Run("device cannot read another device's commands", func(t *testing.T) {
		a := mustConnect(t, tg.url, f.as("pi-a"), "pifleet-agent-pi-a")
		a.sub(t, wire.CmdTopic("pi-b"), wire.Root+"/devices/+/cmd", wire.Root+"/#", wire.CmdTopic("pi-a"))
		hub := mustConnect(t, tg.url, f.as("hub"), "hub")
		hub.pub(t, wire.CmdTopic("pi-b"), 1, "for pi-b only")
		hub.pub(t, wire.CmdTopic("pi-a"), 1, "for pi-a")
		if m := a.next(t); m.Topic() != wire.CmdTopic("pi-a") || string(m.Payload()) != "for pi-a" {
			t.Errorf("pi-a got %s %q first, want its own command: it read pi-b's", m.Topic(), m.Payload())
		}
	})

	t.Run("device reads its own retained state, not another's", func(t *testing.T) {
		// The agent reads its own retained state on connect: a stale will
		// of its previous session, or a state deleted or forged by someone
		// else, is what it answers with a fresh birth (internal/link).
		retain := func(id, payload string) {
			t.Helper()
			d := mustConnect(t, tg.url, f.as(id), "pifleet-agent-"+id)
			defer d.Disconnect(50)
			tok := d.Publish(wire.StateTopic(id), 1, true, payload)
			if !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
				t.Fatalf("publish %s: %v", id, tok.Error())
			}
		}
		for _, id := range []string{"pi-b", "pi-a"} {
			retain(id, "retained "+id)
			defer retain(id, "") // the later cases must not see these
		}
		a := mustConnect(t, tg.url, f.as("pi-a"), "pifleet-agent-pi-a")
		a.sub(t, wire.StateTopic("pi-b"), wire.StateTopic("pi-a"))
		if m := a.next(t); m.Topic() != wire.StateTopic("pi-a") || string(m.Payload()) != "retained pi-a" {
			t.Errorf("pi-a got %s %q first, want its own retained state: it read pi-b's", m.Topic(), m.Payload())
		}
	})

	t.Run("only the hub sends commands", func(t *testing.T) {
		hub := mustConnect(t, tg.url, f.as("hub"), "hub")
		hub.sub(t, wire.Root+"/#")
		a := mustConnect(t, tg.url, f.as("pi-a"), "pifleet-agent-pi-a")
		a.pub(t, wire.CmdTopic("pi-b"), 0, "forged command")
		a.pub(t, wire.CmdTopic("pi-a"), 0, "forged command to self")
		a.pub(t, wire.StatusTopic("pi-a"), 1, "status")
		if m := hub.next(t); m.Topic() != wire.StatusTopic("pi-a") {
			t.Errorf("hub saw %s %q first, want pi-a's status: a device published a command", m.Topic(), m.Payload())
		}
	})

	t.Run("will outside own topics never delivered", func(t *testing.T) {
		// Mosquitto accepts such a connect and checks the ACL when it
		// sends the will. The hub must see pi-a's own will, published
		// after, and not the forged one.
		hub := mustConnect(t, tg.url, f.as("hub"), "hub")
		hub.sub(t, wire.FilterAllStates)
		dropWithWill(t, tg.url, f, "pi-a", wire.StateTopic("pi-b"), false)
		dropWithWill(t, tg.url, f, "pi-a", wire.StateTopic("pi-a"), true)
		if m := hub.next(t); m.Topic() != wire.StateTopic("pi-a") {
			t.Errorf("hub got will %s %q first, want pi-a's own: a forged will got through", m.Topic(), m.Payload())
		}
	})

	t.Run("plaintext refused", func(t *testing.T) {
		plain := strings.Replace(tg.url, "mqtts://", "mqtt://", 1)
		o := f.as("pi-a")
		o.CAFile = ""
		if c, err := connect(plain, o, "pifleet-agent-pi-a", ""); err == nil {
			c.Disconnect(0)
			t.Errorf("plaintext MQTT to the TLS listener connected, want refused")
		}
	})
}

// dropWithWill logs in as id with a will on willTopic over a raw TLS
// connection and then drops it without DISCONNECT, so the broker sends the
// will (if it accepted it). mustAccept says the CONNACK must be success.
func dropWithWill(t *testing.T, url string, f *fleetPKI, id, willTopic string, mustAccept bool) {
	t.Helper()
	pw, err := transport.ReadPasswordFile(f.pw[id])
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := transport.Options{CAFile: f.ca}.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg.ServerName = "127.0.0.1"
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", strings.TrimPrefix(url, "mqtts://"), cfg)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := conn.Write(testenv.MQTTConnect(wire.ClientID(wire.ClientAgent, id), id, pw, willTopic, "lost")); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	_, err = io.ReadFull(conn, ack)
	accepted := err == nil && ack[0] == 0x20 && ack[3] == 0
	if mustAccept && !accepted {
		t.Fatalf("connect %s with will on %s: CONNACK %x, %v; want accepted", id, willTopic, ack, err)
	}
	conn.Close() // no DISCONNECT: the broker publishes the will
}

func writeMosquitto(t *testing.T, f *fleetPKI, extra string) *testenv.Mosquitto {
	t.Helper()
	files, err := broker.MosquittoConfig(f.creds, broker.MosquittoPaths{
		PasswordFile: filepath.Join(f.dir, "mosq.passwd"), ACLFile: filepath.Join(f.dir, "mosq.acl"),
		CAFile: f.ca, CertFile: f.serverCert, KeyFile: f.srvKey, Listener: "{{PORT}} 127.0.0.1",
	})
	if err != nil {
		t.Fatal(err)
	}
	f.write("mosq.passwd", []byte(files.Passwords))
	f.write("mosq.acl", []byte(files.ACL))
	return testenv.StartMosquitto(t, files.Conf+extra)
}

func TestPolicyMosquitto(t *testing.T) {
	f := newFleetPKI(t)
	m := writeMosquitto(t, f, "")
	runPolicy(t, f, target{url: fmt.Sprintf("mqtts://127.0.0.1:%d", m.Port)})
}

func TestClientCertificateMosquitto(t *testing.T) {
	f := newFleetPKI(t)
	m := writeMosquitto(t, f, "require_certificate true\nuse_identity_as_username true\n")
	url := fmt.Sprintf("mqtts://127.0.0.1:%d", m.Port)
	c := mustConnect(t, url, f.withCert("pi-c"), "pifleet-agent-pi-c")
	// The certificate's CN is the username, so the %u patterns apply:
	// pi-c may publish its state (QoS 1 is acknowledged).
	c.pub(t, wire.StateTopic("pi-c"), 1, "online")
	if _, err := connect(url, f.as("pi-a"), "pifleet-agent-pi-a", ""); err == nil {
		t.Errorf("password login on a require_certificate listener connected, want refused")
	}
}
