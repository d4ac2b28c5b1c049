package health

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pifleet/pifleet/internal/wire"
)

// probeLoad reads /proc/loadavg.
func (c *Collector) probeLoad(_ context.Context, h *wire.Health) error {
	b, err := c.readFile("proc/loadavg")
	if err != nil {
		return err
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return fmt.Errorf("proc/loadavg: %q: want three load averages", strings.TrimSpace(string(b)))
	}
	var v [3]float64
	for i := range v {
		if v[i], err = strconv.ParseFloat(f[i], 64); err != nil {
			return fmt.Errorf("proc/loadavg: field %d %q: %w", i+1, f[i], err)
		}
	}
	h.Load1, h.Load5, h.Load15 = &v[0], &v[1], &v[2]
	return nil
}

// probeMeminfo reads memory and swap from /proc/meminfo (kB).
func (c *Collector) probeMeminfo(_ context.Context, h *wire.Health) error {
	b, err := c.readFile("proc/meminfo")
	if err != nil {
		return err
	}
	want := map[string]**uint64{
		"MemTotal": &h.MemTotalB, "MemAvailable": &h.MemAvailB,
		"SwapTotal": &h.SwapTotalB, "SwapFree": &h.SwapFreeB,
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, rest, ok := strings.Cut(sc.Text(), ":")
		dst, wanted := want[k]
		if !ok || !wanted {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return fmt.Errorf("proc/meminfo: %s has no value", k)
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return fmt.Errorf("proc/meminfo: %s %q: %w", k, f[0], err)
		}
		if len(f) > 1 && f[1] == "kB" {
			n *= 1024
		}
		*dst = &n
	}
	if h.MemTotalB == nil {
		return fmt.Errorf("proc/meminfo: no MemTotal line")
	}
	return nil
}

// probeUptime reads /proc/uptime.
func (c *Collector) probeUptime(_ context.Context, h *wire.Health) error {
	b, err := c.readFile("proc/uptime")
	if err != nil {
		return err
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return fmt.Errorf("proc/uptime is empty")
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil || v < 0 {
		return fmt.Errorf("proc/uptime: %q is not seconds", f[0])
	}
	h.UptimeS = &v
	return nil
}

// mount is one line of /proc/mounts.
type mount struct {
	Device, Point, Type string
	Options             []string
}

func (m mount) readOnly() bool {
	for _, o := range m.Options {
		if o == "ro" {
			return true
		}
	}
	return false
}

// parseMounts parses /proc/mounts (octal escapes such as \040 unescaped).
func parseMounts(b []byte) []mount {
	var out []mount
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 {
			continue
		}
		out = append(out, mount{Device: unescape(f[0]), Point: unescape(f[1]), Type: f[2], Options: strings.Split(f[3], ",")})
	}
	return out
}

func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountOf returns the mount holding path: the longest mount point that is
// a prefix of it, the last such line winning (over-mounts).
func mountOf(ms []mount, path string) (mount, bool) {
	var best mount
	found := false
	for _, m := range ms {
		if !within(path, m.Point) {
			continue
		}
		if !found || len(m.Point) >= len(best.Point) {
			best, found = m, true
		}
	}
	return best, found
}

func within(path, point string) bool {
	if point == "/" {
		return strings.HasPrefix(path, "/")
	}
	return path == point || strings.HasPrefix(path, point+"/")
}

// readMounts parses /proc/mounts once per Collect.
func (c *Collector) readMounts() ([]mount, error) {
	if c.mountsCycle == c.cycle {
		return c.mounts, nil
	}
	b, err := c.readFile("proc/mounts")
	if err != nil {
		return nil, err
	}
	c.mounts, c.mountsCycle = parseMounts(b), c.cycle
	return c.mounts, nil
}

// probeMounts reports whether / is mounted read-only (an SD card failing:
// the kernel remounts it ro on I/O errors while df still shows space).
func (c *Collector) probeMounts(_ context.Context, h *wire.Health) error {
	ms, err := c.readMounts()
	if err != nil {
		return err
	}
	root, ok := mountOf(ms, "/")
	if !ok {
		return fmt.Errorf("proc/mounts: no line for /")
	}
	ro := root.readOnly()
	h.RootReadOnly = &ro
	return nil
}

