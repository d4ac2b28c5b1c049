package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/pifleet/pifleet/hub/internal/broker"
	"github.com/pifleet/pifleet/hub/internal/fleetserver"
	"github.com/pifleet/pifleet/hub/internal/hubd"
	"github.com/pifleet/pifleet/hub/internal/natsengine"
	"github.com/pifleet/pifleet/hub/internal/slackbot"
	"github.com/pifleet/pifleet/internal/flagenv"
	"github.com/pifleet/pifleet/internal/transport"
	"github.com/pifleet/pifleet/internal/wire"
)

// Version is stamped at build time with -ldflags "-X ...cli.Version=v1.2.3".
var Version = "dev"

func init() {
	register("hub", "run the hub: fleet view, embedded MQTT broker (nats-server), HTTP API (and Slack when configured)", runHub)
	register("version", "print the version (also: pifleet --version)", runVersion)
}

// hubEnvPrefix + the flag's name in upper case sets a flag of `pifleet hub`
// (the systemd unit's EnvironmentFile=).
const hubEnvPrefix = "PIFLEET_HUB_"

func runVersion(_ context.Context, env Env, args []string) error {
	fs := flagenv.NewFlagSet("pifleet version", "usage: pifleet version (or pifleet --version)", "")
	if err := flagenv.Parse(fs, args, env); err != nil {
		return usageErr(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.Stderr, "pifleet version: unexpected argument %q\n", fs.Arg(0))
		return ErrUsage
	}
	fmt.Fprintf(env.Stdout, "pifleet %s (protocol v%d)\n", Version, wire.ProtocolVersion)
	return nil
}

type hubFlags struct {
	id, broker, engine, mqttListen, mqttData, httpListen, tokenFile, logLevel, debugListen string
	mdns                                                                                   string
	clusterName, clusterListen, clusterRoutes                                              string
}

