// Package sim runs many simulated Pis against an MQTT broker: each is the
// agent's real MQTT session (internal/link: epoch, will, retained state
// and status, QoS 1, reconnect with full-jitter backoff) publishing real
// wire.Status records; only its senses are synthetic (addresses from the
// documentation ranges, Pi 3-like health, and with Churn occasional
// problems, address changes and dropped connections).
//
// It is the engine of `pifleet sim` and of the fleet-scale tests and
// benchmarks. One process is limited by its open files (one socket per
// simulated Pi) and by the ephemeral ports of one source/destination
// address pair (~28k): spread large fleets over several processes
// (Shard) and source addresses (SourceAddrs).
package sim

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pifleet/pifleet/internal/link"
	"github.com/pifleet/pifleet/internal/wire"
)

// Config describes one simulator process. Zero values get defaults.
type Config struct {
	Agents int    // total simulated Pis across all shards (required)
	Shard  int    // this process runs shard Shard of Shards (0-based)
	Shards int    // default 1
	Prefix string // device ids are Prefix + 5-digit index; default "sim-"

	Brokers   []string      // broker URLs, tried in turn (as the agent's --broker)
	Rate      float64       // connects per second started by this process; default 100
	Heartbeat time.Duration // default 30s
	KeepAlive time.Duration // default 10s
	// RetainEvery is the agent's rule for retained statuses: the first of
	// a session and every change are retained, a heartbeat only when the
	// last retained one is RetainEvery old. Default 10 min; at or below
	// Heartbeat every status is retained (agents before 2026-12).
	RetainEvery time.Duration
	// SourceAddrs are local addresses the sessions dial from, round robin
	// (e.g. 127.0.0.2 … 127.0.0.17 against a broker on 127.0.0.1).
	SourceAddrs []netip.Addr
	// Churn is the chance per Pi and heartbeat of one event: an address
	// change, a health problem appearing or clearing, or a dropped
	// connection (the broker publishes the will; the link reconnects).
	Churn  float64
	Labels []string
	// Configure adjusts each session's client options (TLS, the login of
	// device id). Called once per connection attempt.
	Configure func(id string, o *mqtt.ClientOptions) error

	Progress      io.Writer     // progress lines while connecting; nil: none
	ProgressEvery time.Duration // default 2s
	Logger        *slog.Logger
	Seed          uint64 // random seed (0: from the clock)
}

// Stats are the simulator's counters.
type Stats struct {
	Agents     int    // simulated Pis in this process
	Connected  int64  // sessions up now
	Connects   uint64 // successful connects (first and re-)
	Reconnects uint64 // connects after the first one of a Pi
	Failed     uint64 // failed connect attempts
	Lost       uint64 // sessions lost
	Publishes  uint64 // statuses published (acknowledged by the broker)
	PubErrors  uint64 // statuses not acknowledged
	Churned    uint64 // churn events
}

func (s Stats) String() string {
	return fmt.Sprintf("agents=%d connected=%d connects=%d reconnects=%d failed=%d lost=%d publishes=%d publish_errors=%d churn=%d",
		s.Agents, s.Connected, s.Connects, s.Reconnects, s.Failed, s.Lost, s.Publishes, s.PubErrors, s.Churned)
}

// Range returns the indexes [lo, hi) of the Pis shard i of n runs.
func Range(agents, i, n int) (lo, hi int) {
	return agents * i / n, agents * (i + 1) / n
}

// ID is the device id of Pi number i.
func ID(prefix string, i int) string { return fmt.Sprintf("%s%05d", prefix, i) }

