package fleet

// How the hub writes counts, problems and orders names for people, in one
// place for every front end (the chat engine, the alert policy, the
// summary's order): 10,000 with its thousands separator, "under-voltage"
// for under_voltage, and pi-4 before pi-10.

import (
	"strconv"
	"strings"

	"github.com/pifleet/pifleet/internal/wire"
)

// Thousands writes n with thousands separators: 9,874.
func Thousands(n int) string {
	if n < 0 {
		return "-" + Thousands(-n)
	}
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// NaturalCompare orders a and b as a person would: runs of digits by
// their value, so room-4 comes before room-10 and pi-9 before pi-10; the
// rest byte by byte. Equal values with different spellings (pi-01, pi-1)
// fall back to a plain comparison, so the order is total.
func NaturalCompare(a, b string) int {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if isDigit(a[i]) && isDigit(b[j]) {
			ei, ej := digitsEnd(a, i), digitsEnd(b, j)
			da, db := strings.TrimLeft(a[i:ei], "0"), strings.TrimLeft(b[j:ej], "0")
			if len(da) != len(db) {
				return cmpInt(len(da), len(db))
			}
			if c := strings.Compare(da, db); c != 0 {
				return c
			}
			i, j = ei, ej
			continue
		}
		if a[i] != b[j] {
			return cmpInt(int(a[i]), int(b[j]))
		}
		i++
		j++
	}
	if c := cmpInt(len(a)-i, len(b)-j); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func digitsEnd(s string, i int) int {
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// problemWords are the problems in words a person reads on a phone.
var problemWords = map[wire.Problem]string{
	wire.ProblemUnderVoltage:  "under-voltage",
	wire.ProblemThrottled:     "throttled",
	wire.ProblemFreqCapped:    "CPU frequency capped",
	wire.ProblemSoftTempLimit: "at its soft temperature limit",
	wire.ProblemHot:           "running hot",
	wire.ProblemReadOnlyRoot:  "root file system read-only",
	wire.ProblemClockUnsynced: "clock not synchronised",
	wire.ProblemDiskFull:      "disk nearly full",
	wire.ProblemGettyDown:     "serial console login not running",
	wire.ProblemConsoleConfig: "serial console misconfigured",
	wire.ProblemDockerDown:    "Docker unreachable",
}

// ProblemWords is a problem in plain words (an unknown one with its
// underscores as spaces).
func ProblemWords(p wire.Problem) string {
	if w, ok := problemWords[p]; ok {
		return w
	}
	return strings.ReplaceAll(string(p), "_", " ")
}

// ProblemsInWords is a comma-separated list of problem codes (as alerts
// carry them: "under_voltage, hot") in plain words.
func ProblemsInWords(codes string) string {
	var ws []string
	for _, p := range strings.Split(codes, ",") {
		if p = strings.TrimSpace(p); p != "" {
			ws = append(ws, ProblemWords(wire.Problem(p)))
		}
	}
	return strings.Join(ws, ", ")
}
