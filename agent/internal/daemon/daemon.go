package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pifleet/pifleet/agent/internal/health"
	"github.com/pifleet/pifleet/agent/internal/health/statusled"
	"github.com/pifleet/pifleet/agent/internal/report"
	"github.com/pifleet/pifleet/internal/link"
	"github.com/pifleet/pifleet/internal/sdnotify"
	"github.com/pifleet/pifleet/internal/transport"
	"github.com/pifleet/pifleet/internal/wire"
)

// Config is the agent: what pifleet-agent's flags say, and the seams tests
// replace. Zero values get defaults; a nil seam is the real part.
type Config struct {
	Link      link.Options // brokers, id, keepalive, TLS and login (Configure)
	Hostname  string
	Version   string
	Labels    []string
	Heartbeat time.Duration // default 30s
	// MinInterval is the shortest time between two status messages;
	// changes in between are coalesced. Default 500ms.
	MinInterval time.Duration

	DataDir       string  // command store; health reports its disk use too
	HotC          float64 // SoC temperature (°C) from which the Pi counts as hot
	ExpectDocker  bool    // a missing Docker daemon is a health problem
	ConsoleRepair bool    // restart a failed serial getty
	// ConsoleIssue is the agetty issue snippet with this Pi's addresses;
	// "" or "off": none. It is removed on a clean stop.
	ConsoleIssue string
	StatusLED    string // GPIO pin of a status LED; "": off
	Cmds         CommandsConfig
	Logger       *slog.Logger

	// Addrs is where addresses come from; nil: netwatch.
	Addrs AddrSource
	// Health collects the health block; nil: the health probes and the
	// serial console's watcher.
	Health HealthSource
	// Commands runs signed commands; nil: cmdexec with the Docker runner
	// when Cmds has hub keys, else none. Tools names what it runs.
	Commands CommandHandler
	Tools    []string
	// Notifier is systemd's notify socket; nil: sdnotify.New().
	Notifier sdnotify.Notifier
	// ReloadAgetty makes agetty reprint the banner; nil:
	// console.ReloadAgetty.
	ReloadAgetty func(ctx context.Context) error
	// ProcRoot is where /proc lives (boot time, boot id). Default "/proc".
	ProcRoot string
	Now      func() time.Time
	// Debounce coalesces bursts of address events (DHCP renumbering) into
	// one report. Default 150ms.
	Debounce time.Duration
	// HealthEvery is how often health is sampled between heartbeats to
	// catch changes (report by exception). Default 5s.
	HealthEvery time.Duration
}

