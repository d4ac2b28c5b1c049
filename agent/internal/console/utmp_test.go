package console

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/pifleet/pifleet/internal/testenv"
)

func TestUtmpLayoutSizes(t *testing.T) {
	if got := binary.Size(utmp384{}); got != 384 {
		t.Errorf("utmp384: got %d bytes, want 384", got)
	}
	if got := binary.Size(utmp400{}); got != 400 {
		t.Errorf("utmp400: got %d bytes, want 400", got)
	}
	for arch, want := range map[string]int{"amd64": 384, "arm": 384, "386": 384, "arm64": 400} {
		if got := utmpSizeFor(arch); got != want {
			t.Errorf("utmpSizeFor(%s): got %d, want %d", arch, got, want)
		}
	}
}

var wantLogins = []Login{
	{User: "pi", Line: "ttyS0", PID: 731, Time: time.Date(2026, 11, 24, 21, 5, 42, 123456000, time.UTC)},
	{User: "admin", Line: "pts/0", Host: "192.0.2.50", PID: 802, Time: time.Date(2026, 11, 24, 21, 10, 0, 0, time.UTC)},
}

func checkLogins(t *testing.T, got []Login) {
	t.Helper()
	if len(got) != len(wantLogins) {
		t.Fatalf("got %d logins %+v, want %d", len(got), got, len(wantLogins))
	}
	for i := range got {
		if got[i] != wantLogins[i] {
			t.Errorf("login %d: got %+v, want %+v", i, got[i], wantLogins[i])
		}
	}
}

// TestParseUtmpGlibc parses a file written by glibc (utmpdump -r on x86_64,
// the same 384-byte layout as armhf).
func TestParseUtmpGlibc(t *testing.T) {
	b, err := os.ReadFile("testdata/utmp/x86_64-glibc.utmp")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseUtmp(b, 384)
	if err != nil {
		t.Fatal(err)
	}
	checkLogins(t, got)
	// An arm64 agent reading a 32-bit userland's utmp falls back by size.
	got, err = ParseUtmp(b, 400)
	if err != nil {
		t.Fatal(err)
	}
	checkLogins(t, got)
}

// TestParseUtmp400 parses the aarch64 layout (long ut_session, 64-bit
// struct timeval), encoded here from the same records.
func TestParseUtmp400(t *testing.T) {
	var buf bytes.Buffer
	for _, l := range append([]Login{{User: "LOGIN", Line: "tty1", PID: 612}}, wantLogins...) {
		var u utmp400
		u.Type, u.Pid = utUserProcess, int32(l.PID)
		if l.User == "LOGIN" {
			u.Type = 6
		}
		copy(u.Line[:], l.Line)
		copy(u.User[:], l.User)
		copy(u.Host[:], l.Host)
		u.Sec, u.Usec = l.Time.Unix(), int64(l.Time.Nanosecond()/1000)
		if err := binary.Write(&buf, binary.LittleEndian, &u); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ParseUtmp(buf.Bytes(), 400)
	if err != nil {
		t.Fatal(err)
	}
	checkLogins(t, got)
}

func TestParseUtmpBad(t *testing.T) {
	if _, err := ParseUtmp(make([]byte, 385), 384); err == nil {
		t.Error("got no error for a 385-byte file, want one")
	}
	if got, err := ParseUtmp(nil, 384); err != nil || len(got) != 0 {
		t.Errorf("empty file: got %v, %v; want no logins", got, err)
	}
}

// TestUtmpdumpRoundTrip lets util-linux's utmpdump (glibc's own struct
// utmp) write the records, so the layout is checked against the real
// thing on the machine that runs the test.
func TestUtmpdumpRoundTrip(t *testing.T) {
	bin := testenv.RequireCommand(t, "utmpdump", "util-linux")
	in, err := os.Open("testdata/utmp/records.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	cmd := exec.Command(bin, "-r")
	cmd.Stdin = in
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("utmpdump -r: %v", err)
	}
	got, err := ParseUtmp(out, 384)
	if err != nil {
		t.Fatal(err)
	}
	checkLogins(t, got)
}

func TestReadLoginsSkipsStale(t *testing.T) {
	root := t.TempDir()
	b, _ := os.ReadFile("testdata/utmp/x86_64-glibc.utmp")
	writeFile(t, root, "var/run/utmp", string(b))
	got, err := ReadLogins(root)
	if err != nil || len(got) != 2 {
		t.Fatalf("no procfs below root: got %v, %v; want both logins", got, err)
	}
	writeFile(t, root, "proc/self/stat", "")
	writeFile(t, root, "proc/802/stat", "")
	got, _ = ReadLogins(root)
	if len(got) != 1 || got[0].PID != 802 {
		t.Errorf("with procfs: got %+v, want only pid 802 (731 is gone)", got)
	}
	if cl := ConsoleLogins(got, "ttyS0"); len(cl) != 0 {
		t.Errorf("got console logins %+v, want none", cl)
	}
	if got, err := ReadLogins(filepath.Join(root, "nothing")); err != nil || got != nil {
		t.Errorf("missing utmp: got %v, %v; want nothing", got, err)
	}
}
