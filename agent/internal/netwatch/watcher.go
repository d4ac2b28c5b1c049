package netwatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/pifleet/pifleet/internal/wire"
)

// Options configure a Watcher. The zero value watches the current network
// namespace through netlink, falling back to polling every 10 s.
type Options struct {
	Logger *slog.Logger
	// Root is prepended to /sys and /proc paths (wireless detection, the
	// polling backend's route tables). Default "/".
	Root string
	// PollInterval is how often the polling fallback looks. Default 10 s.
	PollInterval time.Duration
	// Handle, if set, is used for snapshots instead of a handle in the
	// current namespace (tests pass netlink.NewHandleAt(ns)). The Watcher
	// does not close it.
	Handle *netlink.Handle
	// Namespace, if set, is where netlink subscriptions are made (tests).
	Namespace *netns.NsHandle
	// ForcePoll disables netlink entirely: stdlib snapshots and polling.
	ForcePoll bool
	// SSID returns the Wi-Fi network an interface is associated with. The
	// default runs `iwgetid -r IFACE` (no shell) when iwgetid is installed
	// and reports nothing otherwise. Called only for wireless interfaces
	// that are up.
	SSID func(ctx context.Context, iface string) (string, error)
	// Interfaces lists interfaces for the stdlib backend. Default net.Interfaces.
	Interfaces func() ([]net.Interface, error)
}

func (o *Options) ensureDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Root == "" {
		o.Root = "/"
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 10 * time.Second
	}
	if o.SSID == nil {
		o.SSID = iwgetidSSID()
	}
	if o.Interfaces == nil {
		o.Interfaces = net.Interfaces
	}
}

// Mode values say how a Watcher is watching.
const (
	ModeNetlink = "netlink"
	ModePoll    = "poll"
)

// Watcher implements daemon.AddrSource.
type Watcher struct {
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	handle   *netlink.Handle // nil until made; stays nil when it cannot be
	ownsH    bool
	handleOK bool // tried already

	mode atomic.Value // string

	// Between netlink events nothing we report can change, so Snapshot
	// reuses its last answer while watching through netlink (the daemon
	// asks on every health sample). dirty is set by every event.
	dirty    atomic.Bool
	cached   *snapshot
	cachedAt time.Time
}

type snapshot struct {
	ifs   []wire.Interface
	addrs []wire.Address
}

// maxCacheAge bounds how long a snapshot is reused without any event.
const maxCacheAge = time.Minute

// New returns a Watcher. It opens nothing until first used.
func New(opts Options) *Watcher {
	opts.ensureDefaults()
	w := &Watcher{opts: opts, log: opts.Logger.With("component", "netwatch")}
	w.mode.Store("")
	w.dirty.Store(true)
	return w
}

// Mode reports how Watch is watching: ModeNetlink, ModePoll, or "" before
// Watch started.
func (w *Watcher) Mode() string { return w.mode.Load().(string) }

// Close releases the netlink handle the Watcher made (not an injected one).
func (w *Watcher) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ownsH && w.handle != nil {
		w.handle.Close()
		w.handle = nil
	}
	return nil
}

// Snapshot returns every interface and address, sorted.
func (w *Watcher) Snapshot() ([]wire.Interface, []wire.Address, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	reuse := w.Mode() == ModeNetlink && w.cached != nil && time.Since(w.cachedAt) < maxCacheAge
	if !w.dirty.Swap(false) && reuse {
		return slices.Clone(w.cached.ifs), slices.Clone(w.cached.addrs), nil
	}
	links, addrs, def, err := w.snapshotLocked()
	if err != nil {
		w.dirty.Store(true)
		return nil, nil, err
	}
	ssid := func(name string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := w.opts.SSID(ctx, name)
		if err != nil {
			w.log.Debug("ssid", "interface", name, "err", err)
		}
		return s
	}
	ifs, as := assemble(links, addrs, def, ssid)
	w.cached, w.cachedAt = &snapshot{ifs, as}, time.Now()
	return slices.Clone(ifs), slices.Clone(as), nil
}

