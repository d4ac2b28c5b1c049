package alerts

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pifleet/pifleet/hub/internal/fleet"
)

// Event is one fleet change: the fleet's own type, so that *fleet.Fleet is
// a Source as it is.
type Event = fleet.Alert

// Kinds of events: the fleet sends these five.
const (
	Offline   = "offline"
	Online    = "online"
	Problem   = "problem"
	Recovered = "recovered"
	Address   = "address"
)

// Kinds the policy adds. Flapping, Settled and Startup are about one device
// (Startup: about none) and carry their text in Alert.Detail; the others are
// summaries of many Pis (Alert.Summary).
const (
	Flapping       = "flapping"
	Settled        = "settled"
	Startup        = "startup"       // "Hub started": what the quiet start learnt
	BurstLost      = "burst-lost"    // Pis gone offline
	BurstBack      = "burst-back"    // Pis back online
	BurstBlip      = "burst-blip"    // went offline and came back within the window
	BurstRelapse   = "burst-relapse" // came back and went offline again
	BurstProblem   = "burst-problem" // Pis with a health problem
	BurstRecovered = "burst-recovered"
	BurstAddress   = "burst-address"
	BurstOther     = "burst-other" // a kind of event the policy does not know
	Restart        = "restart"     // "N Pis reconnected after the hub restart; M still away"
)

// Alert is one thing to tell people: a device's event as the fleet sent it,
// a Flapping, Settled or Startup alert, or, with Summary, an alert about
// many Pis. Text fields are plain (no markup); Time is when it happened
// (a summary: its first event; Startup, Settled and Restart: when it was
// decided).
type Alert struct {
	Kind    string    `json:"kind"`
	Device  string    `json:"device,omitempty"`
	Detail  string    `json:"detail,omitempty"`
	Time    time.Time `json:"time"`
	Summary *Summary  `json:"summary,omitempty"`
}

// Summary is an alert about many Pis: a headline with the exact count, a
// few lines (each listing at most MaxListed ids), and every id in File when
// they do not all fit.
type Summary struct {
	Head  string   `json:"head"`  // "312 Pis lost"
	Timed bool     `json:"timed"` // the headline is about Alert.Time: "312 Pis lost at 14:02"
	Lines []string `json:"lines,omitempty"`
	File  *File    `json:"file,omitempty"`

	// The numbers behind the text. Count is how many Pis the headline
	// counts (Restart: those back); Away is, for Restart, how many are
	// still away; Devices are the ids the headline counts, sorted (Restart:
	// the away ones, as the Rejoiner lists them).
	Count   int      `json:"count"`
	Away    int      `json:"away,omitempty"`
	Devices []string `json:"devices,omitempty"`
}

// File is a summary's full list, one entry a line, for a front end to
// attach (Slack posts it in the alert's thread).
type File struct {
	Name    string `json:"name"` // "pifleet-lost.txt"
	Content string `json:"content"`
}

// MaxListed is the most ids a summary line or a Startup alert lists.
const MaxListed = 20

// Source delivers fleet events; *fleet.Fleet implements it. The policy's
// callback never blocks for long and never drops an event.
type Source interface {
	Subscribe(func(Event)) (cancel func())
}

// Rejoiner is optionally implemented by a Source that knows which Pis a
// restarted hub is waiting for; *fleet.Fleet implements it. With it, a
// restart is summed up in one Restart alert: Rejoin gives the exact
// counts, List the ids of the away ones (claimed online, never heard live
// since the start).
type Rejoiner interface {
	Rejoin() (back, away int)
	List() []fleet.Device
}

// Config tunes the policy. Zero values take the defaults in brackets.
type Config struct {
	FlapWindow  time.Duration // window for counting state changes [10m]
	FlapChanges int           // more changes than this in the window is flapping [4]
	Repeat      time.Duration // the same event of the same device is muted this long [30m]
	// QuietStart is how long after Begin events are only learnt, for the
	// Startup or Restart alert [15s].
	QuietStart time.Duration
	// RestartWait: when the Rejoiner has Pis claimed online at the start
	// (a restart), the quiet start lasts until every one of them spoke live
	// again or this long after Begin [90s].
	RestartWait time.Duration
	// Burst: more Pis than this with the same kind of event within one
	// BurstWindow is a burst, alerted as one summary [5].
	Burst int
	// BurstWindow is how long events are held to see whether they are part
	// of a burst, and the pause that ends a burst [5s].
	BurstWindow time.Duration

	// Rejoiner, when nil, is the Source given to Run if it is one; without
	// either there is no Restart alert.
	Rejoiner Rejoiner
	// Now is the clock (default time.Now); Tick how often Run looks at it
	// (default a fraction of the windows).
	Now  func() time.Time
	Tick time.Duration
}

