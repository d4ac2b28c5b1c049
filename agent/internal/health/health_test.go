package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pifleet/pifleet/internal/testenv/golden"
	"github.com/pifleet/pifleet/internal/wire"
)

// files maps a path under the fake root to a testdata file, or to literal
// content when the value starts with "=".
type files map[string]string

func mkroot(t testing.TB, f files) string {
	t.Helper()
	root := t.TempDir()
	for dst, src := range f {
		var b []byte
		if c, ok := strings.CutPrefix(src, "="); ok {
			b = []byte(c)
		} else {
			var err error
			if b, err = os.ReadFile(filepath.Join("testdata", src)); err != nil {
				t.Fatalf("fixture: %v", err)
			}
		}
		p := filepath.Join(root, dst)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// pi3 is a healthy Pi 3 B on Raspbian stretch, with both hwmon devices.
func pi3() files {
	return files{
		"proc/cpuinfo":                                         "proc/cpuinfo.pi3b-armv7.raspbian-stretch",
		"proc/device-tree/model":                               "proc/device-tree/model",
		"proc/mounts":                                          "proc/mounts.rpi-raspbian-buster",
		"proc/loadavg":                                         "proc/loadavg",
		"proc/meminfo":                                         "proc/meminfo",
		"proc/uptime":                                          "proc/uptime",
		"sys/class/thermal/thermal_zone0/type":                 "sys/class/thermal/thermal_zone0/type",
		"sys/class/thermal/thermal_zone0/temp":                 "sys/class/thermal/thermal_zone0/temp",
		"sys/class/hwmon/hwmon0/name":                          "sys/class/hwmon/hwmon0/name",
		"sys/class/hwmon/hwmon1/name":                          "sys/class/hwmon/hwmon1/name",
		"sys/class/hwmon/hwmon1/in0_lcrit_alarm":               "sys/class/hwmon/hwmon1/in0_lcrit_alarm",
		"sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq": "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq",
	}
}

func with(base files, changes files) files {
	out := files{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range changes {
		if v == "" {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

// fakeExec answers vcgencmd from a fixture file; "" means not installed.
func fakeExec(t testing.TB, fixture string) func(context.Context, string, ...string) ([]byte, error) {
	return func(_ context.Context, name string, args ...string) ([]byte, error) {
		if name != "vcgencmd" || fixture == "" {
			return nil, fmt.Errorf("%s not installed: %w", name, ErrAbsent)
		}
		if strings.Join(args, " ") != "get_throttled" {
			t.Errorf("vcgencmd %v: want only get_throttled", args)
		}
		if fixture == "!fail" {
			return nil, errors.New("VCHI initialization failed")
		}
		return os.ReadFile(filepath.Join("testdata", fixture))
	}
}

var t2026 = time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC)

func opts(t testing.TB, root, vcgencmd string) Options {
	return Options{
		Root:        root,
		Exec:        fakeExec(t, vcgencmd),
		Statfs:      func(string) (FSStat, error) { return FSStat{Total: 30 << 30, Free: 20 << 30, Avail: 18 << 30}, nil },
		ClockSynced: func() (bool, error) { return true, nil },
		Docker:      func(context.Context) string { return DockerReachable },
		Now:         func() time.Time { return t2026 },
	}
}

func problems(h wire.Health) string {
	var s []string
	for _, p := range h.Problems {
		s = append(s, string(p))
	}
	return strings.Join(s, ",")
}

func probeStates(h wire.Health, state wire.ProbeState) string {
	var s []string
	for _, name := range []string{"thermal", "cpufreq", "throttle", "load", "meminfo", "mounts", "disk", "uptime", "clock", "docker", "model"} {
		if h.Probes[name] == state {
			s = append(s, name)
		}
	}
	return strings.Join(s, ",")
}

func TestCollectGolden(t *testing.T) {
	c := New(opts(t, mkroot(t, pi3()), "cmd/vcgencmd_get_throttled.0x0"))
	h := c.Collect(context.Background())
	got, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "golden", "pi3b-healthy.json"), append(got, '\n'))
}

func TestCollect(t *testing.T) {
	for _, tc := range []struct {
		name     string
		files    files
		vcgencmd string
		tweak    func(*Options)
		check    func(wire.Health) string // extra checks; "" if fine
		problems string
		absent   string
		failed   string
	}{
		{name: "healthy", files: pi3(), vcgencmd: "cmd/vcgencmd_get_throttled.0x0",
			check: func(h wire.Health) string {
				if *h.TempC != 46.7 || *h.CPUFreqMHz != 1200 || h.Throttle.Source != "vcgencmd+hwmon" ||
					h.Model != "Raspberry Pi 3 Model B Rev 1.2" || h.Revision != "a02082" || *h.RootReadOnly ||
					*h.MemTotalB != 948280*1024 || *h.SwapFreeB != 102396*1024 || *h.Load15 != 0.09 || *h.UptimeS != 3601.52 {
					return fmt.Sprintf("got %+v", h)
				}
				return ""
			}},
		{name: "under-voltage now, vcgencmd", files: pi3(), vcgencmd: "cmd/vcgencmd_get_throttled.0x50005",
			problems: "throttled,under_voltage"},
		{name: "under-voltage occurred only", files: pi3(), vcgencmd: "cmd/vcgencmd_get_throttled.0x50000",
			check: func(h wire.Health) string {
				if !h.Throttle.UnderVoltageOccurred || !h.Throttle.ThrottledOccurred || h.Throttle.UnderVoltage {
					return fmt.Sprintf("throttle %+v, want occurred bits only", *h.Throttle)
				}
				return ""
			}},
		{name: "soft temp limit", files: pi3(), vcgencmd: "cmd/vcgencmd_get_throttled.0x80008", problems: "soft_temp_limit"},
		{name: "hwmon alarm only (no vcgencmd)", vcgencmd: "",
			files: with(pi3(), files{"sys/class/hwmon/hwmon1/in0_lcrit_alarm": "sys/class/hwmon/hwmon1/in0_lcrit_alarm.undervoltage"}),
			check: func(h wire.Health) string {
				if h.Throttle.Source != SourceHwmon || h.Throttle.Raw != 0x10001 {
					return fmt.Sprintf("throttle %+v, want hwmon 0x10001", *h.Throttle)
				}
				return ""
			}, problems: "under_voltage"},
		{name: "hwmon alarm merged into vcgencmd", vcgencmd: "cmd/vcgencmd_get_throttled.0x0",
			files:    with(pi3(), files{"sys/class/hwmon/hwmon1/in0_lcrit_alarm": "sys/class/hwmon/hwmon1/in0_lcrit_alarm.undervoltage"}),
			problems: "under_voltage"},
		{name: "firmware sysfs, no vcgencmd, no hwmon", vcgencmd: "",
			files: with(pi3(), files{
				"sys/class/hwmon/hwmon1/name":                         "",
				"sys/class/hwmon/hwmon1/in0_lcrit_alarm":              "",
				"sys/devices/platform/soc/soc:firmware/get_throttled": "sys/devices/platform/soc/soc:firmware/get_throttled.0x50005",
			}),
			check: func(h wire.Health) string {
				if h.Throttle.Source != SourceFirmware || h.Throttle.Raw != 0x50005 {
					return fmt.Sprintf("throttle %+v, want firmware-sysfs 0x50005", *h.Throttle)
				}
				return ""
			}, problems: "throttled,under_voltage"},
		{name: "vcgencmd broken, hwmon still reports", vcgencmd: "!fail", files: pi3(),
			check: func(h wire.Health) string {
				if h.Throttle == nil || h.Throttle.Source != SourceHwmon {
					return fmt.Sprintf("throttle %+v, want from hwmon", h.Throttle)
				}
				return ""
			}},
		{name: "no throttle source at all", vcgencmd: "",
			files:  with(pi3(), files{"sys/class/hwmon/hwmon1/name": "", "sys/class/hwmon/hwmon1/in0_lcrit_alarm": ""}),
			absent: "throttle"},
		{name: "read-only root (bookworm device name)", vcgencmd: "cmd/vcgencmd_get_throttled.0x0",
			files:    with(pi3(), files{"proc/mounts": "proc/mounts.rpi-raspbian-buster.mmcblk0p2-root.ro.DERIVED"}),
			problems: "read_only_root",
			check: func(h wire.Health) string {
				if !h.Disks[0].ReadOnly {
					return fmt.Sprintf("disk / %+v, want read_only", h.Disks[0])
				}
				return ""
			}},
		{name: "read-only root (/dev/root)", vcgencmd: "cmd/vcgencmd_get_throttled.0x0",
			files: with(pi3(), files{"proc/mounts": "proc/mounts.rpi-raspbian-buster.ro.DERIVED"}), problems: "read_only_root"},
		{name: "legacy thermal zone type", vcgencmd: "cmd/vcgencmd_get_throttled.0x0",
			files: with(pi3(), files{"sys/class/thermal/thermal_zone0/type": "sys/class/thermal/thermal_zone0/type.legacy-downstream-4.x"}),
			check: func(h wire.Health) string {
				if h.TempC == nil || *h.TempC != 46.7 {
					return fmt.Sprintf("temp %v, want 46.7", h.TempC)
				}
				return ""
			}},
		{name: "thermal zone of another type is not the SoC", vcgencmd: "cmd/vcgencmd_get_throttled.0x0",
			files:  with(pi3(), files{"sys/class/thermal/thermal_zone0/type": "=x86_pkg_temp\n"}),
			absent: "thermal"},
		{name: "SoC zone found among others", vcgencmd: "cmd/vcgencmd_get_throttled.0x0",
			files: with(pi3(), files{
				"sys/class/thermal/thermal_zone0/type":  "=acpitz\n",
				"sys/class/thermal/thermal_zone0/temp":  "=20000\n",
				"sys/class/thermal/thermal_zone10/type": "sys/class/thermal/thermal_zone0/type",
				"sys/class/thermal/thermal_zone10/temp": "=81234\n",
			}),
			problems: "hot"},
		{name: "hot threshold configurable", vcgencmd: "cmd/vcgencmd_get_throttled.0x0", files: pi3(),
			tweak: func(o *Options) { o.HotC = 45 }, problems: "hot"},
		{name: "clock unsynced", vcgencmd: "cmd/vcgencmd_get_throttled.0x0", files: pi3(),
			tweak: func(o *Options) { o.ClockSynced = func() (bool, error) { return false, nil } }, problems: "clock_unsynced"},
		{name: "1970 clock is never synced", vcgencmd: "cmd/vcgencmd_get_throttled.0x0", files: pi3(),
			tweak: func(o *Options) { o.Now = func() time.Time { return time.Unix(42, 0) } }, problems: "clock_unsynced"},
		{name: "adjtimex fails", vcgencmd: "cmd/vcgencmd_get_throttled.0x0", files: pi3(),
			tweak: func(o *Options) { o.ClockSynced = func() (bool, error) { return false, errors.New("ENOSYS") } }, failed: "clock"},
		{name: "disk full", vcgencmd: "cmd/vcgencmd_get_throttled.0x0", files: pi3(),
			tweak: func(o *Options) {
				o.Statfs = func(string) (FSStat, error) { return FSStat{Total: 100, Free: 6, Avail: 1}, nil }
			}, problems: "disk_full"},
		{name: "data dir measured too", vcgencmd: "cmd/vcgencmd_get_throttled.0x0", files: pi3(),
			tweak: func(o *Options) {
				o.DataDir = "/var/lib/pifleet"
				o.Statfs = func(p string) (FSStat, error) {
					if strings.HasSuffix(p, "pifleet") {
						return FSStat{Total: 100, Free: 4, Avail: 4}, nil
					}
					return FSStat{Total: 100, Free: 50, Avail: 50}, nil
				}
			}, problems: "disk_full",
			check: func(h wire.Health) string {
				if len(h.Disks) != 2 || h.Disks[1].Path != "/var/lib/pifleet" || h.Disks[1].UsedPercent != 96 || h.Disks[0].UsedPercent != 50 {
					return fmt.Sprintf("disks %+v", h.Disks)
				}
				return ""
			}},
		{name: "statfs fails", vcgencmd: "cmd/vcgencmd_get_throttled.0x0", files: pi3(),
			tweak: func(o *Options) {
				o.Statfs = func(string) (FSStat, error) { return FSStat{}, errors.New("EIO") }
			}, failed: "disk"},
		{name: "docker unreachable", vcgencmd: "cmd/vcgencmd_get_throttled.0x0", files: pi3(),
			tweak: func(o *Options) { o.Docker = func(context.Context) string { return DockerUnreachable } }, problems: "docker_unreachable"},
		{name: "docker absent is fine", vcgencmd: "cmd/vcgencmd_get_throttled.0x0", files: pi3(),
			tweak: func(o *Options) { o.Docker = func(context.Context) string { return DockerAbsent } }, absent: "docker"},
		{name: "docker absent but expected", vcgencmd: "cmd/vcgencmd_get_throttled.0x0", files: pi3(),
			tweak: func(o *Options) {
				o.Docker = func(context.Context) string { return DockerAbsent }
				o.ExpectDocker = true
			}, problems: "docker_unreachable", absent: "docker"},
		{name: "garbage files fail alone", vcgencmd: "cmd/vcgencmd_get_throttled.0x0",
			files: with(pi3(), files{
				"sys/class/thermal/thermal_zone0/temp": "=hot\n",
				"proc/loadavg":                         "=1.0\n",
				"proc/meminfo":                         "=MemTotal: lots kB\n",
				"proc/uptime":                          "=\n",
				"sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq": "=\x00\x01\n",
				"sys/class/hwmon/hwmon1/in0_lcrit_alarm":               "=2\n",
			}),
			failed: "thermal,cpufreq,load,meminfo,uptime"},
		{name: "empty root: everything absent", files: files{"etc/hostname": "=x\n"},
			tweak:  func(o *Options) { o.Docker = func(context.Context) string { return DockerAbsent } },
			absent: "thermal,cpufreq,throttle,load,meminfo,mounts,uptime,docker,model"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := opts(t, mkroot(t, tc.files), tc.vcgencmd)
			if tc.tweak != nil {
				tc.tweak(&o)
			}
			h := New(o).Collect(context.Background())
			if got := problems(h); got != tc.problems {
				t.Errorf("problems: got %q, want %q", got, tc.problems)
			}
			if got := probeStates(h, wire.ProbeAbsent); got != tc.absent {
				t.Errorf("absent probes: got %q, want %q", got, tc.absent)
			}
			if got := probeStates(h, wire.ProbeFailed); got != tc.failed {
				t.Errorf("failed probes: got %q, want %q", got, tc.failed)
			}
			if tc.check != nil {
				if msg := tc.check(h); msg != "" {
					t.Error(msg)
				}
			}
		})
	}
}

func TestProbePanicDoesNotStopOthers(t *testing.T) {
	c := New(opts(t, mkroot(t, pi3()), "cmd/vcgencmd_get_throttled.0x0"))
	c.Register("exploding", func(context.Context, *wire.Health) error { panic("boom") })
	c.Register("console", func(_ context.Context, h *wire.Health) error {
		h.Console = &wire.Console{TTY: "ttyS0"}
		h.Problems = append(h.Problems, wire.ProblemGettyDown)
		return nil
	})
	h := c.Collect(context.Background())
	if h.Probes["exploding"] != wire.ProbeFailed || h.Probes["console"] != wire.ProbeOK || h.Probes["thermal"] != wire.ProbeOK {
		t.Errorf("probes: got %v, want exploding failed and the rest ok", h.Probes)
	}
	if got := problems(h); got != "getty_down" {
		t.Errorf("problems: got %q, want a registered probe's getty_down kept", got)
	}
	h = c.Collect(context.Background())
	if got := c.Failures()["exploding"]; got != 2 {
		t.Errorf("failure count: got %d, want 2", got)
	}
}

// TestSlowProbesReused checks that vcgencmd and the Docker ping run at most
// once per SlowEvery.
func TestSlowProbesReused(t *testing.T) {
	now := t2026
	var execs, pings int
	o := opts(t, mkroot(t, pi3()), "")
	inner := fakeExec(t, "cmd/vcgencmd_get_throttled.0x0")
	o.Exec = func(ctx context.Context, name string, args ...string) ([]byte, error) {
		execs++
		return inner(ctx, name, args...)
	}
	o.Docker = func(context.Context) string { pings++; return DockerReachable }
	o.Now = func() time.Time { return now }
	c := New(o)
	for i := 0; i < 10; i++ {
		c.Collect(context.Background())
		now = now.Add(5 * time.Second)
	}
	if execs != 2 || pings != 2 {
		t.Errorf("in 50 s with SlowEvery 30 s: got %d vcgencmd runs and %d docker pings, want 2 each", execs, pings)
	}
}

func TestModel(t *testing.T) {
	for _, tc := range []struct {
		cpuinfo, dtModel string
		model, revision  string
	}{
		{"proc/cpuinfo.pi3b-armv7.raspbian-stretch", "proc/device-tree/model", "Raspberry Pi 3 Model B Rev 1.2", "a02082"},
		{"proc/cpuinfo.pi3b-armv7.raspbian-stretch", "", "Raspberry Pi 3 Model B", "a02082"},
		{"proc/cpuinfo.pi3bplus-armv7.raspios-bullseye", "", "Raspberry Pi 3 Model B Plus Rev 1.3", "a020d3"},
		{"proc/cpuinfo.pi3bplus-aarch64.raspios-bookworm", "proc/device-tree/model.pi3bplus", "Raspberry Pi 3 Model B Plus Rev 1.3", "a020d3"},
		{"proc/cpuinfo.pi3bplus-aarch64.raspios-bookworm", "", "Raspberry Pi 3 Model B Plus Rev 1.3", "a020d3"},
		{"proc/cpuinfo.pi3bplus-aarch64.raspios-2021", "", "Raspberry Pi 3 Model B Plus Rev 1.3", "a020d3"},
		{"proc/cpuinfo.pi3b-aarch64.ubuntu-22.04", "proc/device-tree/model", "Raspberry Pi 3 Model B Rev 1.2", "a02082"},
		{"", "proc/device-tree/model.pi3bplus", "Raspberry Pi 3 Model B Plus Rev 1.3", ""},
	} {
		t.Run(tc.cpuinfo+"+"+tc.dtModel, func(t *testing.T) {
			f := files{}
			if tc.cpuinfo != "" {
				f["proc/cpuinfo"] = tc.cpuinfo
			}
			if tc.dtModel != "" {
				f["proc/device-tree/model"] = tc.dtModel
			}
			c := New(Options{Root: mkroot(t, f)})
			mi, err := c.readModel()
			if err != nil {
				t.Fatal(err)
			}
			if mi.model != tc.model || mi.revision != tc.revision {
				t.Errorf("got %q %q, want %q %q", mi.model, mi.revision, tc.model, tc.revision)
			}
		})
	}
}

func TestParseVcgencmd(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint32
		err  bool
	}{
		{"throttled=0x0\n", 0, false},
		{"throttled=0x50005\n", 0x50005, false},
		{"throttled=0x80008", 0x80008, false},
		{"VCHI initialization failed\n", 0, true},
		{"throttled=0xzz\n", 0, true},
	} {
		got, err := parseVcgencmdThrottled([]byte(tc.in))
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("parse %q: got %#x, %v; want %#x, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestMounts(t *testing.T) {
	ms := parseMounts([]byte("/dev/root / ext4 rw,noatime 0 0\n" +
		"/dev/sda1 /mnt/my\\040disk ext4 ro,relatime 0 0\n" +
		"tmpfs /run tmpfs rw 0 0\n" +
		"overlay / overlay ro 0 0\n" +
		"short line\n"))
	for _, tc := range []struct {
		path, point string
		ro          bool
	}{
		{"/", "/", true}, // the later over-mount wins
		{"/mnt/my disk/x", "/mnt/my disk", true},
		{"/run/lock", "/run", false},
		{"/runner", "/", true},
	} {
		m, ok := mountOf(ms, tc.path)
		if !ok || m.Point != tc.point || m.readOnly() != tc.ro {
			t.Errorf("mountOf(%q): got %+v, want %s ro=%v", tc.path, m, tc.point, tc.ro)
		}
	}
}

func TestCollectDeterministic(t *testing.T) {
	c := New(opts(t, mkroot(t, pi3()), "cmd/vcgencmd_get_throttled.0x50005"))
	a := c.Collect(context.Background())
	b := c.Collect(context.Background())
	if !reflect.DeepEqual(a, b) {
		t.Errorf("two collections of the same files differ:\n%+v\n%+v", a, b)
	}
}

// TestSensorMoves checks that a cached sensor location is looked up again
// when its file disappears (hwmon renumbered after a driver reload).
func TestSensorMoves(t *testing.T) {
	root := mkroot(t, with(pi3(), files{"sys/class/hwmon/hwmon1/in0_lcrit_alarm": "sys/class/hwmon/hwmon1/in0_lcrit_alarm.undervoltage"}))
	c := New(opts(t, root, ""))
	if got := problems(c.Collect(context.Background())); got != "under_voltage" {
		t.Fatalf("before the move: got %q, want under_voltage", got)
	}
	old, moved := filepath.Join(root, "sys/class/hwmon/hwmon1"), filepath.Join(root, "sys/class/hwmon/hwmon7")
	if err := os.Rename(old, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(moved, "in0_lcrit_alarm"), []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := c.Collect(context.Background())
	if got := problems(h); got != "" || h.Probes["throttle"] != wire.ProbeOK {
		t.Errorf("after the move: problems %q, throttle %s; want none and ok (found at hwmon7)", got, h.Probes["throttle"])
	}
}