func (w *Watcher) snapshotLocked() ([]link, []addr, defaults, error) {
	if h := w.handleLocked(); h != nil {
		links, addrs, def, err := w.netlinkSnapshot(h)
		if err == nil || !w.ownsH {
			return links, addrs, def, err
		}
		w.log.Debug("netlink snapshot failed, using the standard library", "err", err)
	}
	return w.stdlibSnapshot()
}

func (w *Watcher) handleLocked() *netlink.Handle {
	if w.opts.Handle != nil {
		return w.opts.Handle
	}
	if w.opts.ForcePoll {
		return nil
	}
	if !w.handleOK {
		w.handleOK = true
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			w.log.Info("no netlink handle, snapshots use the standard library", "err", err)
			return nil
		}
		w.handle, w.ownsH = h, true
	}
	return w.handle
}

// Watch calls notify whenever an address, a link's state or a default
// route may have changed, until ctx ends. It uses netlink subscriptions and
// falls back to polling when they cannot be made or keep failing.
func (w *Watcher) Watch(ctx context.Context, notify func()) error {
	inner := notify
	notify = func() {
		w.dirty.Store(true)
		inner()
	}
	defer w.mode.Store("")
	if !w.opts.ForcePoll {
		err := w.watchNetlink(ctx, notify)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		w.log.Warn("netlink watch unavailable, polling instead", "err", err, "every", w.opts.PollInterval)
	}
	return w.watchPoll(ctx, notify)
}

// subscription holds the three netlink event channels of one attempt.
type subscription struct {
	done   chan struct{}
	addrs  chan netlink.AddrUpdate
	links  chan netlink.LinkUpdate
	routes chan netlink.RouteUpdate
}

func (w *Watcher) subscribe() (*subscription, error) {
	s := &subscription{
		done:   make(chan struct{}),
		addrs:  make(chan netlink.AddrUpdate, 64),
		links:  make(chan netlink.LinkUpdate, 64),
		routes: make(chan netlink.RouteUpdate, 64),
	}
	onErr := func(err error) { w.log.Debug("netlink event", "err", err) }
	err := netlink.AddrSubscribeWithOptions(s.addrs, s.done, netlink.AddrSubscribeOptions{Namespace: w.opts.Namespace, ErrorCallback: onErr})
	if err != nil {
		close(s.done)
		return nil, fmt.Errorf("subscribe to address events: %w", err)
	}
	err = netlink.LinkSubscribeWithOptions(s.links, s.done, netlink.LinkSubscribeOptions{Namespace: w.opts.Namespace, ErrorCallback: onErr})
	if err != nil {
		s.close()
		return nil, fmt.Errorf("subscribe to link events: %w", err)
	}
	err = netlink.RouteSubscribeWithOptions(s.routes, s.done, netlink.RouteSubscribeOptions{Namespace: w.opts.Namespace, ErrorCallback: onErr})
	if err != nil {
		s.close()
		return nil, fmt.Errorf("subscribe to route events: %w", err)
	}
	return s, nil
}

// close stops the subscription and drains its channels so netlink's
// reader goroutines, blocked on a send, can exit.
func (s *subscription) close() {
	close(s.done)
	go func() {
		for range s.addrs {
		}
	}()
	go func() {
		for range s.links {
		}
	}()
	go func() {
		for range s.routes {
		}
	}()
}

// linkKey is the part of a link we report; other link events (statistics,
// wireless scan results on Wi-Fi) are ignored.
type linkKey struct {
	name, mac string
	flags     net.Flags
	oper      netlink.LinkOperState
}

var errSubscriptionLost = errors.New("netlink subscription ended")

