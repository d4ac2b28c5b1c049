package hubd

// Secure by default and enrolment: a hub whose embedded broker listens off
// loopback with no TLS or logins given makes its own fleet CA, broker
// certificate and credentials in its state directory, and answers
// `pifleet-agent join` on its enrolment listener.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/pifleet/pifleet/hub/internal/dispatch"
	"github.com/pifleet/pifleet/hub/internal/enrolment"
	"github.com/pifleet/pifleet/hub/internal/fleetserver"
	"github.com/pifleet/pifleet/internal/credentials"
	"github.com/pifleet/pifleet/internal/enrol"
	"github.com/pifleet/pifleet/internal/transport"
)

// EnrolConfig is the enrolment listener (the --enrol-listen and
// --enrol-host flags).
type EnrolConfig struct {
	// Listen is the HTTPS address Pis join through. "": on port 8443 of
	// the MQTT listener's address when that is off loopback; "off": never.
	Listen string
	// Host is the hub's name or address as Pis reach it, for the line
	// add-pi prints; "": the listener's address, else this machine's
	// first global address.
	Host string
}

// EnrolOff is EnrolConfig.Listen's "never".
const EnrolOff = "off"

// securing is what secureByDefault set up.
type securing struct {
	pki    *enrolment.FleetPKI
	listen string // the enrolment listener's address; "": none
}

// secureByDefault gives an embedded broker off loopback (or one asked to
// enrol Pis) TLS and logins from the hub's own fleet PKI when none were
// given; with given ones it changes nothing. On loopback with no
// enrolment asked for (make run) nothing changes either.
func secureByDefault(cfg *Config, log *slog.Logger) (*securing, error) {
	en := cfg.Enrol
	asked := en.Listen != "" && en.Listen != EnrolOff
	embedded := cfg.Server.BrokerURL == "" && len(cfg.Server.NATSURLs) == 0
	mqttListen := cfg.Server.MQTTListen
	if mqttListen == "" {
		mqttListen = "127.0.0.1:1883"
	}
	offLoopback := !transport.IsLoopbackAddr(mqttListen)
	given := cfg.Security.TLSCert != "" || cfg.Security.Credentials != ""
	switch {
	case !embedded || cfg.Cluster != nil:
		if asked {
			return nil, errors.New("--enrol-listen: enrolment is for a hub with its embedded broker, alone (not --broker or --cluster-listen); use scripts/provision")
		}
		return nil, nil
	case given:
		if asked {
			return nil, errors.New("--enrol-listen needs the hub's own fleet CA: drop --mqtt-tls-cert and --mqtt-credentials (the hub then makes its CA in <state-dir>/pki), or provision Pis with scripts/provision")
		}
		return nil, nil
	case !offLoopback && !asked:
		return nil, nil
	}
	host, portStr, err := net.SplitHostPort(mqttListen)
	if err != nil {
		return nil, fmt.Errorf("--mqtt-listen %q: %w", mqttListen, err)
	}
	if port, _ := strconv.Atoi(portStr); port == 0 {
		return nil, fmt.Errorf("--mqtt-listen %q: enrolled Pis need a fixed port", mqttListen)
	}
	hosts := certHosts(host, cfg.Host, en.Host)
	p, created, err := enrolment.EnsureFleetPKI(filepath.Join(cfg.Commands.StateDir, "pki"), hubID(cfg), hosts, time.Now())
	if err != nil {
		return nil, fmt.Errorf("fleet CA in %s: %w", cfg.Commands.StateDir, err)
	}
	if len(created) > 0 {
		log.Info("secured the embedded broker with the hub's own fleet CA (enrol Pis with `pifleet add-pi`)", "made", created, "dir", p.Dir, "ca_pin", p.Pin.String())
	}
	cfg.Security.TLSCert, cfg.Security.TLSKey, cfg.Security.ClientCA = p.CertFile, p.KeyFile, p.CAFile
	cfg.Security.Credentials = p.Credentials
	hubLogin := transport.Options{CAFile: p.CAFile, Username: hubID(cfg), PasswordFile: p.HubPasswordFile, ServerName: enrolment.ServerName}
	cfg.Server.ConfigureMQTT = hubLogin.Apply
	s := &securing{pki: p}
	switch {
	case asked:
		s.listen = en.Listen
	case en.Listen != EnrolOff:
		s.listen = net.JoinHostPort(host, strconv.Itoa(enrol.DefaultPort))
	}
	return s, nil
}

func hubID(cfg *Config) string {
	if cfg.Server.ID == "" {
		return "hub"
	}
	return cfg.Server.ID
}

// certHosts are the names and addresses the broker certificate carries:
// the listener's address, or every address of this machine when it
// listens on all; the host name (and .local); the advertised host.
func certHosts(listenHost, machine, advertised string) []string {
	var hosts []string
	if ip := net.ParseIP(listenHost); listenHost == "" || (ip != nil && ip.IsUnspecified()) {
		addrs, _ := net.InterfaceAddrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLinkLocalUnicast() {
				hosts = append(hosts, ipn.IP.String())
			}
		}
	} else {
		hosts = append(hosts, listenHost)
	}
	if machine != "" {
		hosts = append(hosts, machine, machine+".local")
	}
	if advertised != "" {
		hosts = append(hosts, advertised)
	}
	return hosts
}

// hubRef is the fleet server, once built, for the Enroller.
type hubRef struct{ h *fleetserver.Hub }

func (r *hubRef) SetCredentials(c *credentials.File) error { return r.h.SetCredentials(c) }
func (r *hubRef) DisconnectDevice(id string) (int, error)  { return r.h.DisconnectDevice(id) }
func (r *hubRef) HasDevice(id string) bool {
	_, ok := r.h.Fleet.Get(id)
	return ok
}
func (r *hubRef) ForgetDevice(ctx context.Context, id string) error {
	return r.h.ForgetDevice(ctx, id)
}

// newEnroller builds the Enroller and puts its routes on the HTTP API.
func newEnroller(cfg *Config, s *securing, log *slog.Logger) (*enrolment.Enroller, *hubRef, error) {
	tokens, err := enrolment.OpenStore(filepath.Join(s.pki.Dir, "join-tokens.json"), cfg.Server.Now)
	if err != nil {
		return nil, nil, err
	}
	cmds := cfg.Commands // wireCommands loads the same key later
	key, err := signingKey(&cmds, log)
	if err != nil {
		return nil, nil, err
	}
	_, mqttPort, _ := net.SplitHostPort(cfg.Server.MQTTListen)
	port, _ := strconv.Atoi(mqttPort)
	host := cfg.Enrol.Host
	lh, lp, _ := net.SplitHostPort(s.listen)
	if ip := net.ParseIP(lh); host == "" && lh != "" && (ip == nil || !ip.IsUnspecified()) {
		host = lh
	}
	enPort, _ := strconv.Atoi(lp)
	ref := &hubRef{}
	e := enrolment.New(enrolment.Config{PKI: s.pki, Tokens: tokens, HubKey: dispatch.PublicKeyString(key), MQTTPort: port,
		JoinAddr: enrolment.JoinAddr(host, enPort), Hub: ref, Logger: log, Now: cfg.Server.Now})
	cfg.Server.APIRoutes = e.APIRoutes()
	return e, ref, nil
}
