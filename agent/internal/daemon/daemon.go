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

	"github.com/pifleet/pifleet/agent/internal/netwatch"
	"github.com/pifleet/pifleet/agent/internal/report"
	"github.com/pifleet/pifleet/internal/link"
	"github.com/pifleet/pifleet/internal/wire"
)

// Config is everything the daemon needs. Zero values get defaults.
type Config struct {
	Link      link.Options
	Hostname  string
	Version   string
	Labels    []string
	Tools     []string      // tools the command handler runs (reported in status)
	Heartbeat time.Duration // default 30s
	// Debounce coalesces bursts of address events (DHCP renumbering) into
	// one report. Default 150ms.
	Debounce time.Duration
	// HealthEvery is how often health is sampled between heartbeats to
	// catch changes (report by exception). Default 5s.
	HealthEvery time.Duration
	// MinInterval is the shortest time between two status messages;
	// changes in between are coalesced. Default 500ms.
	MinInterval time.Duration

	Addrs    AddrSource // default: a netwatch.Watcher (netlink, polling fallback)
	Health   HealthSource
	Commands CommandHandler
	// ProcRoot is where /proc lives (boot time, boot id). Default "/proc".
	ProcRoot string
	// OnStatus, when set, sees every status the daemon builds, whether the
	// hub is connected or not (the console banner shows both). It must
	// not block.
	OnStatus func(ctx context.Context, st wire.Status, hubConnected bool)
	Logger   *slog.Logger
	Now      func() time.Time
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
	if c.Addrs == nil {
		c.Addrs = netwatch.New(netwatch.Options{Logger: c.Logger})
	}
	if c.Health == nil {
		c.Health = noHealth{}
	}
	if c.Link.Now == nil {
		c.Link.Now = c.Now
	}
	if c.Link.Logger == nil {
		c.Link.Logger = c.Logger
	}
}

// Daemon is a running agent.
type Daemon struct {
	cfg  Config
	log  *slog.Logger
	link *link.Link

	bootTime time.Time
	wake     chan struct{} // something changed: rebuild and maybe publish

	seq uint64 // owned by loop

	// cmdCtx is what running commands see; it ends when the agent shuts
	// down (before the link goes), so containers are stopped and their
	// final records still published.
	cmdCtx    context.Context
	cmdCancel context.CancelFunc
}

// New checks cfg and builds a Daemon.
func New(cfg Config) (*Daemon, error) {
	cfg.ensureDefaults()
	d := &Daemon{cfg: cfg, log: cfg.Logger.With("component", "daemon"), wake: make(chan struct{}, 1)}
	d.cmdCtx, d.cmdCancel = context.WithCancel(context.Background())
	cfg.Link.BootID = readTrim(cfg.ProcRoot + "/sys/kernel/random/boot_id")
	cfg.Link.OnUp = func(uint64) { d.poke() } // a new session republishes everything
	if cfg.Commands != nil {
		cfg.Link.OnCommand = func(p []byte) {
			cfg.Commands.HandleCommand(d.cmdCtx, p, d.link)
		}
	}
	l, err := link.New(cfg.Link)
	if err != nil {
		return nil, err
	}
	d.link = l
	d.bootTime = bootTime(cfg.ProcRoot)
	return d, nil
}

// Link returns the daemon's MQTT link (for publishing results).
func (d *Daemon) Link() *link.Link { return d.link }

func (d *Daemon) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run runs the agent until ctx ends.
func (d *Daemon) Run(ctx context.Context) error {
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
	if w, ok := d.cfg.Commands.(interface{ Wait() }); ok {
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
	if !connected && d.cfg.OnStatus == nil {
		return time.Time{}
	}
	st := d.build(ctx)
	if d.cfg.OnStatus != nil {
		d.cfg.OnStatus(ctx, st, connected)
	}
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
	if err := d.link.PublishStatus(st); err != nil {
		d.log.Warn("publish status", "err", err)
		return now.Add(d.cfg.MinInterval)
	}
	dec.Published(now, st)
	d.log.Debug("status published", "seq", st.Seq, "why", decision.Reasons)
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

type noHealth struct{}

func (noHealth) Collect(context.Context) wire.Health { return wire.Health{} }

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

// String describes the daemon for logs.
func (d *Daemon) String() string { return fmt.Sprintf("agent %s", d.cfg.Link.ID) }

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
