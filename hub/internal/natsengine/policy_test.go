package natsengine_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/natsengine"
	"github.com/pifleet/pifleet/internal/credentials"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/transport"
	"github.com/pifleet/pifleet/internal/wire"
)

// TestPolicy is the broker policy suite (hub/internal/broker's runPolicy
// checks the same on Mosquitto with the generated config), with the checks
// only the embedded engine makes, against the nats engine. Negative
// checks never wait
// for "nothing happens": a forbidden message is followed by an allowed one
// on the same path, and the allowed one must arrive first.
func TestPolicy(t *testing.T) {
	f := newFleetPKI(t)
	e := start(t, natsengine.Options{Credentials: f.creds, TLS: f.tls()})
	url := e.MQTTURL()
	if !strings.HasPrefix(url, "mqtts://") {
		t.Fatalf("MQTTURL %s, want mqtts://", url)
	}

	t.Run("wrong credentials refused", func(t *testing.T) {
		for name, o := range map[string]transport.Options{
			"wrong password":   {CAFile: f.ca, Username: "pi-a", PasswordFile: f.pw["wrong"]},
			"unknown user":     {CAFile: f.ca, Username: "pi-zz", PasswordFile: f.pw["pi-a"]},
			"other's password": {CAFile: f.ca, Username: "pi-a", PasswordFile: f.pw["pi-b"]},
			"anonymous":        {CAFile: f.ca},
		} {
			if c, err := connect(url, o, "pifleet-agent-pi-a", ""); err == nil {
				c.Disconnect(0)
				t.Errorf("%s: connected, want refused", name)
			}
		}
	})

	t.Run("device cannot publish another device's state", func(t *testing.T) {
		hub := mustConnect(t, url, f.as("hub"), "hub")
		hub.sub(t, wire.FilterAllStates)
		a := mustConnect(t, url, f.as("pi-a"), "pifleet-agent-pi-a")
		a.pub(t, wire.StateTopic("pi-b"), 0, false, "forged")
		a.pub(t, wire.StateTopic("pi-b"), 1, false, "forged at QoS 1") // PUBACKed, dropped
		a.pub(t, wire.StateTopic("pi-a"), 1, false, "real")
		if m := hub.next(t); m.Topic() != wire.StateTopic("pi-a") {
			t.Errorf("hub got %s %q first, want pi-a's own state: the forged state for pi-b got through", m.Topic(), m.Payload())
		}
	})

	t.Run("device cannot read another device's commands", func(t *testing.T) {
		a := mustConnect(t, url, f.as("pi-a"), "pifleet-agent-pi-a")
		codes := a.sub(t, wire.CmdTopic("pi-b"), wire.Root+"/devices/+/cmd", wire.Root+"/#", "#", wire.CmdTopic("pi-a"))
		if want := []byte{0x80, 0x80, 0x80, 0x80, 1}; string(codes) != string(want) {
			t.Errorf("SUBACK codes %x, want %x", codes, want)
		}
		hub := mustConnect(t, url, f.as("hub"), "hub")
		hub.pub(t, wire.CmdTopic("pi-b"), 1, false, "for pi-b only")
		hub.pub(t, wire.CmdTopic("pi-a"), 1, false, "for pi-a")
		if m := a.next(t); m.Topic() != wire.CmdTopic("pi-a") || string(m.Payload()) != "for pi-a" {
			t.Errorf("pi-a got %s %q first, want its own command: it read pi-b's", m.Topic(), m.Payload())
		}
	})

	t.Run("device reads its own state and hub presence, not others' status", func(t *testing.T) {
		a := mustConnect(t, url, f.as("pi-a"), "pifleet-agent-pi-a")
		codes := a.sub(t, wire.StateTopic("pi-a"), wire.FilterAllHubs, wire.HubPresenceTopic("hub"),
			wire.StatusTopic("pi-b"), wire.StateTopic("pi-b"), wire.FilterAllStates)
		if want := []byte{1, 1, 1, 0x80, 0x80, 0x80}; string(codes) != string(want) {
			t.Errorf("SUBACK codes %x, want %x", codes, want)
		}
	})

	t.Run("only the hub sends commands", func(t *testing.T) {
		hub := mustConnect(t, url, f.as("hub"), "hub")
		if codes := hub.sub(t, wire.Root+"/#", "#"); string(codes) != string([]byte{1, 0x80}) {
			t.Errorf("hub SUBACK codes %x, want 01 80", codes)
		}
		a := mustConnect(t, url, f.as("pi-a"), "pifleet-agent-pi-a")
		a.pub(t, wire.CmdTopic("pi-b"), 0, false, "forged command")
		a.pub(t, wire.CmdTopic("pi-a"), 1, false, "forged command to self")
		a.pub(t, wire.HubPresenceTopic("hub"), 1, false, "forged presence")
		a.pub(t, wire.StatusTopic("pi-a"), 1, false, "status")
		if m := hub.next(t); m.Topic() != wire.StatusTopic("pi-a") {
			t.Errorf("hub saw %s %q first, want pi-a's status: a device published a command", m.Topic(), m.Payload())
		}
	})

	t.Run("results: device under its own tree, hub clears only its own", func(t *testing.T) {
		hub := mustConnect(t, url, f.as("hub"), "hub")
		hub.sub(t, wire.Root+"/devices/+/result/#")
		a := mustConnect(t, url, f.as("pi-a"), "pifleet-agent-pi-a")
		a.pub(t, wire.ResultTopic("pi-b", "hub", "c1"), 1, false, "forged result")
		hub.pub(t, wire.ResultTopic("pi-a", "other", "c1"), 1, false, "not hub's")
		hub.pub(t, wire.StateTopic("pi-a"), 1, false, "hub forging a state")
		a.pub(t, wire.ResultTopic("pi-a", "hub", "c1"), 1, false, "real")
		if m := hub.next(t); m.Topic() != wire.ResultTopic("pi-a", "hub", "c1") {
			t.Errorf("hub saw %s %q first, want pi-a's result", m.Topic(), m.Payload())
		}
		hub.pub(t, wire.ResultTopic("pi-a", "hub", "c1"), 1, false, "")
		if m := hub.next(t); m.Topic() != wire.ResultTopic("pi-a", "hub", "c1") || len(m.Payload()) != 0 {
			t.Errorf("hub saw %s %q, want its own clear of pi-a's result", m.Topic(), m.Payload())
		}
	})

	t.Run("will outside own topics never delivered", func(t *testing.T) {
		// nats-server accepts such a connect and drops the will when it
		// checks the publish permission; the hub must see pi-a's own will,
		// sent after, and not the forged one.
		hub := mustConnect(t, url, f.as("hub"), "hub")
		hub.sub(t, wire.FilterAllStates)
		pw := password(t, f, "pi-a")
		conn, _ := rawConnect(t, url, f.ca, "pifleet-agent-pi-a", "pi-a", pw, wire.StateTopic("pi-b"))
		conn.Close()
		conn, ok := rawConnect(t, url, f.ca, "pifleet-agent-pi-a", "pi-a", pw, wire.StateTopic("pi-a"))
		if !ok {
			t.Fatal("pi-a with a will on its own state: refused, want accepted")
		}
		conn.Close()
		if m := hub.next(t); m.Topic() != wire.StateTopic("pi-a") {
			t.Errorf("hub got will %s %q first, want pi-a's own: a forged will got through", m.Topic(), m.Payload())
		}
	})

	t.Run("plaintext refused", func(t *testing.T) {
		plain := strings.Replace(url, "mqtts://", "mqtt://", 1)
		if c, err := connect(plain, f.plain("pi-a"), "pifleet-agent-pi-a", ""); err == nil {
			c.Disconnect(0)
			t.Errorf("plaintext MQTT to the TLS listener connected, want refused")
		}
	})

	t.Run("client certificate", func(t *testing.T) {
		hub := mustConnect(t, url, f.as("hub"), "hub")
		hub.sub(t, wire.FilterAllStates)
		c := mustConnect(t, url, f.withCert("pi-c"), "pifleet-agent-pi-c")
		c.pub(t, wire.StateTopic("pi-a"), 1, false, "forged by pi-c")
		c.pub(t, wire.StateTopic("pi-c"), 1, false, "online")
		if m := hub.next(t); m.Topic() != wire.StateTopic("pi-c") {
			t.Errorf("hub got %s, want pi-c's state", m.Topic())
		}
		imp := f.withCert("pi-c")
		imp.Username = "pi-a"
		if c, err := connect(url, imp, "pifleet-agent-pi-a", ""); err == nil {
			c.Disconnect(0)
			t.Errorf("pi-c's certificate with username pi-a connected, want refused")
		}
		if c, err := connect(url, f.withCert("pi-x"), "pifleet-agent-pi-x", ""); err == nil {
			c.Disconnect(0)
			t.Errorf("a valid certificate for an id not in the credentials connected, want refused")
		}
		if c, err := connect(url, f.as("pi-c"), "pifleet-agent-pi-c", ""); err == nil {
			c.Disconnect(0)
			t.Errorf("certificate-only pi-c connected without its certificate")
		}
	})

	t.Run("device cannot take over another's session", func(t *testing.T) {
		for _, cid := range []string{"pifleet-agent-pi-b", "pi-b", "hub"} {
			if c, err := connect(url, f.as("pi-a"), cid, ""); err == nil {
				c.Disconnect(0)
				t.Errorf("pi-a connected with client id %q, want refused", cid)
			}
		}
		if c, err := connect(url, f.as("hub"), "pifleet-agent-pi-a", ""); err == nil {
			c.Disconnect(0)
			t.Errorf("hub connected with an agent's client id, want refused")
		}
	})

	t.Run("NATS port only for the engine", func(t *testing.T) {
		nc, err := e.ConnectNATS()
		if err != nil {
			t.Fatalf("engine's own NATS login: %v", err)
		}
		nc.Close()
		pw := password(t, f, "hub")
		if nc, err := natsConnect(e.NATSURL(), "hub", pw); err == nil {
			nc.Close()
			t.Errorf("hub's MQTT password on the NATS port connected, want refused")
		}
	})

	if e.Refused() == 0 {
		t.Errorf("refused counter stayed 0")
	}
}

