package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pifleet/pifleet/internal/wire"
)

// DefaultIssuePath is where the banner goes: agetty prints every *.issue
// file of /run/issue.d above "login:" (util-linux ≥ 2.35). /run is a tmpfs,
// so rewriting it costs the SD card nothing.
const DefaultIssuePath = "/run/issue.d/pifleet.issue"

// Banner markers. pifleet console --find-ip looks for them; keep them in
// step with hub/internal/console (ParseBanner).
const (
	BannerBegin = "=== pifleet "
	BannerEnd   = "=== end pifleet ==="
)

// BannerInfo is what the banner shows.
type BannerInfo struct {
	Hostname     string
	Addresses    []wire.Address // only usable ones are shown
	HubConnected bool
	Problems     []wire.Problem
}

// Banner keeps the agetty issue snippet up to date.
type Banner struct {
	// Path of the issue snippet; DefaultIssuePath when empty.
	Path string
	// Reload makes waiting agetty prompts reprint the issue; ReloadAgetty
	// when nil. Tests inject a fake or the real thing.
	Reload func(ctx context.Context) error
	Logger *slog.Logger

	mu     sync.Mutex
	last   []byte
	loaded bool
}

// RenderBanner returns the banner text for info. Only values that pass
// sanitising reach it: agetty interprets backslash escapes in issue files,
// and a banner must never carry terminal control bytes.
func RenderBanner(info BannerInfo) []byte {
	var b bytes.Buffer
	host := sanitize(info.Hostname)
	if host == "" {
		host = "?"
	}
	fmt.Fprintf(&b, "\n%s%s ===\n", BannerBegin, host)
	byIface := map[string][]string{}
	var ifaces []string
	for _, a := range sortedUsable(info.Addresses) {
		p, err := netip.ParsePrefix(fmt.Sprintf("%s/%d", a.Address, a.Prefix))
		if err != nil {
			continue
		}
		name := sanitize(a.Interface)
		if name == "" {
			name = "?"
		}
		if _, ok := byIface[name]; !ok {
			ifaces = append(ifaces, name)
		}
		byIface[name] = append(byIface[name], p.String())
	}
	if len(ifaces) == 0 {
		b.WriteString("ip     none (no usable address)\n")
	}
	for _, n := range ifaces {
		fmt.Fprintf(&b, "ip     %-8s %s\n", n, strings.Join(byIface[n], " "))
	}
	if info.HubConnected {
		b.WriteString("hub    connected\n")
	} else {
		b.WriteString("hub    NOT connected\n")
	}
	var probs []string
	for _, p := range info.Problems {
		if s := sanitize(string(p)); s != "" {
			probs = append(probs, s)
		}
	}
	sort.Strings(probs)
	if len(probs) == 0 {
		b.WriteString("health ok\n")
	} else {
		fmt.Fprintf(&b, "health %s\n", strings.Join(probs, " "))
	}
	b.WriteString(BannerEnd + "\n\n")
	return b.Bytes()
}

// sortedUsable returns the usable addresses, primary first, then by
// interface, IPv4 before IPv6, address.
func sortedUsable(in []wire.Address) []wire.Address {
	var out []wire.Address
	for _, a := range in {
		if a.Usable() {
			out = append(out, a)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Primary != b.Primary {
			return a.Primary
		}
		if a.Interface != b.Interface {
			return a.Interface < b.Interface
		}
		if a.Family != b.Family {
			return a.Family == wire.IPv4
		}
		return a.Address < b.Address
	})
	return out
}

// sanitize keeps the characters of host names, interface names and
// problem codes and drops the rest (backslashes, escapes, spaces).
func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-:@+", r) {
			b.WriteRune(r)
		}
		if b.Len() >= 64 {
			break
		}
	}
	return b.String()
}

func (b *Banner) path() string {
	if b.Path == "" {
		return DefaultIssuePath
	}
	return b.Path
}

func (b *Banner) logger() *slog.Logger {
	if b.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return b.Logger
}

// Update writes the banner for info when its text differs from what the
// file holds, then asks agetty to reprint. It reports whether the file
// changed. The write is atomic (temp file in the same directory, then
// rename) so agetty never prints half a banner; an unchanged banner is
// not written at all.
func (b *Banner) Update(ctx context.Context, info BannerInfo) (changed bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	text := RenderBanner(info)
	p := b.path()
	if !b.loaded {
		b.last, _ = os.ReadFile(p) // a banner from the previous run may be current
		b.loaded = true
	}
	if bytes.Equal(text, b.last) {
		return false, nil
	}
	if err := writeAtomic(p, text); err != nil {
		return false, err
	}
	b.last = text
	reload := b.Reload
	if reload == nil {
		reload = ReloadAgetty
	}
	if err := reload(ctx); err != nil {
		return true, fmt.Errorf("banner written, but reload agetty: %w", err)
	}
	b.logger().Debug("console banner updated", "path", p)
	return true, nil
}

func writeAtomic(p string, data []byte) error {
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	// The temp name must not end in .issue: agetty would print it.
	f, err := os.CreateTemp(dir, "."+filepath.Base(p)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write banner: %w", err)
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr, os.Chmod(tmp, 0o644)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rename %s to %s: %w", tmp, p, err)
	}
	return nil
}

// agettyPaths are tried when agetty is not on PATH (the agent's service
// PATH may lack sbin).
var agettyPaths = []string{"/usr/sbin/agetty", "/sbin/agetty"}

// ReloadAgetty runs `agetty --reload`, which makes every waiting agetty
// reprint its issue and prompt. A system without agetty is fine: nil.
func ReloadAgetty(ctx context.Context) error {
	path, err := exec.LookPath("agetty")
	if err != nil {
		path = ""
		for _, p := range agettyPaths {
			if _, serr := os.Stat(p); serr == nil {
				path = p
				break
			}
		}
	}
	if path == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, path, "--reload").CombinedOutput(); err != nil {
		return fmt.Errorf("%s --reload: %w: %s", path, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Remove deletes the banner (on a clean agent shutdown, so a stale banner
// does not outlive the agent) and asks agetty to reprint without it. A
// missing file is fine.
func (b *Banner) Remove(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	err := os.Remove(b.path())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove banner: %w", err)
	}
	b.last, b.loaded = nil, true
	reload := b.Reload
	if reload == nil {
		reload = ReloadAgetty
	}
	return reload(ctx)
}