func (c *Config) ensureDefaults() {
	setDur(&c.FlapWindow, 10*time.Minute)
	setDur(&c.Repeat, 30*time.Minute)
	setDur(&c.QuietStart, 15*time.Second)
	setDur(&c.RestartWait, 90*time.Second)
	setDur(&c.BurstWindow, 5*time.Second)
	if c.FlapChanges <= 0 {
		c.FlapChanges = 4
	}
	if c.Burst <= 0 {
		c.Burst = 5
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

func setDur(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// Stats counts the events that did not become an alert of their own.
type Stats struct {
	Suppressed uint64 // repeats, flapping, learnt during the quiet start
	Summarised uint64 // folded into a burst or Restart alert
}

// Policy is the alert policy of one hub; New makes one, Run runs it.
type Policy struct {
	cfg    Config
	rejoin Rejoiner // nil: no restart summary

	suppressed, summarised atomic.Uint64

	// mu guards everything below: Add runs on the Source's goroutine,
	// Sweep on Run's. Lock order: mu, then the fleet's own lock (Sweep
	// asks the Rejoiner); the fleet never calls Add with its lock held.
	mu      sync.Mutex
	pending *pending // nil: no window open

	flips    map[string][]time.Time // device → recent state changes
	flapping map[string]string      // device → latest state while muted
	state    map[string]string      // device → last alerted state
	recent   map[string]time.Time   // device/kind/detail → last alerted

	quietUntil  time.Time                // set by Begin; zero: no quiet start
	restartBy   time.Time                // set by Begin: the restart summary is due by then
	rejoining   bool                     // the quiet start became the wait for claimed Pis
	startupDone bool                     // the start was summed up
	startup     map[string]*startupState // device → what was learnt while quiet
	awayUntil   map[string]time.Time     // away in the restart summary: a "silent" loss until then is muted
}

type startupState struct {
	offline  bool
	problems string
}

// New returns a policy with cfg's settings; nothing runs until Run.
func New(cfg Config) *Policy {
	cfg.ensureDefaults()
	return &Policy{
		cfg:       cfg,
		rejoin:    cfg.Rejoiner,
		flips:     map[string][]time.Time{},
		flapping:  map[string]string{},
		state:     map[string]string{},
		recent:    map[string]time.Time{},
		startup:   map[string]*startupState{},
		awayUntil: map[string]time.Time{},
	}
}

// Run begins the quiet start, subscribes to src and, until ctx ends,
// hands each alert to emit as it falls due, in order, on Run's goroutine.
// It unsubscribes before it returns. Call it once.
func (p *Policy) Run(ctx context.Context, src Source, emit func(context.Context, Alert)) {
	p.mu.Lock()
	if r, ok := src.(Rejoiner); ok && p.rejoin == nil {
		p.rejoin = r
	}
	p.mu.Unlock()
	// Begin before subscribing, so every event that arrives is judged
	// against a window already set.
	p.Begin(p.cfg.Now())
	unsubscribe := src.Subscribe(p.Add)
	defer unsubscribe()
	tick := time.NewTicker(p.tickEvery())
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			for _, a := range p.Sweep(p.cfg.Now()) {
				emit(ctx, a)
			}
		}
	}
}

func (p *Policy) tickEvery() time.Duration {
	if p.cfg.Tick > 0 {
		return p.cfg.Tick
	}
	return max(min(p.cfg.FlapWindow/10, p.cfg.QuietStart/3, p.cfg.BurstWindow/5, 5*time.Second), 20*time.Millisecond)
}

// Begin starts the quiet start at now (Run calls it).
func (p *Policy) Begin(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.quietUntil = now.Add(p.cfg.QuietStart)
	p.restartBy = now.Add(p.cfg.RestartWait)
}

// Add takes one event, arriving now by the policy's clock (an event
// without a time is stamped with it). It is the Source's callback: it
// never blocks for longer than a map update, and never drops an event.
func (p *Policy) Add(e Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.add(e, p.cfg.Now())
}

// Sweep returns the alerts due at now: the start's summary, a closed
// window, settled devices. It also forgets old history, so memory stays
// bounded. Run calls it every Config.Tick.
func (p *Policy) Sweep(now time.Time) []Alert {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sweep(now)
}

// Stats returns the policy's counters.
func (p *Policy) Stats() Stats {
	return Stats{Suppressed: p.suppressed.Load(), Summarised: p.summarised.Load()}
}