func (c *Config) ensureDefaults() {
	if c.Heartbeat == 0 {
		c.Heartbeat = 30 * time.Second
	}
	if c.Debounce == 0 {
		c.Debounce = 150 * time.Millisecond
	}
	if c.MinInterval == 0 {
		c.MinInterval = 500 * time.Millisecond
	}
	if c.HealthEvery == 0 {
		c.HealthEvery = 5 * time.Second
	}
	if c.ProcRoot == "" {
		c.ProcRoot = "/proc"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Notifier == nil {
		c.Notifier = sdnotify.New()
	}
	if c.Link.Now == nil {
		c.Link.Now = c.Now
	}
	if c.Link.Logger == nil {
		c.Link.Logger = c.Logger
	}
	if c.Link.OnDown == nil {
		log := c.Logger
		c.Link.OnDown = func(err error) {
			log.Warn("broker connection lost", "err", transport.Explain(err, time.Now()))
		}
	}
}

// Daemon is a running agent.
type Daemon struct {
	cfg  Config
	log  *slog.Logger
	link *link.Link

	cmds   commands
	sd     *sdnotify.Agent
	banner *banner           // nil: off
	led    *statusled.LED    // nil: off
	probes *health.Collector // the real probes, for the LED; nil with a fake

	bootTime time.Time
	wake     chan struct{} // something changed: rebuild and maybe publish

	seq uint64 // owned by loop

	// cmdCtx is what running commands see; it ends when the agent shuts
	// down (before the link goes), so containers are stopped and their
	// final records still published.
	cmdCtx    context.Context
	cmdCancel context.CancelFunc
}

// New checks cfg and assembles the agent; nothing runs until Run.
func New(cfg Config) (*Daemon, error) {
	cfg.ensureDefaults()
	// systemd's StateDirectory= makes the data directory for the unit;
	// run by hand (a test Pi, a container) the agent makes it itself,
	// private like the unit's, rather than failing on a missing path.
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("--data-dir: %w", err)
		}
	}
	d := &Daemon{cfg: cfg, log: cfg.Logger.With("component", "daemon"), wake: make(chan struct{}, 1),
		cmds: commands{handler: cfg.Commands, sweep: func(context.Context) {}, close: func() {}}}
	if cfg.Addrs == nil || cfg.Health == nil {
		addrs, probes := senses(cfg)
		if d.cfg.Addrs == nil {
			d.cfg.Addrs = addrs
		}
		if d.cfg.Health == nil {
			d.cfg.Health, d.probes = probes, probes
		}
	}
	d.banner = newBanner(cfg.Logger, cfg.ConsoleIssue, cfg.ReloadAgetty)
	d.sd = &sdnotify.Agent{N: cfg.Notifier, Log: cfg.Logger}
	if cfg.Commands == nil {
		c, err := newCommands(cfg.Cmds, cfg.Logger, cfg.Link.ID, cfg.DataDir)
		if err != nil {
			return nil, err
		}
		d.cmds, d.cfg.Tools = c, c.tools
	}
	d.cmdCtx, d.cmdCancel = context.WithCancel(context.Background())
	cfg.Link.BootID = readTrim(cfg.ProcRoot + "/sys/kernel/random/boot_id")
	cfg.Link.OnUp = func(uint64) { d.poke() } // a new session republishes everything
	if h := d.cmds.handler; h != nil {
		cfg.Link.OnCommand = func(p []byte) {
			h.HandleCommand(d.cmdCtx, p, d.link)
		}
	}
	l, err := link.New(cfg.Link)
	if err != nil {
		d.cmds.close()
		return nil, err
	}
	d.link = l
	if d.led, err = openStatusLED(cfg.StatusLED); err != nil {
		d.cmds.close()
		return nil, err
	}
	d.bootTime = bootTime(cfg.ProcRoot)
	return d, nil
}

func (d *Daemon) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run runs the agent until ctx ends. A clean stop (ctx cancelled) returns
// nil after the last records went out, systemd heard STOPPING=1 and the
// console banner was taken off.
func (d *Daemon) Run(ctx context.Context) error {
	defer d.cmds.close()
	log := d.cfg.Logger
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	sdDone := make(chan struct{})
	go func() { defer close(sdDone); d.sd.Run(runCtx) }()
	go d.cmds.sweep(runCtx)
	if d.led != nil {
		go d.led.Run(runCtx)
		go d.led.Follow(runCtx, time.Second, d.ledState)
	}
	log.Info("pifleet-agent starting", "id", d.cfg.Link.ID, "version", d.cfg.Version, "broker", transport.Redacted(d.cfg.Link.Brokers...))
	err := d.run(runCtx)
	cancel()
	<-sdDone
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	if d.banner != nil {
		d.banner.remove(context.WithoutCancel(ctx))
	}
	log.Info("pifleet-agent stopped")
	return nil
}

// ledState is the status LED's pattern: a blip when all is well, a double
// blink with health problems, fast blinking without a broker.
func (d *Daemon) ledState() statusled.State {
	problems := 0
	if d.probes != nil {
		problems = len(d.probes.Problems())
	}
	return statusled.For(d.link.Connected(), problems)
}

// onStatus shows every status the daemon builds to systemd (READY,
// STATUS, watchdog) and on the console banner.
func (d *Daemon) onStatus(ctx context.Context, st wire.Status, hubConnected bool) {
	d.sd.OnStatus(st, hubConnected)
	if d.banner != nil {
		d.banner.update(ctx, st, hubConnected)
	}
}

// run runs the link, the address watch and the reporting loop until ctx
// ends, then lets running commands finish and the link say "offline".
func (d *Daemon) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	linkDone := make(chan error, 1)
	// The link gets its own context so that on shutdown the reporting loop
	// stops first and the link can still publish "offline".
	linkCtx, stopLink := context.WithCancel(context.Background())
	defer stopLink()
	go func() { linkDone <- d.link.Run(linkCtx) }()

	addrEvents := make(chan struct{}, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := d.cfg.Addrs.Watch(ctx, func() {
			select {
			case addrEvents <- struct{}{}:
			default:
			}
		})
		if err != nil && !errors.Is(err, context.Canceled) {
			d.log.Warn("address watch stopped", "err", err)
		}
	}()

	d.loop(ctx, addrEvents)
	wg.Wait()
	d.cmdCancel()
	if w, ok := d.cmds.handler.(interface{ Wait() }); ok {
		waitAtMost(w.Wait, 10*time.Second, d.log)
	}
	stopLink()
	return <-linkDone
}

