package cli

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/pifleet/pifleet/internal/transport"
)

// brokerURLs is --broker split by kind: MQTT URLs (the hub's own session,
// tried in turn) and NATS URLs (an external nats-server cluster whose
// JetStream holds the fleet).
type brokerURLs struct {
	mqtt, nats []string
}

// parseBroker splits --broker, a comma-separated list, and checks each URL
// against the hub's TLS and plaintext settings. nats:// is NATS; tls:// is
// NATS over TLS in a list that also names nats:// or MQTT URLs (mqtt://,
// mqtts://), and MQTT over TLS alone, as it always was. NATS URLs need the
// same servers' MQTT URLs: the error says what to add.
func parseBroker(raw string, o transport.Options) (brokerURLs, error) {
	var all []*url.URL
	mixed := false
	for _, s := range strings.Split(raw, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !strings.Contains(s, "://") {
			return brokerURLs{}, fmt.Errorf("--broker %q: want URLs such as mqtts://host:8883 (or nats://host:4222,mqtts://host:8883 for a NATS cluster)", s)
		}
		u, err := url.Parse(s)
		if err != nil { // url's error would quote a password
			if at := strings.LastIndex(s, "@"); at >= 0 {
				s = s[:strings.Index(s, "://")+3] + "…" + s[at:]
			}
			return brokerURLs{}, fmt.Errorf("--broker: URL %q does not parse", s)
		}
		all = append(all, u)
		if !strings.EqualFold(u.Scheme, "tls") {
			mixed = true // nats://, or a scheme that is MQTT only
		}
	}
	var b brokerURLs
	onlyTLS4222 := ""
	for _, u := range all {
		isNATS := strings.EqualFold(u.Scheme, "nats") || strings.EqualFold(u.Scheme, "tls") && mixed
		if isNATS {
			n, err := o.CheckNATS(u.String())
			if err != nil {
				return brokerURLs{}, fmt.Errorf("--broker: %w", err)
			}
			b.nats = append(b.nats, n.String())
			continue
		}
		if strings.EqualFold(u.Scheme, "tls") && u.Port() == "4222" {
			onlyTLS4222 = u.Redacted()
		}
		m, err := o.CheckBroker(u.String())
		if err != nil {
			return brokerURLs{}, fmt.Errorf("--broker: %w", err)
		}
		b.mqtt = append(b.mqtt, m.String())
	}
	if len(all) == 0 {
		return b, nil
	}
	if len(b.nats) > 0 && len(b.mqtt) == 0 || onlyTLS4222 != "" {
		first := all[0]
		scheme, port := "mqtts", "8883"
		if strings.EqualFold(first.Scheme, "nats") {
			scheme, port = "mqtt", "1883"
		}
		note := ""
		if onlyTLS4222 != "" {
			note = " (for MQTT over TLS alone, write mqtts://)"
		}
		return brokerURLs{}, fmt.Errorf("--broker %s names NATS servers but no MQTT listener: the hub's own session (presence, commands, results) speaks MQTT to the same servers; add each node's MQTT URL, e.g. --broker %s,%s://%s%s",
			redact(raw), redact(raw), scheme, net.JoinHostPort(first.Hostname(), port), note)
	}
	return b, nil
}

// redact drops passwords from a comma-separated URL list.
func redact(list string) string { return transport.Redacted(strings.Split(list, ",")...) }

// natsOptions are the hub's NATS login and TLS from the same flags as its
// MQTT login (--username, --password-file, --ca-file, --cert-file,
// --key-file, --server-name): one nats-server user serves both sides. The
// password file is read now (a missing one stops the start) and again at
// every reconnect, as a rotated password needs no restart.
func natsOptions(o transport.Options, urls []string) ([]nats.Option, error) {
	var opts []nats.Option
	tlsURL := false
	for _, s := range urls {
		tlsURL = tlsURL || strings.HasPrefix(strings.ToLower(s), "tls://")
	}
	if tlsURL {
		cfg, err := o.TLSConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Secure(cfg))
	}
	switch {
	case o.PasswordFile != "":
		if _, err := transport.ReadPasswordFile(o.PasswordFile); err != nil {
			return nil, err
		}
		if o.Username == "" {
			return nil, fmt.Errorf("password file %s given without a username (--username)", o.PasswordFile)
		}
		user, file := o.Username, o.PasswordFile
		opts = append(opts, nats.UserInfoHandler(func() (string, string) {
			pw, err := transport.ReadPasswordFile(file)
			if err != nil {
				return user, "" // refused, and logged as such by the hub
			}
			return user, pw
		}))
	case o.Username != "":
		opts = append(opts, nats.UserInfo(o.Username, ""))
	}
	return opts, nil
}
