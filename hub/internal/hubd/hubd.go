package hubd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/pifleet/pifleet/hub/internal/broker"
	"github.com/pifleet/pifleet/hub/internal/enrolment"
	"github.com/pifleet/pifleet/hub/internal/fleetserver"
	"github.com/pifleet/pifleet/hub/internal/natsengine"
	"github.com/pifleet/pifleet/hub/internal/slackbot"
	"github.com/pifleet/pifleet/internal/sdnotify"
	"github.com/pifleet/pifleet/internal/transport"
)

// Config is the hub: what `pifleet hub`'s flags say.
type Config struct {
	// Server is the fleet server: ids, broker, listeners, the HTTP token,
	// the hub's MQTT login (ConfigureMQTT) and the engine's data dir.
	Server fleetserver.Config
	// Security is the embedded engine's TLS and logins; hubd builds them
	// into Server.NATS and re-reads the credentials on SIGHUP.
	Security broker.SecurityFlags
	// Cluster joins the embedded nats engine to other hubs' (nil: alone).
	Cluster  *natsengine.Cluster
	Commands CommandsConfig
	Slack    slackbot.Config
	// DebugListen serves Go's profiler on this loopback address; "": off.
	DebugListen string
	Host        string // this machine's name, for the start line of the log
	// Enrol is the enrolment listener (`pifleet-agent join`).
	Enrol EnrolConfig
	// MDNS is --mdns: advertise the hub on the LAN when it enrols Pis,
	// MDNSAuto ("") off loopback, MDNSOn or MDNSOff (mdns.go).
	MDNS string

	// Notifier is systemd's notify socket; nil: sdnotify.New().
	Notifier sdnotify.Notifier
}

// Run runs the hub until ctx ends; a clean stop returns nil.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Server.Logger == nil {
		cfg.Server.Logger = slog.New(slog.DiscardHandler)
	}
	log := cfg.Server.Logger
	sec, err := secureByDefault(&cfg, log)
	if err != nil {
		return err
	}
	if cfg.Server.BrokerURL == "" && !transport.IsLoopbackAddr(cfg.Server.MQTTListen) && cfg.Security.Credentials == "" {
		return fmt.Errorf("refusing to open the embedded broker on %s to anyone: set --mqtt-credentials (scripts/provision makes it), or listen on 127.0.0.1", cfg.Server.MQTTListen)
	}
	var enroller *enrolment.Enroller
	var ref *hubRef
	if sec != nil && sec.listen != "" {
		if enroller, ref, err = newEnroller(&cfg, sec, log); err != nil {
			return err
		}
	}
	no, err := cfg.Security.Build()
	if err != nil {
		return err
	}
	no.Cluster = cfg.Cluster
	cfg.Server.NATS = no
	if cfg.Notifier == nil {
		cfg.Notifier = sdnotify.New()
	}
	ready := cfg.Server.Ready
	running := make(chan struct{}) // the engine runs and the hub is connected
	var runningOnce sync.Once
	cfg.Server.Ready = func(h *fleetserver.Hub) {
		runningOnce.Do(func() { close(running) })
		notifySystemd(ctx, cfg.Notifier, log, h.Health)
		if ready != nil {
			ready(h)
		}
	}
	h, err := fleetserver.New(cfg.Server)
	if err != nil {
		return err
	}
	if ref != nil {
		ref.h = h
	}
	if cfg.Security.Credentials != "" {
		go reloadCredentialsOnHUP(ctx, log, cfg.Security.Credentials, h) // the engine's logins, once it runs
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
	if h.HasJobs() {
		cfg.Slack.Threads = lazyJobs{h} // each Pi's alert thread, across restarts and hubs
	}
	if h.Group() != "" {
		// Hubs of one cluster each hold a Socket Mode connection; one of
		// them answers each envelope, retries included.
		cfg.Slack.Claim = lazyJobs{h}.ClaimEvent
	}
	var enrolAddr, caPin string
	if enroller != nil {
		ln, err := enroller.Listen(sec.listen)
		if err != nil {
			return err
		}
		enrolAddr, caPin = ln.Addr().String(), sec.pki.Pin.String()
		go func() {
			// Bound already (a busy port fails the start), but joins are
			// answered once the broker whose logins they change runs.
			select {
			case <-running:
			case <-runCtx.Done():
				ln.Close()
				return
			}
			if err := enroller.Serve(runCtx, ln); err != nil {
				log.Error("enrolment stopped", "err", err)
			}
		}()
	}
	stopMDNS, err := startMDNS(ctx, mdnsPlan{Mode: cfg.MDNS, ID: h.ID(), Host: cfg.Host,
		MQTTListen: cfg.Server.MQTTListen, EnrolListen: enrolAddr, CAPin: caPin}, log)
	if err != nil {
		return err
	}
	defer stopMDNS() // the goodbye
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