// probeDisks measures / and the data directory.
func (c *Collector) probeDisks(_ context.Context, h *wire.Health) error {
	paths := []string{"/"}
	if d := filepath.Clean(c.opts.DataDir); c.opts.DataDir != "" && d != "/" {
		paths = append(paths, d)
	}
	ms, _ := c.readMounts() // read-only flags are a bonus here
	var errs []error
	for _, p := range paths {
		st, err := c.opts.Statfs(c.path(p))
		if err != nil {
			errs = append(errs, fmt.Errorf("statfs %s: %w", p, err))
			continue
		}
		d := wire.Disk{Path: p, TotalB: st.Total, FreeB: st.Avail}
		// Like df: used against what users can get (the root reserve
		// does not count as free).
		if used := st.Total - min(st.Free, st.Total); used+st.Avail > 0 {
			d.UsedPercent = round(100*float64(used)/float64(used+st.Avail), 1)
		}
		if m, ok := mountOf(ms, p); ok {
			d.ReadOnly = m.readOnly()
		}
		h.Disks = append(h.Disks, d)
	}
	if len(errs) > 0 {
		return fmt.Errorf("disk: %v", errs)
	}
	return nil
}

// probeClock reports whether the clock is synchronised. A clock before
// 2020 is never synchronised (a Pi without RTC boots in 1970 and the
// kernel may not know yet).
func (c *Collector) probeClock(_ context.Context, h *wire.Health) error {
	synced, err := c.opts.ClockSynced()
	if err != nil {
		return fmt.Errorf("clock status: %w", err)
	}
	if c.opts.Now().Year() < 2020 {
		synced = false
	}
	h.ClockSynced = &synced
	return nil
}

type modelInfo struct{ model, revision string }

// probeModel reads the board model (device-tree, or the cpuinfo Model
// line) and revision code (cpuinfo). It does not change: cached once found.
func (c *Collector) probeModel(_ context.Context, h *wire.Health) error {
	if c.model == nil {
		mi, err := c.readModel()
		if err != nil {
			return err
		}
		c.model = &mi
	}
	h.Model, h.Revision = c.model.model, c.model.revision
	return nil
}

func (c *Collector) readModel() (modelInfo, error) {
	var mi modelInfo
	if b, err := c.readFile("proc/device-tree/model"); err == nil {
		mi.model = strings.TrimSpace(strings.TrimRight(string(b), "\x00"))
	}
	if b, err := c.readFile("proc/cpuinfo"); err == nil {
		cm, rev := parseCPUInfo(b)
		if mi.model == "" {
			mi.model = cm
		}
		mi.revision = rev
	}
	if mi.model == "" && mi.revision != "" {
		mi.model = boardName(mi.revision)
	}
	if mi.model == "" && mi.revision == "" {
		return mi, fmt.Errorf("no device-tree model nor cpuinfo Revision: %w", ErrAbsent)
	}
	return mi, nil
}

// parseCPUInfo returns the Model and Revision lines of /proc/cpuinfo.
func parseCPUInfo(b []byte) (model, revision string) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "Model":
			model = strings.TrimSpace(v)
		case "Revision":
			revision = strings.TrimSpace(v)
		}
	}
	return model, revision
}

// boardName decodes a new-style revision code's board type, for systems
// without a device tree in /proc (some containers). Only the type: the
// device-tree model, when there, is more precise.
func boardName(rev string) string {
	n, err := strconv.ParseUint(rev, 16, 32)
	if err != nil || n&(1<<23) == 0 {
		return ""
	}
	names := map[uint64]string{
		0x04: "Raspberry Pi 2 Model B", 0x08: "Raspberry Pi 3 Model B", 0x09: "Raspberry Pi Zero",
		0x0a: "Raspberry Pi Compute Module 3", 0x0c: "Raspberry Pi Zero W", 0x0d: "Raspberry Pi 3 Model B+",
		0x0e: "Raspberry Pi 3 Model A+", 0x10: "Raspberry Pi Compute Module 3+", 0x11: "Raspberry Pi 4 Model B",
		0x12: "Raspberry Pi Zero 2 W", 0x13: "Raspberry Pi 400", 0x14: "Raspberry Pi Compute Module 4",
		0x17: "Raspberry Pi 5",
	}
	return names[(n>>4)&0xff]
}

func readAbs(p string) ([]byte, error) { return os.ReadFile(p) }

func round(v float64, digits int) float64 {
	p := math.Pow10(digits)
	return math.Round(v*p) / p
}
