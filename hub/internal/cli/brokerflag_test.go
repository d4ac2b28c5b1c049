package cli

import (
	"reflect"
	"strings"
	"testing"

	"github.com/pifleet/pifleet/internal/transport"
)

// --broker: MQTT URLs alone (as before, now several), or an external
// nats-server cluster's NATS URLs with its MQTT URLs; NATS URLs alone are
// refused with what to add.
func TestParseBroker(t *testing.T) {
	for _, c := range []struct {
		raw        string
		opts       transport.Options
		mqtt, nats []string
		err        string
	}{
		{raw: ""},
		{raw: "mqtt://127.0.0.1:1883", mqtt: []string{"mqtt://127.0.0.1:1883"}},
		{raw: "tls://broker.example", mqtt: []string{"tls://broker.example:8883"}}, // tls:// alone: MQTT over TLS, as always
		{raw: "mqtts://a.example,mqtts://b.example:8884", mqtt: []string{"mqtts://a.example:8883", "mqtts://b.example:8884"}},
		{raw: "nats://127.0.0.1:4222, nats://127.0.0.1:4223,mqtt://127.0.0.1:1883",
			nats: []string{"nats://127.0.0.1:4222", "nats://127.0.0.1:4223"}, mqtt: []string{"mqtt://127.0.0.1:1883"}},
		{raw: "tls://n1.example,tls://n2.example:4223,mqtts://n1.example,mqtts://n2.example",
			nats: []string{"tls://n1.example:4222", "tls://n2.example:4223"}, mqtt: []string{"mqtts://n1.example:8883", "mqtts://n2.example:8883"}},
		{raw: "nats://127.0.0.1:4222,nats://127.0.0.1:4223",
			err: "--broker nats://127.0.0.1:4222,nats://127.0.0.1:4223 names NATS servers but no MQTT listener: the hub's own session (presence, commands, results) speaks MQTT to the same servers; add each node's MQTT URL, e.g. --broker nats://127.0.0.1:4222,nats://127.0.0.1:4223,mqtt://127.0.0.1:1883"},
		{raw: "tls://n1.example:4222", err: "names NATS servers but no MQTT listener"},
		{raw: "nats://hub:s3cret@n1.example:4222", opts: transport.Options{AllowPlaintext: true}, err: "nats://hub:xxxxx@n1.example:4222 names NATS servers"},
		{raw: "nats://n1.example:4222,mqtts://n1.example", err: "plaintext off this machine"},
		{raw: "nats://n1.example:4222,mqtts://n1.example", opts: transport.Options{AllowPlaintext: true},
			nats: []string{"nats://n1.example:4222"}, mqtt: []string{"mqtts://n1.example:8883"}},
		{raw: "nats://127.0.0.1:4222,mqtts://127.0.0.1", opts: transport.Options{CAFile: "ca.pem"}, err: "use tls://127.0.0.1:4222"},
		{raw: "n1:4222", err: "want URLs such as"},
	} {
		b, err := parseBroker(c.raw, c.opts)
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) || strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "\n") {
				t.Errorf("%q: err %v, want one line with %q", c.raw, err, c.err)
			}
		case err != nil:
			t.Errorf("%q: %v", c.raw, err)
		case !reflect.DeepEqual(b.mqtt, c.mqtt) || !reflect.DeepEqual(b.nats, c.nats):
			t.Errorf("%q: mqtt %q nats %q, want %q %q", c.raw, b.mqtt, b.nats, c.mqtt, c.nats)
		}
	}
}

// The hub's one login serves the NATS side too; a missing password file
// stops the start and the password is never in an error.
func TestNATSOptions(t *testing.T) {
	if _, err := natsOptions(transport.Options{Username: "hub", PasswordFile: "/nonexistent/pw"}, []string{"nats://127.0.0.1:4222"}); err == nil {
		t.Error("a missing password file passed")
	}
	if _, err := natsOptions(transport.Options{CAFile: "/nonexistent/ca.pem"}, []string{"tls://127.0.0.1:4222"}); err == nil {
		t.Error("a missing CA file passed with tls://")
	}
	if o, err := natsOptions(transport.Options{}, []string{"nats://127.0.0.1:4222"}); err != nil || len(o) != 0 {
		t.Errorf("no login: %d options, %v", len(o), err)
	}
}
