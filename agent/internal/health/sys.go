package health

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"periph.io/x/conn/v3/physic"

	"github.com/pifleet/pifleet/internal/wire"
)

// Sources of the throttle word, as reported in Throttle.Source.
const (
	SourceHwmon    = "hwmon"
	SourceFirmware = "firmware-sysfs"
	SourceVcgencmd = "vcgencmd"
)

// probeThermal reads the SoC temperature from the thermal zone whose type
// is one of ThermalTypes (millidegrees Celsius).
func (c *Collector) probeThermal(_ context.Context, h *wire.Health) error {
	b, zone, err := c.readFound(&c.thermalDir, c.findThermalZone, "temp")
	if err != nil {
		return err
	}
	milli, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return fmt.Errorf("%s/temp: %q is not millidegrees: %w", zone, strings.TrimSpace(string(b)), err)
	}
	t := physic.ZeroCelsius + physic.Temperature(milli)*physic.MilliCelsius
	c.setTemp(h, t)
	return nil
}

func (c *Collector) setTemp(h *wire.Health, t physic.Temperature) {
	v := round(t.Celsius(), 1)
	h.TempC = &v
}

// findThermalZone returns the sysfs dir (relative to root) of the SoC zone.
func (c *Collector) findThermalZone() (string, error) {
	types, _ := filepath.Glob(c.path("sys/class/thermal/thermal_zone*/type"))
	found := map[string]string{}
	sort.Strings(types)
	for _, p := range types {
		b, err := readAbs(p)
		if err != nil {
			continue
		}
		typ := strings.TrimSpace(string(b))
		if _, seen := found[typ]; !seen {
			rel, _ := filepath.Rel(c.opts.Root, filepath.Dir(p))
			found[typ] = rel
		}
	}
	for _, want := range c.opts.ThermalTypes {
		if z, ok := found[want]; ok {
			return z, nil
		}
	}
	return "", fmt.Errorf("no thermal zone of type %s: %w", strings.Join(c.opts.ThermalTypes, "/"), ErrAbsent)
}

// probeCPUFreq reads cpu0's current frequency (kHz in sysfs).
func (c *Collector) probeCPUFreq(_ context.Context, h *wire.Health) error {
	const p = "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq"
	b, err := c.readFile(p)
	if err != nil {
		return err
	}
	khz, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || khz < 0 {
		return fmt.Errorf("%s: %q is not kHz", p, strings.TrimSpace(string(b)))
	}
	f := physic.Frequency(khz) * physic.KiloHertz
	v := round(float64(f)/float64(physic.MegaHertz), 1)
	h.CPUFreqMHz = &v
	return nil
}

// probeThrottle reads the firmware's get_throttled word. vcgencmd gives
// all bits but costs a fork, so its answer is reused for SlowEvery; the
// firmware sysfs node gives all bits too but is deprecated (the kernel
// prints a warning with a backtrace the first time it is read), so it is
// read only without vcgencmd; hwmon rpi_volt gives only under-voltage but
// is cheap and fresh (the kernel polls every 2 s), so it is merged in.
func (c *Collector) probeThrottle(ctx context.Context, h *wire.Health) error {
	alarm, hwErr := c.hwmonUnderVoltage()
	raw, src, err := c.vcgencmdThrottled(ctx)
	if err != nil {
		fw, fwErr := c.firmwareThrottled()
		if fwErr == nil {
			raw, src, err = fw, SourceFirmware, nil
		} else {
			err = worst(err, fwErr)
		}
	}
	switch {
	case err == nil && hwErr == nil:
		if alarm {
			raw |= 1 | 1<<16
		}
		src += "+" + SourceHwmon
	case err == nil:
	case hwErr == nil:
		raw, src = 0, SourceHwmon
		if alarm {
			// The driver clears the alarm when the voltage is back, so
			// an alarm means under-voltage now (and since boot).
			raw = 1 | 1<<16
		}
	default:
		if e := worst(err, hwErr); !isAbsent(e) {
			return e
		}
		return fmt.Errorf("no get_throttled source (vcgencmd, firmware sysfs, hwmon rpi_volt): %w", ErrAbsent)
	}
	t := wire.DecodeThrottle(raw)
	t.Source = src
	h.Throttle = &t
	return nil
}