func (c *Config) ensureDefaults() error {
	if c.Agents <= 0 {
		return errors.New("--agents: want at least 1")
	}
	if c.Shards == 0 {
		c.Shards = 1
	}
	if c.Shard < 0 || c.Shard >= c.Shards {
		return fmt.Errorf("--shard %d/%d: want 0 ≤ i < n", c.Shard, c.Shards)
	}
	if c.Prefix == "" {
		c.Prefix = "sim-"
	}
	if err := wire.ValidateID(ID(c.Prefix, c.Agents-1)); err != nil {
		return fmt.Errorf("--prefix %q: %w", c.Prefix, err)
	}
	if len(c.Brokers) == 0 {
		return errors.New("--broker: no broker URL")
	}
	for _, b := range c.Brokers {
		u, err := url.Parse(b)
		if err != nil || u.Host == "" {
			return fmt.Errorf("--broker %q: want a URL such as mqtt://127.0.0.1:1883", b)
		}
	}
	if c.Rate == 0 {
		c.Rate = 100
	}
	if c.Rate < 0 {
		return errors.New("--rate: want a positive number of connects per second")
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = 30 * time.Second
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = 10 * time.Second
	}
	if c.RetainEvery <= 0 {
		c.RetainEvery = 10 * time.Minute
	}
	if c.Churn < 0 || c.Churn > 1 {
		return fmt.Errorf("--churn %v: want a probability between 0 and 1", c.Churn)
	}
	if c.ProgressEvery == 0 {
		c.ProgressEvery = 2 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Seed == 0 {
		c.Seed = uint64(time.Now().UnixNano())
	}
	return nil
}

// Sim is a running simulator.
type Sim struct {
	cfg  Config
	pis  []*pi
	stat struct {
		connected                                                atomic.Int64
		connects, reconnects, failed, lost, pubs, pubErrs, churn atomic.Uint64
	}
}

// New checks cfg and prepares the Pis of this shard.
func New(cfg Config) (*Sim, error) {
	if err := cfg.ensureDefaults(); err != nil {
		return nil, err
	}
	s := &Sim{cfg: cfg}
	lo, hi := Range(cfg.Agents, cfg.Shard, cfg.Shards)
	for i := lo; i < hi; i++ {
		p := &pi{sim: s, index: i, id: ID(cfg.Prefix, i),
			rnd: rand.New(rand.NewPCG(cfg.Seed, uint64(i))), up: make(chan uint64, 1)}
		if n := len(cfg.SourceAddrs); n > 0 {
			p.src = cfg.SourceAddrs[(i-lo)%n]
		}
		s.pis = append(s.pis, p)
	}
	return s, nil
}

// Stats returns the counters now.
func (s *Sim) Stats() Stats {
	return Stats{Agents: len(s.pis), Connected: s.stat.connected.Load(), Connects: s.stat.connects.Load(),
		Reconnects: s.stat.reconnects.Load(), Failed: s.stat.failed.Load(), Lost: s.stat.lost.Load(),
		Publishes: s.stat.pubs.Load(), PubErrors: s.stat.pubErrs.Load(), Churned: s.stat.churn.Load()}
}

// Run starts the Pis at Rate per second and keeps them running until ctx
// ends; then every Pi shuts down cleanly (retained "offline"), as agents
// do on SIGTERM. Kill the process instead to have the broker publish
// every will.
func (s *Sim) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	stopProgress := s.progress(ctx)
	defer stopProgress()
	interval := time.Duration(float64(time.Second) / s.cfg.Rate)
	start := time.Now()
	for n, p := range s.pis {
		// Pace by schedule, not by sleeping per Pi, so slow starts catch up.
		if wait := time.Until(start.Add(time.Duration(n) * interval)); wait > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		}
		if ctx.Err() != nil {
			break
		}
		l, err := p.newLink()
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() { defer wg.Done(); p.run(ctx, l) }()
	}
	<-ctx.Done()
	wg.Wait()
	return nil
}

func (s *Sim) progress(ctx context.Context) (stop func()) {
	if s.cfg.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(s.cfg.ProgressEvery)
		defer t.Stop()
		start := time.Now()
		all := false
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			st := s.Stats()
			if all && st.Connected == int64(st.Agents) {
				continue // quiet once everyone is up; speak again on change
			}
			all = st.Connected == int64(st.Agents)
			fmt.Fprintf(s.cfg.Progress, "sim: %6.1fs %d/%d connected (failed attempts %d, reconnects %d, publishes %d)\n",
				time.Since(start).Seconds(), st.Connected, st.Agents, st.Failed, st.Reconnects, st.Publishes)
		}
	}()
	return func() { close(done); <-stopped }
}

// pi is one simulated Pi.
type pi struct {
	sim   *Sim
	index int
	id    string
	src   netip.Addr
	rnd   *rand.Rand // used by the Pi's own goroutine only
	up    chan uint64

	connMu sync.Mutex
	conn   net.Conn // the current connection, for dropping it

	connects int         // owned by the link's goroutine (OnUp)
	isUp     atomic.Bool // counted in Stats.Connected

	// synthetic senses, owned by run
	seq     uint64
	addrGen int
	problem bool
	temp    float64
	keptAt  time.Time // the last status published retained
}

