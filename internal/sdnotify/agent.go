package sdnotify

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/pifleet/pifleet/internal/wire"
)

// Agent ties the agent daemon's status reports to systemd: READY=1 on the
// first status built while connected to the hub (or after MaxWait, so boot
// never waits on a broker that is down), STATUS= whenever the one-line
// summary changes, and watchdog pings while statuses keep coming (the
// daemon's loop is alive). Wire OnStatus into daemon.Config.OnStatus and
// run Run in a goroutine.
type Agent struct {
	N       Notifier      // default New()
	MaxWait time.Duration // READY at the latest after this; default 20s
	// Stale is how long without a status the loop counts as wedged;
	// default 2 minutes (more than two 30 s heartbeats).
	Stale time.Duration
	Log   *slog.Logger
	Now   func() time.Time

	once      sync.Once
	connected chan struct{}
	mu        sync.Mutex
	line      string
	last      time.Time
}

func (a *Agent) init() {
	a.once.Do(func() {
		if a.N == nil {
			a.N = New()
		}
		if a.MaxWait == 0 {
			a.MaxWait = 20 * time.Second
		}
		if a.Stale == 0 {
			a.Stale = 2 * time.Minute
		}
		if a.Log == nil {
			a.Log = slog.New(slog.DiscardHandler)
		}
		if a.Now == nil {
			a.Now = time.Now
		}
		a.connected = make(chan struct{})
		a.last = a.Now()
	})
}

// OnStatus records a status; it never blocks.
func (a *Agent) OnStatus(st wire.Status, hubConnected bool) {
	a.init()
	line := StatusLine(st, hubConnected)
	a.mu.Lock()
	a.last = a.Now()
	changed := line != a.line
	a.line = line
	a.mu.Unlock()
	if hubConnected {
		select {
		case <-a.connected:
		default:
			close(a.connected)
		}
	}
	if changed {
		if err := a.N.Status(line); err != nil {
			a.Log.Debug("sd_notify status", "err", err)
		}
	}
}

func (a *Agent) alive() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.Now().Sub(a.last) < a.Stale
}

func (a *Agent) statusLine() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.line == "" {
		return "starting; hub=unreachable"
	}
	return a.line
}

// Run sends READY (see Agent), pings the watchdog until ctx is done, then
// sends STOPPING=1.
func (a *Agent) Run(ctx context.Context) {
	a.init()
	watchdog := make(chan struct{})
	go func() { defer close(watchdog); RunWatchdog(ctx, a.N, a.alive, a.Log) }()
	if err := ReadyWhen(ctx, a.N, a.connected, a.MaxWait, a.statusLine); err != nil && ctx.Err() == nil {
		a.Log.Warn("sd_notify ready", "err", err)
	}
	<-ctx.Done()
	<-watchdog // no ping after STOPPING=1
	_ = a.N.Stopping()
}

// StatusLine is the one-line summary systemctl status shows, e.g.
// "ip=192.0.2.10 hub=connected getty=active problems=under_voltage".
func StatusLine(st wire.Status, hubConnected bool) string {
	ip := "none"
	for _, a := range st.Addresses {
		if a.Primary {
			ip = a.Address
			break
		}
		if ip == "none" && a.Usable() {
			ip = a.Address
		}
	}
	hub := "unreachable"
	if hubConnected {
		hub = "connected"
	}
	line := fmt.Sprintf("ip=%s hub=%s", ip, hub)
	if c := st.Health.Console; c != nil {
		state := c.GettyState
		if state == "" {
			state = map[bool]string{true: "active", false: "inactive"}[c.GettyActive]
		}
		line += " getty=" + state
	}
	if len(st.Health.Problems) > 0 {
		p := make([]string, len(st.Health.Problems))
		for i, x := range st.Health.Problems {
			p[i] = string(x)
		}
		line += " problems=" + strings.Join(p, ",")
	}
	return OneLine(line)
}