func (w *Watcher) watchNetlink(ctx context.Context, notify func()) error {
	failures := 0
	for {
		s, err := w.subscribe()
		if err != nil {
			return err
		}
		w.mode.Store(ModeNetlink)
		w.dirty.Store(true) // anything cached predates the subscription
		if failures > 0 {
			notify() // events may have been lost while resubscribing
		}
		err = w.pump(ctx, s, notify)
		s.close()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		failures++
		w.log.Warn("netlink subscription lost, resubscribing", "err", err, "failures", failures)
		if failures >= 5 {
			return fmt.Errorf("netlink subscription lost %d times: %w", failures, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func (w *Watcher) pump(ctx context.Context, s *subscription, notify func()) error {
	seen := map[int]linkKey{}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case _, ok := <-s.addrs:
			if !ok {
				return fmt.Errorf("address events: %w", errSubscriptionLost)
			}
			notify()
		case u, ok := <-s.links:
			if !ok {
				return fmt.Errorf("link events: %w", errSubscriptionLost)
			}
			if linkChanged(seen, u) {
				notify()
			}
		case u, ok := <-s.routes:
			if !ok {
				return fmt.Errorf("route events: %w", errSubscriptionLost)
			}
			if (u.Table == unix.RT_TABLE_MAIN || u.Table == 0) && isDefaultRoute(u.Route) {
				notify()
			}
		}
	}
}

// linkChanged records u in seen and reports whether it changed anything we
// report. The first event of a link counts as a change.
func linkChanged(seen map[int]linkKey, u netlink.LinkUpdate) bool {
	a := u.Link.Attrs()
	if u.Header.Type == unix.RTM_DELLINK {
		delete(seen, a.Index)
		return true
	}
	k := linkKey{name: a.Name, mac: a.HardwareAddr.String(), flags: a.Flags, oper: a.OperState}
	old, ok := seen[a.Index]
	seen[a.Index] = k
	return !ok || old != k
}

func (w *Watcher) watchPoll(ctx context.Context, notify func()) error {
	w.mode.Store(ModePoll)
	last := w.fingerprint()
	t := time.NewTicker(w.opts.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			if fp := w.fingerprint(); fp != last {
				last = fp
				notify()
			}
		}
	}
}

// fingerprint summarises a snapshot for the polling loop (SSID left out:
// polling it would exec iwgetid every interval).
func (w *Watcher) fingerprint() string {
	w.mu.Lock()
	links, addrs, def, err := w.snapshotLocked()
	w.mu.Unlock()
	if err != nil {
		return "error: " + err.Error()
	}
	ifs, as := assemble(links, addrs, def, nil)
	return fmt.Sprint(ifs, as)
}

func (w *Watcher) path(p string) string { return filepath.Join(w.opts.Root, p) }

// isWireless reports whether the kernel calls the interface wireless
// (/sys/class/net/IFACE/wireless, or a line in /proc/net/wireless).
func (w *Watcher) isWireless(name string) bool {
	if _, err := os.Stat(w.path(filepath.Join("sys/class/net", name, "wireless"))); err == nil {
		return true
	}
	b, err := os.ReadFile(w.path("proc/net/wireless"))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if n, _, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && n == name {
			return true
		}
	}
	return false
}

// lookProgram finds a program on PATH or in the sbin directories (not on
// a non-root user's PATH on Debian).
func lookProgram(name string) (string, bool) {
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, true
		}
	}
	return "", false
}

// iwgetidSSID returns an SSID function that runs `iwgetid -r IFACE`
// (wireless-tools) or else `iw dev IFACE link` (iw), whichever is
// installed, without a shell. With neither it reports no SSID.
func iwgetidSSID() func(context.Context, string) (string, error) {
	if bin, ok := lookProgram("iwgetid"); ok {
		return func(ctx context.Context, iface string) (string, error) {
			out, err := exec.CommandContext(ctx, bin, "-r", iface).Output()
			if err != nil {
				return "", fmt.Errorf("%s -r %s: %w", bin, iface, err)
			}
			return strings.TrimSpace(string(out)), nil
		}
	}
	if bin, ok := lookProgram("iw"); ok {
		return func(ctx context.Context, iface string) (string, error) {
			out, err := exec.CommandContext(ctx, bin, "dev", iface, "link").Output()
			if err != nil {
				return "", fmt.Errorf("%s dev %s link: %w", bin, iface, err)
			}
			return parseIwLink(out), nil
		}
	}
	return func(context.Context, string) (string, error) { return "", nil }
}

// parseIwLink returns the SSID line of `iw dev IFACE link` ("" when not
// connected).
func parseIwLink(out []byte) string {
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "SSID: "); ok {
			return v
		}
	}
	return ""
}
