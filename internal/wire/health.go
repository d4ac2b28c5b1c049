package wire

// Health is the health block of a Status. Every probe is optional: a nil
// pointer or empty value means "not measured". Probes lists, per probe
// name, whether it ran ("ok"), found no hardware ("absent") or failed.
// Units are in the field names; the agent computes them with periph's
// physic types and puts plain numbers on the wire.
type Health struct {
	TempC        *float64  `json:"temp_c,omitempty"`
	CPUFreqMHz   *float64  `json:"cpu_freq_mhz,omitempty"`
	Throttle     *Throttle `json:"throttle,omitempty"`
	Load1        *float64  `json:"load1,omitempty"`
	Load5        *float64  `json:"load5,omitempty"`
	Load15       *float64  `json:"load15,omitempty"`
	MemTotalB    *uint64   `json:"mem_total_bytes,omitempty"`
	MemAvailB    *uint64   `json:"mem_available_bytes,omitempty"`
	SwapTotalB   *uint64   `json:"swap_total_bytes,omitempty"`
	SwapFreeB    *uint64   `json:"swap_free_bytes,omitempty"`
	Disks        []Disk    `json:"disks,omitempty"`
	RootReadOnly *bool     `json:"root_read_only,omitempty"`
	UptimeS      *float64  `json:"uptime_s,omitempty"`
	ClockSynced  *bool     `json:"clock_synced,omitempty"`
	Docker       string    `json:"docker,omitempty"` // "reachable", "unreachable", "absent"
	Model        string    `json:"model,omitempty"`
	Revision     string    `json:"revision,omitempty"`
	Console      *Console  `json:"console,omitempty"`

	Problems []Problem             `json:"problems,omitempty"`
	Probes   map[string]ProbeState `json:"probes,omitempty"`
}

// Throttle is the decoded get_throttled word of the Pi firmware.
type Throttle struct {
	Raw                   uint32 `json:"raw"`
	UnderVoltage          bool   `json:"under_voltage"`
	FreqCapped            bool   `json:"freq_capped"`
	Throttled             bool   `json:"throttled"`
	SoftTempLimit         bool   `json:"soft_temp_limit"`
	UnderVoltageOccurred  bool   `json:"under_voltage_occurred"`
	FreqCappedOccurred    bool   `json:"freq_capped_occurred"`
	ThrottledOccurred     bool   `json:"throttled_occurred"`
	SoftTempLimitOccurred bool   `json:"soft_temp_limit_occurred"`
	Source                string `json:"source,omitempty"` // hwmon, firmware-sysfs, vcgencmd
}

// DecodeThrottle decodes the get_throttled bits: 0..3 now, 16..19 since boot.
func DecodeThrottle(raw uint32) Throttle {
	return Throttle{
		Raw:                   raw,
		UnderVoltage:          raw&(1<<0) != 0,
		FreqCapped:            raw&(1<<1) != 0,
		Throttled:             raw&(1<<2) != 0,
		SoftTempLimit:         raw&(1<<3) != 0,
		UnderVoltageOccurred:  raw&(1<<16) != 0,
		FreqCappedOccurred:    raw&(1<<17) != 0,
		ThrottledOccurred:     raw&(1<<18) != 0,
		SoftTempLimitOccurred: raw&(1<<19) != 0,
	}
}

// Disk is the use of one filesystem.
type Disk struct {
	Path        string  `json:"path"`
	TotalB      uint64  `json:"total_bytes"`
	FreeB       uint64  `json:"free_bytes"`
	UsedPercent float64 `json:"used_percent"`
	ReadOnly    bool    `json:"read_only,omitempty"`
}

// Console is the state of the UART console login path.
type Console struct {
	TTY          string `json:"tty,omitempty"`           // ttyS0, ttyAMA0
	GettyActive  bool   `json:"getty_active"`            // serial-getty@<tty>.service active
	GettyState   string `json:"getty_state,omitempty"`   // systemd ActiveState
	InUse        bool   `json:"in_use"`                  // a login session on the console tty
	Repaired     bool   `json:"repaired,omitempty"`      // the agent restarted the getty
	ConfigIssues int    `json:"config_issues,omitempty"` // count of doctor FIX lines
}

// ProbeState says how a health probe fared.
type ProbeState string

// ProbeState values. Absent is not failed: a Pi without hwmon still reports
// everything else.
const (
	ProbeOK     ProbeState = "ok"
	ProbeAbsent ProbeState = "absent"
	ProbeFailed ProbeState = "failed"
)

// Problem is a short machine-readable code for a bad health flag.
type Problem string

// Problem codes. Add, never renumber or rename.
const (
	ProblemUnderVoltage  Problem = "under_voltage"
	ProblemThrottled     Problem = "throttled"
	ProblemFreqCapped    Problem = "freq_capped"
	ProblemSoftTempLimit Problem = "soft_temp_limit"
	ProblemHot           Problem = "hot"
	ProblemReadOnlyRoot  Problem = "read_only_root"
	ProblemClockUnsynced Problem = "clock_unsynced"
	ProblemDiskFull      Problem = "disk_full"
	ProblemGettyDown     Problem = "getty_down"
	ProblemConsoleConfig Problem = "console_config"
	ProblemDockerDown    Problem = "docker_unreachable"
)
