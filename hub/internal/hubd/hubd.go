package hubd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/pifleet/pifleet/hub/internal/broker"
	"github.com/pifleet/pifleet/hub/internal/fleetserver"
	"github.com/pifleet/pifleet/hub/internal/natsengine"
	"github.com/pifleet/pifleet/hub/internal/slackbot"
	"github.com/pifleet/pifleet/internal/credentials"
	"github.com/pifleet/pifleet/internal/sdnotify"
	"github.com/pifleet/pifleet/internal/transport"
)

// Config is the hub: what `pifleet hub`'s flags say.
type Config struct {
	// Server is the fleet server: ids, broker, listeners, the HTTP token,
	// the hub's MQTT login (ConfigureMQTT) and the broker's data dir.
	Server fleetserver.Config
	// Security is the embedded broker's TLS and logins; hubd builds them
	// into Server.BrokerOptions and re-reads the credentials on SIGHUP.
	Security broker.SecurityFlags
	// Cluster joins the embedded nats engine to other hubs' (nil: alone).
	Cluster  *natsengine.Cluster
	Commands CommandsConfig
	Slack    slackbot.Config
	// DebugListen serves Go's profiler on this loopback address; "": off.
	DebugListen string
	Host        string // this machine's name, for the start line of the log

	// Notifier is systemd's notify socket; nil: sdnotify.New().
	Notifier sdnotify.Notifier
}

// Run runs the hub until ctx ends; a clean stop returns nil.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Server.Logger == nil {
		cfg.Server.Logger = slog.New(slog.DiscardHandler)
	}
	log := cfg.Server.Logger
	if cfg.Server.BrokerURL == "" && !transport.IsLoopbackAddr(cfg.Server.MQTTListen) && cfg.Security.Credentials == "" {
		return fmt.Errorf("refusing to open the embedded broker on %s to anyone: set --mqtt-credentials (scripts/provision makes it), or listen on 127.0.0.1", cfg.Server.MQTTListen)
	}
	var reloader credentialSetter // what SIGHUP reloads; nil: nothing
	if cfg.Server.Engine == fleetserver.EngineNATS {
		no, err := natsOptions(cfg.Security)
		if err != nil {
			return err
		}
		no.Cluster = cfg.Cluster
		cfg.Server.NATS = no
	} else {
		if cfg.Cluster != nil {
			return errors.New("a cluster (--cluster-listen, --cluster-routes) needs --engine nats")
		}
		brokerTLS, hooks, authHook, err := cfg.Security.Build(log)
		if err != nil {
			return err
		}
		if authHook != nil {
			reloader = authHook
		}
		cfg.Server.BrokerOptions.TLS, cfg.Server.BrokerOptions.Hooks = brokerTLS, hooks
	}
	if cfg.Notifier == nil {
		cfg.Notifier = sdnotify.New()
	}
	ready := cfg.Server.Ready
	cfg.Server.Ready = func(h *fleetserver.Hub) {
		notifySystemd(ctx, cfg.Notifier, log, h.Health)
		if ready != nil {
			ready(h)
		}
	}
	h, err := fleetserver.New(cfg.Server)
	if err != nil {
		return err
	}
	if cfg.Server.Engine == fleetserver.EngineNATS && cfg.Security.Credentials != "" {
		reloader = h // the engine's logins, once it runs
	}
	if reloader != nil {
		go reloadCredentialsOnHUP(ctx, log, cfg.Security.Credentials, reloader)
	}
	late, err := wireCommands(cfg.Commands, log, h)
	if err != nil {
		return err
	}
	if cfg.DebugListen != "" {
		if err := serveDebug(ctx, cfg.DebugListen, log); err != nil {
			return err
		}
	}
	log.Info("pifleet hub starting", "id", h.ID(), "version", cfg.Server.Version, "host", cfg.Host)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	cfg.Slack.AlertLeader = h.AlertLeader // one hub of several posts alerts
	if h.Group() != "" {
		// Hubs of one cluster each hold a Socket Mode connection; one of
		// them answers each envelope, retries included.
		cfg.Slack.Claim = lazyJobs{h}.ClaimEvent
	}
	bot, slackDone, err := slackbot.Serve(runCtx, cfg.Slack, h.Engine, h.Fleet, log)
	if err != nil {
		return err
	}
	if bot != nil {
		late.useSlack(bot) // before h.Run: results from before a restart arrive once it connects
		h.AddStats("slack", func() any { return bot.Stats() })
	}
	err = h.Run(runCtx)
	cancel()
	<-slackDone
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("pifleet hub stopped")
	return nil
}

// natsOptions turns the embedded broker's TLS and login flags into the
// nats engine's options: the same flags, the same credentials file.
func natsOptions(s broker.SecurityFlags) (natsengine.Options, error) {
	var o natsengine.Options
	switch {
	case s.TLSCert != "" || s.TLSKey != "":
		o.TLS = &transport.ServerFiles{CertFile: s.TLSCert, KeyFile: s.TLSKey, ClientCAFile: s.ClientCA}
	case s.ClientCA != "":
		return o, errors.New("--mqtt-client-ca needs --mqtt-tls-cert and --mqtt-tls-key")
	}
	if s.Credentials != "" {
		c, err := credentials.Load(s.Credentials)
		if err != nil {
			return o, err
		}
		o.Credentials, o.AllowPlaintext = c, s.AllowPlaintext
	}
	return o, nil
}