// TestOptionsRefused: settings that would open the fleet to anyone are an
// error at Start, not a warning.
func TestOptionsRefused(t *testing.T) {
	f := newFleetPKI(t)
	for name, o := range map[string]natsengine.Options{
		"no credentials, MQTT on all addresses": {MQTTListen: "0.0.0.0:0", NATSListen: "127.0.0.1:0"},
		"no credentials, NATS on all addresses": {MQTTListen: "127.0.0.1:0", NATSListen: ":0"},
		"credentials without TLS":               {MQTTListen: "127.0.0.1:0", NATSListen: "127.0.0.1:0", Credentials: f.creds},
	} {
		if e, err := natsengine.Start(t.Context(), o); err == nil {
			e.Close()
			t.Errorf("%s: started, want an error", name)
		}
	}
}

// TestSetCredentials: a device provisioned while the engine runs can log
// in once the credentials are swapped (SIGHUP), without a restart.
func TestSetCredentials(t *testing.T) {
	f := newFleetPKI(t)
	before := *f.creds
	before.Devices = nil
	e := start(t, natsengine.Options{Credentials: &before, AllowPlaintext: true})
	if c, err := connect(e.MQTTURL(), f.plain("pi-a"), "pifleet-agent-pi-a", ""); err == nil {
		c.Disconnect(0)
		t.Fatalf("pi-a connected before it was provisioned")
	}
	if err := e.SetCredentials(f.creds); err != nil {
		t.Fatal(err)
	}
	mustConnect(t, e.MQTTURL(), f.plain("pi-a"), "pifleet-agent-pi-a")
}

