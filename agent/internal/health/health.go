package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/docker/docker/client"
	"github.com/pifleet/pifleet/internal/wire"
)

// ErrAbsent is returned by a probe that found nothing to measure (no such
// sensor, file or program). It is not a failure.
var ErrAbsent = errors.New("absent")

// ProbeFunc fills its part of h. It returns nil, an error wrapping
// ErrAbsent, or another error (failed). It may append to h.Problems.
type ProbeFunc func(ctx context.Context, h *wire.Health) error

// FSStat is what a statfs tells about a filesystem, in bytes.
type FSStat struct {
	Total uint64 // size
	Free  uint64 // free, including the root reserve
	Avail uint64 // free for unprivileged users
}

// Options configure a Collector. The zero value reads the real system.
type Options struct {
	Logger *slog.Logger
	// Root is prepended to every /sys, /proc, /boot, /dev and /var path.
	// Default "/".
	Root string
	// DataDir is a second filesystem to report besides / (the agent's data
	// directory). Empty: only /.
	DataDir string
	// HotC is the temperature at which the Pi is "hot". Default 80 (the
	// firmware's soft limit starts at 80 °C on a Pi 3).
	HotC float64
	// DiskFullPercent is the used percentage above which a disk is full.
	// Default 90.
	DiskFullPercent float64
	// ExpectDocker makes an absent Docker daemon a problem.
	ExpectDocker bool
	// DockerSocket is the Docker API socket, under Root, used when
	// DOCKER_HOST is not set. Default /var/run/docker.sock.
	DockerSocket string
	// ThermalTypes are the thermal zone types that are the SoC sensor, in
	// order of preference. Default cpu-thermal, bcm2835_thermal, cpu_thermal.
	ThermalTypes []string

	// Exec runs a program without a shell and returns its stdout. It must
	// return an error wrapping ErrAbsent when the program is not installed.
	// Default: exec.LookPath (plus /usr/bin, /opt/vc/bin) and exec.CommandContext.
	Exec func(ctx context.Context, name string, args ...string) ([]byte, error)
	// Statfs measures the filesystem holding path. Default unix.Statfs.
	Statfs func(path string) (FSStat, error)
	// ClockSynced reports whether the kernel's clock is synchronised.
	// Default adjtimex(2).
	ClockSynced func() (bool, error)
	// Docker checks the daemon: "reachable", "unreachable" or "absent".
	// Default: the Docker client's Ping (DOCKER_HOST, else DockerSocket)
	// with a short timeout.
	Docker func(ctx context.Context) string
	// Now is the clock (a Pi without RTC starts in 1970). Default time.Now.
	Now func() time.Time

	// SlowEvery is how long the results of costly probes (vcgencmd, the
	// Docker ping) are reused. Default 30 s.
	SlowEvery time.Duration
	// ProbeTimeout bounds each probe. Default 2 s.
	ProbeTimeout time.Duration
}

func (o *Options) ensureDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Root == "" {
		o.Root = "/"
	}
	if o.HotC == 0 {
		o.HotC = 80
	}
	if o.DiskFullPercent == 0 {
		o.DiskFullPercent = 90
	}
	if o.DockerSocket == "" {
		o.DockerSocket = "/var/run/docker.sock"
	}
	if len(o.ThermalTypes) == 0 {
		o.ThermalTypes = []string{"cpu-thermal", "bcm2835_thermal", "cpu_thermal"}
	}
	if o.Exec == nil {
		o.Exec = execProgram
	}
	if o.Statfs == nil {
		o.Statfs = statfs
	}
	if o.ClockSynced == nil {
		o.ClockSynced = adjtimexSynced
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SlowEvery == 0 {
		o.SlowEvery = 30 * time.Second
	}
	if o.ProbeTimeout == 0 {
		o.ProbeTimeout = 2 * time.Second
	}
}

type probe struct {
	name string
	fn   ProbeFunc
}

// Collector runs the probes. It implements daemon.HealthSource. Collect
// may be called from one goroutine at a time (it serialises itself).
type Collector struct {
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	probes   []probe
	states   map[string]wire.ProbeState
	failures map[string]uint64

	last []wire.Problem // problems of the latest Collect

	model *modelInfo // cached once found

	dockerMu sync.Mutex
	dockerCl *client.Client // built by the first Docker ping (os_linux.go)
	// Where the sensors were found: sysfs numbering is fixed for a boot,
	// so look once and look again only when the file disappears.
	thermalDir, hwmonDir string
	// mounts parsed during the current Collect (shared by two probes).
	mounts      []mount
	mountsCycle uint64
	cycle       uint64
	vcgencmd    slowResult[uint32]
	docker      slowResult[string]
}

// New returns a Collector with the built-in probes registered.
func New(opts Options) *Collector {
	opts.ensureDefaults()
	c := &Collector{
		opts:     opts,
		log:      opts.Logger.With("component", "health"),
		states:   map[string]wire.ProbeState{},
		failures: map[string]uint64{},
	}
	if opts.Docker == nil {
		c.opts.Docker = c.pingDocker
	}
	c.Register("thermal", c.probeThermal)
	c.Register("cpufreq", c.probeCPUFreq)
	c.Register("throttle", c.probeThrottle)
	c.Register("load", c.probeLoad)
	c.Register("meminfo", c.probeMeminfo)
	c.Register("mounts", c.probeMounts)
	c.Register("disk", c.probeDisks)
	c.Register("uptime", c.probeUptime)
	c.Register("clock", c.probeClock)
	c.Register("docker", c.probeDocker)
	c.Register("model", c.probeModel)
	return c
}

