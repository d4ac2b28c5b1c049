package transport_test

import (
	"crypto/tls"
	"errors"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pifleet/pifleet/internal/transport"
	"github.com/pifleet/pifleet/internal/transport/pki"
)

var issued = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

type files struct {
	dir                                                  string
	ca, serverCert, serverKey, clientCert, clientKey, pw string
}

func write(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func makeFiles(t *testing.T) files {
	t.Helper()
	dir := t.TempDir()
	ca, _, err := pki.NewCA("pifleet test CA", issued, 24*time.Hour*365)
	if err != nil {
		t.Fatal(err)
	}
	sc, sk, err := ca.Issue(pki.Server, "broker", []string{"broker.test", "127.0.0.1"}, issued, 24*time.Hour*30)
	if err != nil {
		t.Fatal(err)
	}
	cc, ck, err := ca.Issue(pki.Client, "pi-1", nil, issued, 24*time.Hour*30)
	if err != nil {
		t.Fatal(err)
	}
	return files{
		dir: dir, ca: write(t, dir, "ca.pem", ca.CertPEM),
		serverCert: write(t, dir, "server.pem", sc), serverKey: write(t, dir, "server.key", sk),
		clientCert: write(t, dir, "client.pem", cc), clientKey: write(t, dir, "client.key", ck),
		pw: write(t, dir, "password", []byte("s3cret-value\n")),
	}
}

func at(ts time.Time) func() time.Time { return func() time.Time { return ts } }

func TestApplyErrors(t *testing.T) {
	f := makeFiles(t)
	now := at(issued.Add(48 * time.Hour))
	for _, tc := range []struct {
		name string
		o    transport.Options
		want string // substring of the error; "" = success
	}{
		{"loopback plaintext", transport.Options{Broker: "mqtt://127.0.0.1:1883"}, ""},
		{"remote plaintext refused", transport.Options{Broker: "mqtt://192.0.2.10"}, "plaintext MQTT off this machine"},
		{"remote plaintext allowed in lab", transport.Options{Broker: "mqtt://192.0.2.10", AllowPlaintext: true}, ""},
		{"no broker", transport.Options{}, "no broker URL"},
		{"bad scheme", transport.Options{Broker: "http://x"}, `scheme "http" not supported`},
		{"tls files on plaintext", transport.Options{Broker: "mqtt://127.0.0.1", CAFile: f.ca}, "use mqtts://"},
		{"missing CA", transport.Options{Broker: "mqtts://h", CAFile: "/nonexistent/ca.pem"}, "CA file: open /nonexistent/ca.pem"},
		{"CA without PEM", transport.Options{Broker: "mqtts://h", CAFile: f.pw}, "no PEM certificate"},
		{"cert without key", transport.Options{Broker: "mqtts://h", CertFile: f.clientCert}, "needs both"},
		{"cert key mismatch", transport.Options{Broker: "mqtts://h", CertFile: f.clientCert, KeyFile: f.serverKey}, "client certificate"},
		{"missing password file", transport.Options{Broker: "mqtts://h", Username: "pi-1", PasswordFile: "/nonexistent/pw"}, "password file: open /nonexistent/pw"},
		{"password without user", transport.Options{Broker: "mqtts://h", PasswordFile: f.pw}, "without a username"},
		{"full TLS", transport.Options{Broker: "mqtts://h", CAFile: f.ca, CertFile: f.clientCert, KeyFile: f.clientKey, Username: "pi-1", PasswordFile: f.pw}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Now = now
			err := tc.o.Apply(mqtt.NewClientOptions())
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("got %v, want success", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}

func TestApplySetsOptions(t *testing.T) {
	f := makeFiles(t)
	opts := mqtt.NewClientOptions()
	o := transport.Options{Broker: "mqtts://broker.test", CAFile: f.ca, Username: "pi-1", PasswordFile: f.pw, Now: at(issued.Add(time.Hour))}
	if err := o.Apply(opts); err != nil {
		t.Fatal(err)
	}
	if got := opts.Servers[0].String(); got != "mqtts://broker.test:8883" {
		t.Errorf("broker: got %s, want mqtts://broker.test:8883 (default TLS port)", got)
	}
	if opts.Username != "pi-1" || opts.Password != "s3cret-value" {
		t.Errorf("credentials: got %q/%q, want pi-1 and the file's password without newline", opts.Username, opts.Password)
	}
	if opts.TLSConfig == nil || opts.TLSConfig.RootCAs == nil || opts.TLSConfig.InsecureSkipVerify || opts.TLSConfig.MinVersion < tls.VersionTLS12 {
		t.Errorf("TLS config: got %+v, want CA roots, verification on, TLS >= 1.2", opts.TLSConfig)
	}
	// A broker already named by the caller is kept, with its default port.
	opts = mqtt.NewClientOptions().AddBroker("mqtts://10.0.0.1")
	if err := (transport.Options{Broker: "mqtts://other", Now: o.Now}).Apply(opts); err != nil {
		t.Fatal(err)
	}
	if len(opts.Servers) != 1 || opts.Servers[0].Host != "10.0.0.1:8883" {
		t.Errorf("servers: got %v, want only the caller's 10.0.0.1:8883", opts.Servers)
	}
}

func TestRegisterFlags(t *testing.T) {
	var o transport.Options
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	o.RegisterFlags(fs)
	if err := fs.Parse([]string{"--ca-file", "/etc/pifleet/ca.pem", "--password-file", "/p", "--username", "pi-7"}); err != nil {
		t.Fatal(err)
	}
	if o.CAFile != "/etc/pifleet/ca.pem" || o.PasswordFile != "/p" || o.Username != "pi-7" || o.InsecureSkipVerify {
		t.Errorf("flags: got %+v", o)
	}
}

func TestClockBefore2024IsNamed(t *testing.T) {
	f := makeFiles(t)
	o := transport.Options{Broker: "mqtts://h", CAFile: f.ca, Now: at(time.Unix(12, 0))}
	err := o.Apply(mqtt.NewClientOptions())
	if !errors.Is(err, transport.ErrClock) || !strings.Contains(err.Error(), "starts at 1970") {
		t.Errorf("clock at 1970: got %v, want ErrClock explaining the unset clock", err)
	}
	o.Now = at(issued.Add(-48 * time.Hour)) // a sane clock, just behind
	if err := o.Apply(mqtt.NewClientOptions()); !errors.Is(err, transport.ErrClock) || strings.Contains(err.Error(), "1970") {
		t.Errorf("clock behind: got %v, want ErrClock without the 1970 story", err)
	}
	o.Now = at(issued.Add(2 * 365 * 24 * time.Hour))
	if err := o.Apply(mqtt.NewClientOptions()); !errors.Is(err, transport.ErrClock) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired CA: got %v, want ErrClock saying expired", err)
	}
}

// TestTLSHandshake connects the client config to a real TLS listener on
// loopback: verification works with the CA file and fails for a wrong
// server name and for an unset clock, with the 1970 story attached.
func TestTLSHandshake(t *testing.T) {
	f := makeFiles(t)
	pair, err := tls.LoadX509KeyPair(f.serverCert, f.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _ = c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	dial := func(o transport.Options, clock time.Time) error {
		cfg, err := o.TLSConfig()
		if err != nil {
			return err
		}
		cfg.Time = func() time.Time { return clock } // simulate the Pi's clock for verification
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ln.Addr().String(), cfg)
		if err != nil {
			return transport.Explain(err, clock)
		}
		return c.Close()
	}
	good := issued.Add(24 * time.Hour)
	if err := dial(transport.Options{CAFile: f.ca, ServerName: "broker.test", Now: at(good)}, good); err != nil {
		t.Errorf("handshake with CA file: %v", err)
	}
	if err := dial(transport.Options{CAFile: f.ca, ServerName: "evil.test", Now: at(good)}, good); err == nil {
		t.Errorf("handshake with the wrong server name succeeded")
	}
	if err := dial(transport.Options{Now: at(good), ServerName: "broker.test"}, good); err == nil {
		t.Errorf("handshake without the CA (system roots) succeeded against a private CA")
	}
	// The CA check passes (clock not consulted by Options here), the
	// handshake at 1970 fails, and Explain names the clock.
	err = dial(transport.Options{CAFile: f.ca, ServerName: "broker.test", Now: at(good)}, time.Unix(30, 0))
	if err == nil || !strings.Contains(err.Error(), "starts at 1970") {
		t.Errorf("handshake at 1970: got %v, want the unset-clock explanation", err)
	}
}

func TestIsLoopbackAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:1883": true, "[::1]:8080": true, "localhost:1": true, "127.0.0.7:0": true,
		"0.0.0.0:1883": false, ":1883": false, "192.0.2.1:8883": false, "hub.lan:8883": false, "127.0.0.1": false,
	} {
		if got := transport.IsLoopbackAddr(addr); got != want {
			t.Errorf("IsLoopbackAddr(%q) = %v, want %v", addr, got, want)
		}
	}
}

// TestCheckBroker: the mistakes no reconnect fixes are errors at once.
func TestCheckBroker(t *testing.T) {
	for _, tc := range []struct {
		o    transport.Options
		url  string
		want string // "" = accepted
	}{
		{transport.Options{}, "mqtt://127.0.0.1", ""},
		{transport.Options{}, "mqtts://hub.example", ""},
		{transport.Options{AllowPlaintext: true}, "mqtt://192.0.2.1:1883", ""},
		{transport.Options{}, "ftp://127.0.0.1:1883", `scheme "ftp" not supported`},
		{transport.Options{}, "mqtt://", "no host"},
		{transport.Options{}, "mqtt://:1883", "no host"},
		{transport.Options{}, "mqtt://127.0.0.1:0", "is not 1–65535"},
		{transport.Options{}, "mqtt://127.0.0.1:65536", "is not 1–65535"},
		{transport.Options{}, "mqtt://127.0.0.1:abc", "invalid port"},
		{transport.Options{}, "mqtt://192.0.2.1:1883", "plaintext MQTT off this machine"},
		{transport.Options{CAFile: "/ca.pem"}, "mqtt://127.0.0.1", "plaintext but TLS files are configured"},
	} {
		_, err := tc.o.CheckBroker(tc.url)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("CheckBroker(%q) = %v, want accepted", tc.url, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("CheckBroker(%q) = %v, want an error with %q", tc.url, err, tc.want)
		}
	}
}

func TestRedacted(t *testing.T) {
	got := transport.Redacted("mqtts://hub:pw@h1:8883", "mqtt://h2:1883", "%zz")
	if got != "mqtts://hub:xxxxx@h1:8883,mqtt://h2:1883,%zz" {
		t.Errorf("Redacted = %q", got)
	}
}