// worst returns the failures among errs (joined), or the first absence
// when nothing failed: a failure outranks an absence.
func worst(errs ...error) error {
	var failed []error
	var absent error
	for _, e := range errs {
		switch {
		case e == nil:
		case isAbsent(e):
			if absent == nil {
				absent = e
			}
		default:
			failed = append(failed, e)
		}
	}
	if len(failed) > 0 {
		return errors.Join(failed...)
	}
	return absent
}

func isAbsent(err error) bool { return errors.Is(err, ErrAbsent) }

// vcgencmdThrottled runs `vcgencmd get_throttled` (reused for SlowEvery).
func (c *Collector) vcgencmdThrottled(ctx context.Context) (uint32, string, error) {
	v, err := c.vcgencmd.get(c.opts.Now(), c.opts.SlowEvery, func() (uint32, error) {
		out, err := c.opts.Exec(ctx, "vcgencmd", "get_throttled")
		if err != nil {
			return 0, err
		}
		return parseVcgencmdThrottled(out)
	})
	return v, SourceVcgencmd, err
}

// parseVcgencmdThrottled parses "throttled=0x50005".
func parseVcgencmdThrottled(out []byte) (uint32, error) {
	s := strings.TrimSpace(string(out))
	v, ok := strings.CutPrefix(s, "throttled=")
	if !ok {
		return 0, fmt.Errorf("vcgencmd get_throttled: unexpected output %q", s)
	}
	n, err := strconv.ParseUint(strings.TrimPrefix(v, "0x"), 16, 32)
	if err != nil {
		return 0, fmt.Errorf("vcgencmd get_throttled: %q is not hex: %w", v, err)
	}
	return uint32(n), nil
}

// firmwareThrottled reads the downstream firmware node (hex, no 0x).
func (c *Collector) firmwareThrottled() (uint32, error) {
	const p = "sys/devices/platform/soc/soc:firmware/get_throttled"
	b, err := c.readFile(p)
	if err != nil {
		return 0, err
	}
	s := strings.TrimPrefix(strings.TrimSpace(string(b)), "0x")
	n, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not hex: %w", p, s, err)
	}
	return uint32(n), nil
}

// hwmonUnderVoltage reads in0_lcrit_alarm of the hwmon device named
// rpi_volt (hwmon numbers are not stable: find it by name).
func (c *Collector) hwmonUnderVoltage() (bool, error) {
	b, dir, err := c.readFound(&c.hwmonDir, func() (string, error) { return c.findHwmon("rpi_volt") }, "in0_lcrit_alarm")
	if err != nil {
		return false, err
	}
	switch strings.TrimSpace(string(b)) {
	case "0":
		return false, nil
	case "1":
		return true, nil
	}
	return false, fmt.Errorf("%s/in0_lcrit_alarm: %q is not 0 or 1", dir, strings.TrimSpace(string(b)))
}

// readFound reads file in the directory *dir, finding the directory with
// find first (and again when the cached one has gone).
func (c *Collector) readFound(dir *string, find func() (string, error), file string) ([]byte, string, error) {
	if *dir != "" {
		b, err := c.readFile(filepath.Join(*dir, file))
		if !isAbsent(err) {
			return b, *dir, err
		}
		*dir = ""
	}
	d, err := find()
	if err != nil {
		return nil, "", err
	}
	b, err := c.readFile(filepath.Join(d, file))
	if err == nil {
		*dir = d
	}
	return b, d, err
}

func (c *Collector) findHwmon(name string) (string, error) {
	names, _ := filepath.Glob(c.path("sys/class/hwmon/hwmon*/name"))
	sort.Strings(names)
	for _, p := range names {
		if b, err := readAbs(p); err == nil && strings.TrimSpace(string(b)) == name {
			rel, _ := filepath.Rel(c.opts.Root, filepath.Dir(p))
			return rel, nil
		}
	}
	return "", fmt.Errorf("no hwmon device named %s: %w", name, ErrAbsent)
}