// Register adds a probe (other packages add theirs, e.g. the console
// watcher). A probe registered under an existing name replaces it.
func (c *Collector) Register(name string, fn ProbeFunc) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.probes {
		if c.probes[i].name == name {
			c.probes[i].fn = fn
			return
		}
	}
	c.probes = append(c.probes, probe{name, fn})
}

// Failures returns how many times each probe has failed since start.
func (c *Collector) Failures() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]uint64, len(c.failures))
	for k, v := range c.failures {
		out[k] = v
	}
	return out
}

// Collect runs every probe and derives the problems. It never fails as a
// whole.
func (c *Collector) Collect(ctx context.Context) wire.Health {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cycle++
	var h wire.Health
	h.Probes = make(map[string]wire.ProbeState, len(c.probes))
	for _, p := range c.probes {
		err := c.run(ctx, p, &h)
		st := wire.ProbeOK
		switch {
		case err == nil:
		case errors.Is(err, ErrAbsent):
			st = wire.ProbeAbsent
		default:
			st = wire.ProbeFailed
			c.failures[p.name]++
		}
		h.Probes[p.name] = st
		if prev := c.states[p.name]; prev != st {
			c.states[p.name] = st
			lvl := slog.LevelDebug
			if st == wire.ProbeFailed {
				lvl = slog.LevelWarn
			}
			c.log.Log(ctx, lvl, "probe state", "probe", p.name, "state", st, "err", err)
		}
	}
	h.Problems = c.problems(&h)
	c.last = slices.Clone(h.Problems)
	return h
}

// Problems returns the problems found by the latest Collect (for the
// status LED).
func (c *Collector) Problems() []wire.Problem {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.last)
}

// run runs one probe with a timeout, turning a panic into a failure.
func (c *Collector) run(ctx context.Context, p probe, h *wire.Health) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("probe %s panicked: %v\n%s", p.name, r, debug.Stack())
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, c.opts.ProbeTimeout)
	defer cancel()
	return p.fn(ctx, h)
}

// problems lists the bad flags of h (plus any a probe added), sorted and
// without repeats.
func (c *Collector) problems(h *wire.Health) []wire.Problem {
	ps := h.Problems
	add := func(bad bool, p wire.Problem) {
		if bad {
			ps = append(ps, p)
		}
	}
	if t := h.Throttle; t != nil {
		add(t.UnderVoltage, wire.ProblemUnderVoltage)
		add(t.Throttled, wire.ProblemThrottled)
		add(t.FreqCapped, wire.ProblemFreqCapped)
		add(t.SoftTempLimit, wire.ProblemSoftTempLimit)
	}
	add(h.TempC != nil && *h.TempC >= c.opts.HotC, wire.ProblemHot)
	add(h.RootReadOnly != nil && *h.RootReadOnly, wire.ProblemReadOnlyRoot)
	add(h.ClockSynced != nil && !*h.ClockSynced, wire.ProblemClockUnsynced)
	for _, d := range h.Disks {
		add(d.UsedPercent > c.opts.DiskFullPercent, wire.ProblemDiskFull)
	}
	add(h.Docker == DockerUnreachable || (h.Docker == DockerAbsent && c.opts.ExpectDocker), wire.ProblemDockerDown)
	slices.Sort(ps)
	return slices.Compact(ps)
}

// path returns p under the root.
func (c *Collector) path(p string) string { return filepath.Join(c.opts.Root, p) }

// readFile reads a file under the root; a missing file is ErrAbsent.
func (c *Collector) readFile(p string) ([]byte, error) {
	b, err := os.ReadFile(c.path(p))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", p, ErrAbsent)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return b, nil
}

// slowResult caches the outcome of a costly probe for SlowEvery.
type slowResult[T any] struct {
	at  time.Time
	ok  bool // at is set
	v   T
	err error
}

func (s *slowResult[T]) get(now time.Time, every time.Duration, fn func() (T, error)) (T, error) {
	if s.ok && now.Sub(s.at) < every && now.Sub(s.at) >= 0 {
		return s.v, s.err
	}
	s.v, s.err = fn()
	s.at, s.ok = now, true
	return s.v, s.err
}

// execProgram runs name (found on PATH or in the usual Pi places) without
// a shell.
func execProgram(ctx context.Context, name string, args ...string) ([]byte, error) {
	bin, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/bin", "/opt/vc/bin"} {
			if _, serr := os.Stat(filepath.Join(dir, name)); serr == nil {
				bin, err = filepath.Join(dir, name), nil
				break
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s not installed: %w", name, ErrAbsent)
	}
	out, err := exec.CommandContext(ctx, bin, args...).Output()
	if err != nil {
		return out, fmt.Errorf("run %s: %w", name, err)
	}
	return out, nil
}