func (p *pi) newLink() (*link.Link, error) {
	cfg := p.sim.cfg
	return link.New(link.Options{
		Brokers:   cfg.Brokers,
		ID:        p.id,
		BootID:    fmt.Sprintf("00000000-0000-4000-8000-%012d", p.index),
		KeepAlive: cfg.KeepAlive,
		Logger:    cfg.Logger.With("pi", p.id),
		Configure: p.configure,
		OnUp: func(epoch uint64) {
			p.connects++
			p.sim.stat.connects.Add(1)
			if p.connects > 1 {
				p.sim.stat.reconnects.Add(1)
			}
			if !p.isUp.Swap(true) {
				p.sim.stat.connected.Add(1)
			}
			select {
			case p.up <- epoch:
			default:
			}
		},
		OnDown: func(error) {
			if p.isUp.Swap(false) {
				p.sim.stat.connected.Add(-1)
			}
			p.sim.stat.lost.Add(1)
		},
		OnConnectFailed: func(error) { p.sim.stat.failed.Add(1) },
	})
}

// configure dials every connection itself: from the Pi's source address,
// and remembering the socket so churn can drop it the way a dead Wi-Fi
// link does (no DISCONNECT: the broker publishes the will).
func (p *pi) configure(o *mqtt.ClientOptions) error {
	if f := p.sim.cfg.Configure; f != nil {
		if err := f(p.id, o); err != nil {
			return err
		}
	}
	o.SetCustomOpenConnectionFn(func(u *url.URL, co mqtt.ClientOptions) (net.Conn, error) {
		d := &net.Dialer{Timeout: co.ConnectTimeout}
		if p.src.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: p.src.AsSlice()}
		}
		var c net.Conn
		var err error
		switch u.Scheme {
		case "mqtt", "tcp":
			c, err = d.Dial("tcp", u.Host)
		case "mqtts", "ssl", "tls", "tcps":
			cfg := co.TLSConfig
			if cfg == nil {
				cfg = &tls.Config{}
			}
			c, err = tls.DialWithDialer(d, "tcp", u.Host, cfg)
		default:
			return nil, fmt.Errorf("broker scheme %q: want mqtt or mqtts", u.Scheme)
		}
		if err != nil {
			return nil, err
		}
		p.connMu.Lock()
		p.conn = c
		p.connMu.Unlock()
		return c, nil
	})
	return nil
}

// drop breaks the current connection the way a dead link does: reads and
// writes fail at once (a deadline in the past), the MQTT client takes it
// as lost and closes the socket without DISCONNECT, so the broker sends
// the will. (Closing the socket ourselves would look like a deliberate
// close to the client, which then never reports the loss.)
func (p *pi) drop() {
	p.connMu.Lock()
	c := p.conn
	p.connMu.Unlock()
	if c != nil {
		_ = c.SetDeadline(time.Unix(1, 0))
	}
}

func (p *pi) run(ctx context.Context, l *link.Link) {
	cfg := p.sim.cfg
	linkDone := make(chan struct{})
	linkCtx, stopLink := context.WithCancel(context.Background())
	go func() { defer close(linkDone); _ = l.Run(linkCtx) }()
	p.temp = 45 + p.rnd.Float64()*10
	// Heartbeats are spread over the interval so a fleet started at once
	// does not publish in waves.
	hb := time.NewTimer(cfg.Heartbeat)
	defer hb.Stop()
	for {
		select {
		case <-ctx.Done():
			stopLink()
			<-linkDone
			if p.isUp.Swap(false) {
				p.sim.stat.connected.Add(-1)
			}
			return
		case epoch := <-p.up:
			p.seq = 0
			p.publish(l, epoch, true)
			hb.Reset(time.Duration(p.rnd.Int64N(int64(cfg.Heartbeat))) + time.Millisecond)
		case <-hb.C:
			hb.Reset(cfg.Heartbeat)
			if !l.Connected() {
				continue
			}
			changed := false
			if cfg.Churn > 0 && p.rnd.Float64() < cfg.Churn {
				p.sim.stat.churn.Add(1)
				switch p.rnd.IntN(3) {
				case 0:
					p.addrGen++
				case 1:
					p.problem = !p.problem
				case 2:
					p.drop()
					continue
				}
				changed = true
			}
			p.temp += p.rnd.Float64() - 0.5
			p.publish(l, l.Epoch(), changed || time.Since(p.keptAt) >= cfg.RetainEvery)
		}
	}
}

