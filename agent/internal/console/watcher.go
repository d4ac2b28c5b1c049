package console

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pifleet/pifleet/internal/wire"
)

// Options configure a Watcher. The zero value checks "/" without systemd.
type Options struct {
	Root    string  // "/" when empty
	Systemd Systemd // nil: the getty is not checked (GettyState "unknown")
	// Repair allows restarting serial-getty@<tty>.service when it is
	// failed or inactive (the agent's --console-repair).
	Repair bool
	// RepairInterval is the least time between two restarts, so a getty
	// that keeps failing is not restarted in a loop. Default 5 minutes.
	RepairInterval time.Duration
	// Interval is how long Check reuses the setup and getty results (the
	// health loop calls it every few seconds; config files and systemd
	// change rarely). Logins are read on every call. Default 1 minute.
	Interval time.Duration
	Now      func() time.Time
	Logger   *slog.Logger
}

func (o *Options) ensureDefaults() {
	if o.Root == "" {
		o.Root = "/"
	}
	if o.RepairInterval == 0 {
		o.RepairInterval = 5 * time.Minute
	}
	if o.Interval == 0 {
		o.Interval = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Report is everything one check found.
type Report struct {
	UART     UART
	Findings []Finding // setup findings, then getty and login
	Logins   []Login   // logins on the console tty
	Console  wire.Console
	Problems []wire.Problem
}

// Fixes counts the findings that need a fix.
func (r Report) Fixes() int {
	n := 0
	for _, f := range r.Findings {
		if f.Status == StatusFix {
			n++
		}
	}
	return n
}

// Watcher checks the console setup, getty and logins on demand.
type Watcher struct {
	opts       Options
	mu         sync.Mutex
	lastRepair time.Time

	cacheMu  sync.Mutex
	cached   *Report
	cachedAt time.Time
}

// NewWatcher returns a Watcher.
func NewWatcher(opts Options) *Watcher {
	opts.ensureDefaults()
	opts.Logger = opts.Logger.With("component", "console")
	return &Watcher{opts: opts}
}

// Check returns the health block's console part and the problems to add
// to Health.Problems. It runs every check at most once per Interval and
// reads the logins every time. It never fails as a whole.
func (w *Watcher) Check(ctx context.Context) (wire.Console, []wire.Problem) {
	w.cacheMu.Lock()
	defer w.cacheMu.Unlock()
	now := w.opts.Now()
	if w.cached == nil || now.Sub(w.cachedAt) >= w.opts.Interval || now.Before(w.cachedAt) {
		r := w.Report(ctx)
		w.cached, w.cachedAt = &r, now
		return r.Console, r.Problems
	}
	c := w.cached.Console
	c.Repaired = false // reported once, by the check that restarted
	logins, _ := w.checkLogins(c.TTY)
	c.InUse = len(logins) > 0
	return c, append([]wire.Problem(nil), w.cached.Problems...)
}

// Report runs every check and returns all findings (what doctor prints).
func (w *Watcher) Report(ctx context.Context) Report {
	var r Report
	u, err := FindUART(w.opts.Root)
	if err != nil {
		w.opts.Logger.Warn("find console UART", "err", err)
	}
	r.UART = u
	r.Findings = CheckSetup(w.opts.Root, u)
	r.Console.TTY = u.TTY
	r.Console.ConfigIssues = r.Fixes()
	if r.Console.ConfigIssues > 0 {
		r.Problems = append(r.Problems, wire.ProblemConsoleConfig)
	}
	gf := w.checkGetty(ctx, u.TTY, &r.Console)
	r.Findings = append(r.Findings, gf)
	if gf.Status == StatusFix {
		r.Problems = append(r.Problems, wire.ProblemGettyDown)
	}
	r.Logins, gf = w.checkLogins(u.TTY)
	r.Findings = append(r.Findings, gf)
	r.Console.InUse = len(r.Logins) > 0
	return r
}

func (w *Watcher) checkGetty(ctx context.Context, tty string, c *wire.Console) Finding {
	f := Finding{Check: "getty", Snippet: SnippetSerialGetty}
	if tty == "" {
		f.Status, f.Message = StatusInfo, "no console UART, no getty to check"
		return f
	}
	unit := GettyUnit(tty)
	if w.opts.Systemd == nil {
		f.Status, f.Message = StatusInfo, unit+": not checked (no systemd connection)"
		c.GettyState = "unknown"
		return f
	}
	state, err := w.opts.Systemd.ActiveState(ctx, unit)
	if err != nil {
		w.opts.Logger.Warn("ask systemd for the getty", "unit", unit, "err", err)
		f.Status, f.Message = StatusInfo, fmt.Sprintf("%s: cannot ask systemd: %v", unit, err)
		c.GettyState = "unknown"
		return f
	}
	if !IsActive(state) && w.mayRepair() {
		state = w.repair(ctx, unit, state, c)
	}
	c.GettyState, c.GettyActive = state, IsActive(state)
	if c.GettyActive {
		f.Status, f.Message = StatusOK, unit+" is "+state
		if c.Repaired {
			f.Message += " (restarted by pifleet-agent)"
		}
		return f
	}
	f.Status, f.Action = StatusFix, "sudo systemctl restart "+unit
	f.Message = fmt.Sprintf("%s is %s: nobody answers on the console", unit, state)
	return f
}

func (w *Watcher) mayRepair() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.opts.Repair {
		return false
	}
	now := w.opts.Now()
	if !w.lastRepair.IsZero() && now.Sub(w.lastRepair) < w.opts.RepairInterval {
		return false
	}
	w.lastRepair = now
	return true
}

func (w *Watcher) repair(ctx context.Context, unit, state string, c *wire.Console) string {
	log := w.opts.Logger.With("unit", unit, "state", state)
	if err := w.opts.Systemd.Restart(ctx, unit); err != nil {
		log.Warn("restart console getty", "err", err)
		return state
	}
	after, err := w.opts.Systemd.ActiveState(ctx, unit)
	if err != nil {
		log.Warn("ask systemd after restart", "err", err)
		return state
	}
	c.Repaired = IsActive(after)
	log.Info("restarted console getty", "now", after)
	return after
}

func (w *Watcher) checkLogins(tty string) ([]Login, Finding) {
	f := Finding{Check: "login", Status: StatusInfo}
	all, err := ReadLogins(w.opts.Root)
	if err != nil {
		w.opts.Logger.Warn("read utmp", "err", err)
		f.Message = "cannot read logins: " + err.Error()
		return nil, f
	}
	logins := ConsoleLogins(all, tty)
	if len(logins) == 0 {
		f.Status, f.Message = StatusOK, "nobody is logged in on the console"
		return nil, f
	}
	l := logins[0]
	f.Message = fmt.Sprintf("console in use: %s logged in on %s since %s", l.User, l.Line, l.Time.Format(time.RFC3339))
	return logins, f
}