// TestDisconnectDevice: a revoked device is cut off at once — its live
// session closes (password and certificate logins alike) and its login is
// refused from then on — while another device stays connected.
func TestDisconnectDevice(t *testing.T) {
	f := newFleetPKI(t)
	e := start(t, natsengine.Options{Credentials: f.creds, TLS: f.tls()})
	for _, x := range []struct {
		id   string
		opts transport.Options
	}{{"pi-a", f.as("pi-a")}, {"pi-c", f.withCert("pi-c")}} {
		t.Run(x.id, func(t *testing.T) {
			victim := mustConnect(t, e.MQTTURL(), x.opts, "pifleet-agent-"+x.id)
			other := mustConnect(t, e.MQTTURL(), f.as("pi-b"), "pifleet-agent-pi-b")
			revoked := *f.creds
			revoked.Devices = append([]credentials.Entry(nil), f.creds.Devices...)
			revoked.Remove(x.id)
			if err := e.SetCredentials(&revoked); err != nil {
				t.Fatal(err)
			}
			if !victim.IsConnectionOpen() {
				t.Fatalf("%s was cut off by the credentials swap alone; the test would prove nothing", x.id)
			}
			n, err := e.DisconnectDevice(x.id)
			if err != nil || n != 1 {
				t.Fatalf("DisconnectDevice(%s) = %d, %v; want 1 session closed", x.id, n, err)
			}
			testenv.Eventually(t, 5*time.Second, func() string {
				if victim.IsConnectionOpen() {
					return x.id + "'s session is still open"
				}
				return ""
			})
			if !other.IsConnectionOpen() {
				t.Errorf("pi-b was disconnected too")
			}
			if c, err := connect(e.MQTTURL(), x.opts, "pifleet-agent-"+x.id, ""); err == nil {
				c.Disconnect(0)
				t.Errorf("%s logged in again after its login was removed", x.id)
			}
			if err := e.SetCredentials(f.creds); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestReenrolledIDRefusesOldCert: a certificate login is bound to the
// certificate issued for it. Pi pi-r joins with certificate A, is removed
// (stolen), and a new Pi joins as pi-r with certificate B: A, from the
// same fleet CA with the same CN, stays out and B logs in. A Pi with a
// password cannot log in with a fleet certificate carrying its id.
func TestReenrolledIDRefusesOldCert(t *testing.T) {
	f := newFleetPKI(t)
	withEntry := func(e credentials.Entry) *credentials.File {
		c := f.creds.Clone()
		c.Set(false, e)
		return c
	}
	a, err := credentials.CertEntry("pi-r", f.issue(t, "pi-r-A", "pi-r"))
	if err != nil {
		t.Fatal(err)
	}
	e := start(t, natsengine.Options{Credentials: withEntry(a), TLS: f.tls()})
	stolen := mustConnect(t, e.MQTTURL(), f.withCert("pi-r-A"), "pifleet-agent-pi-r")

	// remove-pi pi-r: the login goes, the session is cut.
	if err := e.SetCredentials(f.creds.Clone()); err != nil {
		t.Fatal(err)
	}
	if n, err := e.DisconnectDevice("pi-r"); err != nil || n != 1 {
		t.Fatalf("DisconnectDevice(pi-r) = %d, %v; want 1", n, err)
	}
	testenv.Eventually(t, 5*time.Second, func() string {
		if stolen.IsConnectionOpen() {
			return "the removed Pi's session is still open"
		}
		return ""
	})

	// A new Pi joins as pi-r with certificate B.
	b, err := credentials.CertEntry("pi-r", f.issue(t, "pi-r-B", "pi-r"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SetCredentials(withEntry(b)); err != nil {
		t.Fatal(err)
	}
	if c, err := connect(e.MQTTURL(), f.withCert("pi-r-A"), "pifleet-agent-pi-r", ""); err == nil {
		c.Disconnect(0)
		t.Errorf("the removed Pi's certificate A logged in as the new pi-r")
	}
	mustConnect(t, e.MQTTURL(), f.withCert("pi-r-B"), "pifleet-agent-pi-r")

	// pi-a logs in with its password; a fleet certificate for pi-a does not.
	f.issue(t, "pi-a-cert", "pi-a")
	if c, err := connect(e.MQTTURL(), f.withCert("pi-a-cert"), "pifleet-agent-pi-a", ""); err == nil {
		c.Disconnect(0)
		t.Errorf("a certificate logged in as password Pi pi-a")
	}
	mustConnect(t, e.MQTTURL(), f.as("pi-a"), "pifleet-agent-pi-a")
}
