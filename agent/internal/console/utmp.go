package console

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"
)

// UtmpPath is where glibc keeps the login records (/var/run is a symlink
// to /run on current systems; both work below a root).
const UtmpPath = "/var/run/utmp"

// utmp record types (bits/utmp.h).
const (
	utUserProcess = 7
)

// utmp384 is glibc's struct utmp where ut_session and ut_tv are 32-bit:
// x86_64 (__WORDSIZE_TIME64_COMPAT32) and every 32-bit ABI, armhf
// included. binary.Size(utmp384{}) == 384.
type utmp384 struct {
	Type    int16
	_       [2]byte
	Pid     int32
	Line    [32]byte
	ID      [4]byte
	User    [32]byte
	Host    [256]byte
	Exit    [2]int16
	Session int32
	Sec     int32
	Usec    int32
	Addr    [4]int32
	_       [20]byte
}

// utmp400 is glibc's struct utmp on 64-bit ABIs without the compat
// define — aarch64 among them — where ut_session is a long and ut_tv a
// struct timeval of two 64-bit fields. binary.Size(utmp400{}) == 400.
type utmp400 struct {
	Type    int16
	_       [2]byte
	Pid     int32
	Line    [32]byte
	ID      [4]byte
	User    [32]byte
	Host    [256]byte
	Exit    [2]int16
	Session int64
	Sec     int64
	Usec    int64
	Addr    [4]int32
	_       [20]byte
	_       [4]byte // struct padding to 8
}

// Login is a USER_PROCESS record of utmp.
type Login struct {
	User string
	Line string // tty, relative to /dev
	Host string
	PID  int
	Time time.Time
}

// nativeUtmpSize is the record size the local glibc writes for the
// architecture this binary was built for.
func nativeUtmpSize() int { return utmpSizeFor(runtime.GOARCH) }

func utmpSizeFor(goarch string) int {
	switch goarch {
	case "amd64", "386", "arm", "mips", "mipsle", "ppc":
		return 384
	}
	return 400 // arm64, riscv64, ppc64le, s390x, mips64…
}

// ReadLogins returns the live user logins of the utmp file below root. The
// record size is the native one, unless the file's size only fits the
// other layout (a 32-bit userland under a 64-bit agent or the reverse).
// Records of processes gone from root/proc are stale (a crashed login
// leaves them behind) and skipped when root/proc is a mounted procfs.
// A missing utmp file means no logins.
func ReadLogins(root string) ([]Login, error) {
	p := filepath.Join(root, UtmpPath)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	logins, err := ParseUtmp(b, nativeUtmpSize())
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", p, err)
	}
	return liveLogins(root, logins), nil
}

// ParseUtmp decodes utmp records (little-endian, as on x86 and ARM) of
// size 384 or 400 and returns the USER_PROCESS ones. When len(b) is not a
// multiple of size but of the other size, the other is used.
func ParseUtmp(b []byte, size int) ([]Login, error) {
	if size != 384 && size != 400 {
		return nil, fmt.Errorf("utmp record size %d: want 384 or 400", size)
	}
	other := 784 - size
	if len(b)%size != 0 && len(b)%other == 0 {
		size = other
	}
	if len(b)%size != 0 {
		return nil, fmt.Errorf("%d bytes is not a whole number of %d-byte utmp records", len(b), size)
	}
	var out []Login
	r := bytes.NewReader(b)
	for {
		l, ok, err := readUtmpRecord(r, size)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, l)
		}
	}
}

func readUtmpRecord(r io.Reader, size int) (Login, bool, error) {
	if size == 384 {
		var u utmp384
		if err := binary.Read(r, binary.LittleEndian, &u); err != nil {
			return Login{}, false, err
		}
		return makeLogin(u.Type, u.Pid, u.Line[:], u.User[:], u.Host[:], int64(uint32(u.Sec)), int64(u.Usec)) // glibc ≥ 2.40 reads tv_sec as unsigned
	}
	var u utmp400
	if err := binary.Read(r, binary.LittleEndian, &u); err != nil {
		return Login{}, false, err
	}
	return makeLogin(u.Type, u.Pid, u.Line[:], u.User[:], u.Host[:], u.Sec, u.Usec)
}

func makeLogin(typ int16, pid int32, line, user, host []byte, sec, usec int64) (Login, bool, error) {
	if typ != utUserProcess {
		return Login{}, false, nil
	}
	return Login{User: cstr(user), Line: cstr(line), Host: cstr(host), PID: int(pid),
		Time: time.Unix(sec, usec*1000).UTC()}, true, nil
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func liveLogins(root string, in []Login) []Login {
	if _, err := os.Stat(filepath.Join(root, "proc/self")); err != nil {
		return in // no procfs below root (a fixture): cannot tell
	}
	var out []Login
	for _, l := range in {
		if _, err := os.Stat(filepath.Join(root, "proc", strconv.Itoa(l.PID))); err == nil {
			out = append(out, l)
		}
	}
	return out
}

// ConsoleLogins returns the logins on tty (or on /dev/serial0 or console).
func ConsoleLogins(logins []Login, tty string) []Login {
	var out []Login
	for _, l := range logins {
		if (tty != "" && l.Line == tty) || l.Line == "serial0" || l.Line == "console" {
			out = append(out, l)
		}
	}
	return out
}