// publish sends the Pi's status, retained (the first of a session, a
// change, a refresh) or not (a heartbeat), as the agent does.
func (p *pi) publish(l *link.Link, epoch uint64, retained bool) {
	p.seq++
	if err := l.PublishStatus(p.status(epoch), retained); err != nil {
		p.sim.stat.pubErrs.Add(1)
		return
	}
	if retained {
		p.keptAt = time.Now()
	}
	p.sim.stat.pubs.Add(1)
}

// status is a Pi 3 on wired Ethernet with Wi-Fi up, in the documentation
// ranges (RFC 5737, RFC 3849).
func (p *pi) status(epoch uint64) wire.Status {
	cfg := p.sim.cfg
	now := time.Now().UTC()
	host := p.index%250 + 2
	net4 := "192.0.2."
	if p.addrGen%2 == 1 {
		net4 = "198.51.100."
	}
	mac := fmt.Sprintf("b8:27:eb:%02x:%02x:%02x", p.index>>16&0xff, p.index>>8&0xff, p.index&0xff)
	f := func(v float64) *float64 { return &v }
	u := func(v uint64) *uint64 { return &v }
	b := func(v bool) *bool { return &v }
	h := wire.Health{
		TempC: f(float64(int(p.temp*10)) / 10), CPUFreqMHz: f(1200),
		Throttle: &wire.Throttle{Source: "vcgencmd"},
		Load1:    f(0.08), Load5: f(0.05), Load15: f(0.03),
		MemTotalB: u(969_736_192), MemAvailB: u(712_000_000),
		Disks:        []wire.Disk{{Path: "/", TotalB: 31_000_000_000, FreeB: 20_000_000_000, UsedPercent: 35.5}},
		RootReadOnly: b(false), UptimeS: f(float64(time.Since(bootOf(p.index)) / time.Second)), ClockSynced: b(true),
		Docker: "reachable", Model: "Raspberry Pi 3 Model B Rev 1.2", Revision: "a02082",
		Console: &wire.Console{TTY: "ttyS0", GettyActive: true},
		Probes:  map[string]wire.ProbeState{"thermal": wire.ProbeOK, "throttle": wire.ProbeOK},
	}
	if p.problem {
		h.Throttle.Raw, h.Throttle.UnderVoltage, h.Throttle.UnderVoltageOccurred = 0x50005, true, true
		h.Problems = []wire.Problem{wire.ProblemUnderVoltage}
	}
	return wire.Status{
		V: wire.ProtocolVersion, ID: p.id, Hostname: p.id, AgentVersion: "sim",
		BootTime: bootOf(p.index), Time: now, Seq: p.seq, Epoch: epoch,
		HeartbeatS: int((cfg.Heartbeat + time.Second - 1) / time.Second),
		Labels:     cfg.Labels,
		Interfaces: []wire.Interface{
			{Name: "lo", Up: true, Loopback: true},
			{Name: "eth0", MAC: mac, Up: true, DefaultRoute: true},
			{Name: "wlan0", MAC: mac[:len(mac)-1] + "f", Up: true, SSID: "workshop"},
		},
		Addresses: []wire.Address{
			{Address: "127.0.0.1", Prefix: 8, Family: wire.IPv4, Interface: "lo", Loopback: true},
			{Address: fmt.Sprintf("%s%d", net4, host), Prefix: 24, Family: wire.IPv4, Interface: "eth0", Primary: true},
			{Address: fmt.Sprintf("2001:db8::%x", p.index+1), Prefix: 64, Family: wire.IPv6, Interface: "eth0", Primary: true},
			{Address: fmt.Sprintf("fe80::ba27:ebff:fe%02x:%04x", p.index>>16&0xff, p.index&0xffff), Prefix: 64, Family: wire.IPv6, Interface: "eth0", LinkLocal: true},
		},
		Health: h,
	}
}

var simEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func bootOf(i int) time.Time { return simEpoch.Add(time.Duration(i) * time.Minute) }