// loop is the reporting loop. Address events are debounced into one
// snapshot; health is sampled every HealthEvery; report.Decider says when
// a status goes out (a change beyond a threshold, never faster than
// MinInterval, and at least every Heartbeat).
func (d *Daemon) loop(ctx context.Context, addrEvents <-chan struct{}) {
	dec := report.NewDecider(report.Config{Heartbeat: d.cfg.Heartbeat, MinInterval: d.cfg.MinInterval})
	deb := &report.Debouncer{Quiet: d.cfg.Debounce}
	sample := time.NewTicker(d.cfg.HealthEvery)
	defer sample.Stop()
	timer := time.NewTimer(d.cfg.Heartbeat)
	defer timer.Stop()
	var wake time.Time // when the decider wants to be asked again
	rearm := func() {
		next := wake
		if deb.Armed() && (next.IsZero() || deb.Deadline().Before(next)) {
			next = deb.Deadline()
		}
		if next.IsZero() {
			next = d.cfg.Now().Add(d.cfg.Heartbeat)
		}
		timer.Stop()
		timer.Reset(max(next.Sub(d.cfg.Now()), 0))
	}
	evaluate := func() {
		if deb.Armed() {
			return // a burst of address events is still settling
		}
		wake = d.report(ctx, dec)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-addrEvents:
			deb.Event(d.cfg.Now())
		case <-d.wake: // a new MQTT session: publish everything now
			dec.Reset()
			evaluate()
		case <-sample.C:
			evaluate()
		case <-timer.C:
			deb.Fire(d.cfg.Now())
			evaluate()
		}
		rearm()
	}
}

// report builds the current status and publishes it when the decider says
// so. It returns when to ask again (zero while disconnected).
func (d *Daemon) report(ctx context.Context, dec *report.Decider) time.Time {
	connected := d.link.Connected()
	st := d.build(ctx)
	d.onStatus(ctx, st, connected)
	if !connected {
		return time.Time{}
	}
	now := d.cfg.Now()
	decision := dec.Decide(now, st)
	if !decision.Publish {
		return decision.Wake
	}
	d.seq++
	st.Seq = d.seq
	if err := d.link.PublishStatus(st, decision.Retain); err != nil {
		d.log.Warn("publish status", "err", err)
		return now.Add(d.cfg.MinInterval)
	}
	dec.Published(now, st, decision.Retain)
	d.log.Debug("status published", "seq", st.Seq, "why", decision.Reasons, "retained", decision.Retain)
	return decision.Wake
}

func (d *Daemon) build(ctx context.Context) wire.Status {
	ifs, addrs, err := d.cfg.Addrs.Snapshot()
	if err != nil {
		d.log.Warn("address snapshot", "err", err)
	}
	return wire.Status{
		V:            wire.ProtocolVersion,
		ID:           d.cfg.Link.ID,
		Hostname:     d.cfg.Hostname,
		AgentVersion: d.cfg.Version,
		BootTime:     d.bootTime,
		Time:         d.cfg.Now().UTC(),
		Epoch:        d.link.Epoch(),
		HeartbeatS:   int((d.cfg.Heartbeat + time.Second - 1) / time.Second),
		Labels:       d.cfg.Labels,
		Tools:        d.cfg.Tools,
		Interfaces:   ifs,
		Addresses:    addrs,
		Health:       d.cfg.Health.Collect(ctx),
	}
}

func readTrim(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// bootTime reads btime from /proc/stat; zero when unknown.
func bootTime(procRoot string) time.Time {
	b, err := os.ReadFile(procRoot + "/stat")
	if err != nil {
		return time.Time{}
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				return time.Unix(n, 0).UTC()
			}
		}
	}
	return time.Time{}
}

// waitAtMost runs wait, giving up after limit (systemd stops the unit
// after TimeoutStopSec; a command's final record is not worth a SIGKILL).
func waitAtMost(wait func(), limit time.Duration, log *slog.Logger) {
	done := make(chan struct{})
	go func() { wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(limit):
		log.Warn("commands still finishing at shutdown; not waiting longer", "waited", limit)
	}
}