func runHub(ctx context.Context, env Env, args []string) error {
	var f hubFlags
	fs := flagenv.NewFlagSet("pifleet hub", "", hubEnvPrefix)
	host, _ := os.Hostname()
	fs.StringVar(&f.id, "id", "hub", "hub id (unique among hubs sharing a broker)")
	fs.StringVar(&f.broker, "broker", "", "external broker instead of the embedded one: an MQTT URL (mqtts://host:8883; several, comma-separated, are tried in turn), or an external nats-server cluster with MQTT and JetStream: its NATS URLs and its MQTT URLs (nats://n1:4222,nats://n2:4222,mqtt://n1:1883,mqtt://n2:1883; tls:// and mqtts:// with TLS); empty: run the embedded broker")
	fs.StringVar(&f.engine, "engine", engineNATS, "the embedded broker: nats (nats-server: MQTT for the Pis, JetStream for state), the only one; the flag stays for old configs")
	fs.StringVar(&f.mqttListen, "mqtt-listen", "127.0.0.1:1883", "address of the embedded broker's MQTT listener")
	fs.StringVar(&f.mqttData, "mqtt-data", "", "directory where the embedded broker keeps retained messages across restarts (its store is the nats/ subdirectory), so a restarted hub still knows the offline Pis (default <state-dir>/broker; off: a throw-away store)")
	fs.StringVar(&f.httpListen, "http-listen", "127.0.0.1:8080", "address of the HTTP API")
	fs.StringVar(&f.tokenFile, "http-token-file", "", "file holding the API bearer token (required off loopback)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.clusterListen, "cluster-listen", "", "with the embedded broker: this hub's cluster route listener (host:port, e.g. 0.0.0.0:6222); several hubs then share one fleet (see README, Outgrow one machine)")
	fs.StringVar(&f.clusterRoutes, "cluster-routes", "", "with --cluster-listen: every hub's route URL, this one's too (nats://hub1:6222,nats://hub2:6222,nats://hub3:6222)")
	fs.StringVar(&f.clusterName, "cluster-name", "pifleet", "with --cluster-listen or --broker nats://…: the cluster's name, the same on every hub (the hubs share command results as hubs-<name>)")
	fs.StringVar(&f.mdns, "mdns", hubd.MDNSAuto, "advertise the hub's enrolment and MQTT ports on the LAN with mDNS/DNS-SD (_pifleet._tcp) so pifleet-agent join --discover finds it: auto (when the MQTT listener is off loopback and the hub enrols Pis), on, off")
	fs.StringVar(&f.debugListen, "debug-listen", "", "serve Go's profiler (/debug/pprof/) on this loopback address, e.g. 127.0.0.1:6060 (default: off)")
	var enrolCfg hubd.EnrolConfig
	fs.StringVar(&enrolCfg.Listen, "enrol-listen", "", "HTTPS address where Pis join (pifleet-agent join); default: port 8443 of --mqtt-listen's address when that is off loopback (the hub then makes its own fleet CA, broker certificate and logins in <state-dir>/pki); off: no enrolment")
	fs.StringVar(&enrolCfg.Host, "enrol-host", "", "the hub's name or address as Pis reach it, for the line add-pi prints (default: the enrolment listener's address, or this machine's first global address)")
	slackCfg := slackbot.ConfigFromEnv(env.Getenv)
	slackCfg.Flags(fs)
	var sec broker.SecurityFlags
	sec.Register(fs) // --mqtt-tls-cert --mqtt-tls-key --mqtt-client-ca --mqtt-credentials
	var topts transport.Options
	topts.RegisterFlags(fs) // the hub's own MQTT login: --ca-file --username --password-file …
	var cf commandFlags
	cf.register(fs) // --signing-key --policy --state-dir (commands.go)
	if err := flagenv.Parse(fs, args, env); err != nil {
		return usageErr(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.Stderr, "pifleet hub: unexpected argument %q\n", fs.Arg(0))
		return ErrUsage
	}
	if err := flagenv.Apply(fs, env.Getenv, hubEnvPrefix); err != nil {
		return err
	}
	log, err := flagenv.NewLogger(env.Stderr, f.logLevel)
	if err != nil {
		return err
	}
	// Until the hub has started, its info lines wait: if it cannot
	// start, its one error line is all there is to read.
	startLog := newStartLog(log.Handler())
	log = slog.New(startLog)
	if err := checkEngine(f.engine); err != nil {
		return err
	}
	brokers, err := parseBroker(f.broker, topts)
	if err != nil {
		return err
	}
	var natsOpts []nats.Option
	if len(brokers.nats) > 0 {
		if f.clusterListen != "" || f.clusterRoutes != "" {
			return errors.New("--cluster-listen and --cluster-routes are for the embedded broker; with --broker nats://… the nats-servers form the cluster (--cluster-name names the hubs' group)")
		}
		if natsOpts, err = natsOptions(topts, brokers.nats); err != nil {
			return fmt.Errorf("--broker: NATS login: %w", err)
		}
	}
	token, err := readSecretFile(f.tokenFile)
	if err != nil {
		return fmt.Errorf("--http-token-file: %w", err)
	}
	warnWeakToken(log, f.tokenFile, token)
	switch f.mqttData {
	case "":
		f.mqttData = filepath.Join(cf.stateDir, "broker")
	case "off":
		f.mqttData = ""
	}
	var cluster *natsengine.Cluster
	switch {
	case f.clusterListen != "":
		cluster = &natsengine.Cluster{Name: f.clusterName, Listen: f.clusterListen}
		for _, r := range strings.Split(f.clusterRoutes, ",") {
			if r = strings.TrimSpace(r); r != "" {
				cluster.Routes = append(cluster.Routes, r)
			}
		}
	case f.clusterRoutes != "":
		return errors.New("--cluster-routes needs --cluster-listen")
	}
	err = hubd.Run(ctx, hubd.Config{Cluster: cluster,
		Server: fleetserver.Config{ID: f.id, Version: Version, BrokerURL: strings.Join(brokers.mqtt, ","), MQTTListen: f.mqttListen,
			NATSURLs: brokers.nats, NATSOptions: natsOpts, ClusterName: f.clusterName,
			HTTPListen: f.httpListen, HTTPToken: token, Logger: log, ConfigureMQTT: topts.Apply,
			DataDir: f.mqttData, Ready: func(*fleetserver.Hub) { startLog.release() }},
		Security: sec, Commands: cf.config(), Enrol: enrolCfg, Slack: slackCfg, DebugListen: f.debugListen, Host: host, MDNS: f.mdns,
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		startLog.discard()
	} else {
		startLog.release() // stopped while starting (Ctrl-C): say what it did
	}
	return err
}

// engineNATS is --engine's one value: the embedded nats-server.
const engineNATS = "nats"

// checkEngine takes --engine from an old config: nats (or nothing) is the
// embedded engine; the former default, mochi, is gone and says so.
func checkEngine(engine string) error {
	switch engine {
	case "", engineNATS:
		return nil
	case "mochi":
		return errors.New("--engine mochi: the mochi broker was removed; the embedded engine is nats-server (drop --engine)")
	}
	return fmt.Errorf("--engine %q: the only embedded engine is nats (drop --engine)", engine)
}

// usageErr maps flagenv.Parse's error to the command's: nil after -h.
func usageErr(err error) error { return flagenv.UsageErr(err) }

// MinTokenLen is the shortest HTTP API token taken without a warning
// (scripts/provision and `openssl rand -hex 32` make 64 characters).
const MinTokenLen = 16

// warnWeakToken warns about an API token file others can read, or a
// token short enough to guess; the hub still starts (an empty file is
// refused by readSecretFile).
func warnWeakToken(log *slog.Logger, path, token string) {
	if path == "" {
		return
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("HTTP API token file is readable by other users; chmod 600 it", "file", path, "mode", fi.Mode().Perm().String())
	}
	if len(token) < MinTokenLen {
		log.Warn(fmt.Sprintf("HTTP API token is only %d characters: easy to guess; use at least %d (openssl rand -hex 32)", len(token), MinTokenLen), "file", path)
	}
}

// readSecretFile reads a one-line secret; "" for no file. The secret is
// never logged.
func readSecretFile(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}
