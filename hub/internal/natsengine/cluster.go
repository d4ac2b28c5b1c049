package natsengine

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/pifleet/pifleet/internal/transport"
)

// Cluster joins the engine to other hubs' engines: one NATS cluster with
// JetStream replicated over it (three nodes: every stream R3, so one node
// may be lost). Each hub keeps its own view, read from the replicated
// retained-message stream; Pis list every node's MQTT listener.
type Cluster struct {
	// Name is the cluster's name, the same on every node (default
	// "pifleet").
	Name string
	// Listen is this node's route listener (host:port).
	Listen string
	// Routes are every node's route URL (nats://host:port), this node's
	// own included: nats-server sizes the JetStream cluster from them.
	Routes []string
}

// validate checks c for the engine's options: routes off loopback must
// be mutually authenticated with the fleet's certificates.
func (c *Cluster) validate(o *Options) error {
	if c.Listen == "" {
		return errors.New("nats engine: cluster: no route listener (--cluster-listen host:port)")
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("nats engine: cluster listen %q: %w", c.Listen, err)
	}
	if len(c.Routes) < 2 {
		return fmt.Errorf("nats engine: cluster: %d route(s); list every node's route URL, this one's too (three nodes: one may fail)", len(c.Routes))
	}
	loopback := transport.IsLoopbackAddr(c.Listen)
	for _, r := range c.Routes {
		u, err := url.Parse(r)
		if err != nil || u.Scheme != "nats" || u.Hostname() == "" || u.Port() == "" {
			return fmt.Errorf("nats engine: cluster route %q: want nats://host:port", r)
		}
		loopback = loopback && transport.IsLoopbackAddr(u.Host)
	}
	if !loopback && (o.TLS == nil || o.TLS.ClientCAFile == "") {
		return errors.New("nats engine: cluster routes off loopback carry the whole fleet: give the broker certificate and the fleet CA (--mqtt-tls-cert, --mqtt-tls-key, --mqtt-client-ca) so nodes prove themselves to each other")
	}
	if !loopback && o.Credentials == nil {
		return errors.New("nats engine: a cluster off loopback needs device logins (--mqtt-credentials)")
	}
	return nil
}

// apply sets the cluster in nats-server's options.
func (c *Cluster) apply(o *Options, sopts *server.Options) error {
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("nats engine: cluster listen %q: %w", c.Listen, err)
	}
	name := c.Name
	if name == "" {
		name = "pifleet"
	}
	sopts.Cluster = server.ClusterOpts{Name: name, Host: host, Port: p}
	sopts.Routes = server.RoutesFromStr(strings.Join(c.Routes, ","))
	if o.TLS != nil && o.TLS.ClientCAFile != "" {
		cfg, err := routeTLS(*o.TLS)
		if err != nil {
			return err
		}
		sopts.Cluster.TLSConfig = cfg
		sopts.Cluster.TLSTimeout = 5
	}
	return nil
}

// routeTLS is mutual TLS between nodes: each presents its broker
// certificate and accepts a peer only with a broker (server)
// certificate issued by the fleet CA — a Pi's client certificate, or
// anything from another CA, cannot join.
func routeTLS(f transport.ServerFiles) (*tls.Config, error) {
	cfg, err := f.ServerTLS()
	if err != nil {
		return nil, err
	}
	pool, _, err := transport.LoadCertPool(f.ClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("nats engine: cluster CA: %w", err)
	}
	cfg.RootCAs, cfg.ClientCAs = pool, pool
	cfg.ClientAuth = tls.RequireAnyClientCert
	cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return errors.New("cluster route: the peer sent no certificate")
		}
		leaf, err := x509.ParseCertificate(raw[0])
		if err != nil {
			return fmt.Errorf("cluster route: peer certificate: %w", err)
		}
		inter := x509.NewCertPool()
		for _, r := range raw[1:] {
			if c, err := x509.ParseCertificate(r); err == nil {
				inter.AddCert(c)
			}
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			return fmt.Errorf("cluster route: peer %q is not a broker of this fleet: %w", leaf.Subject.CommonName, err)
		}
		return nil
	}
	return cfg, nil
}
