package gctune

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestEnv(t *testing.T) {
	for _, tc := range []struct {
		in, want []string
		changed  bool
	}{
		{[]string{"PATH=/bin"}, []string{"PATH=/bin", "GODEBUG=gcshrinkstackoff=1", "GOGC=150"}, true},
		{[]string{"GODEBUG=http2debug=1", "GOGC=off"}, []string{"GODEBUG=http2debug=1,gcshrinkstackoff=1", "GOGC=off"}, true},
		{[]string{"GODEBUG=", "GOGC=100"}, []string{"GODEBUG=gcshrinkstackoff=1", "GOGC=100"}, true},
		// the operator's choice stands
		{[]string{"GODEBUG=gcshrinkstackoff=0", "GOGC=100"}, []string{"GODEBUG=gcshrinkstackoff=0", "GOGC=100"}, false},
		{[]string{"GOGC=200", "GODEBUG=x=1, gcshrinkstackoff=1"}, []string{"GOGC=200", "GODEBUG=x=1, gcshrinkstackoff=1"}, false},
	} {
		got, changed := Env(tc.in)
		if !slices.Equal(got, tc.want) || changed != tc.changed {
			t.Errorf("Env(%q) = %q, %v; want %q, %v", tc.in, got, changed, tc.want, tc.changed)
		}
	}
}

// TestApplyReexecutes runs this test binary as a child that calls Apply:
// it must come back as the same process (same PID) with the defaults in
// its environment, and with the operator's GOGC untouched when set.
func TestApplyReexecutes(t *testing.T) {
	if os.Getenv("GCTUNE_CHILD") == "1" {
		Apply()
		fmt.Printf("pid=%d GODEBUG=%s GOGC=%s\n", os.Getpid(), os.Getenv("GODEBUG"), os.Getenv("GOGC"))
		os.Exit(0)
	}
	for _, tc := range []struct{ gogc, want string }{{"", "GOGC=150"}, {"GOGC=90", "GOGC=90"}} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestApplyReexecutes$")
		cmd.Env = []string{"GCTUNE_CHILD=1", "GODEBUG=madvdontneed=1"}
		if tc.gogc != "" {
			cmd.Env = append(cmd.Env, tc.gogc)
		}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		want := fmt.Sprintf("pid=%s GODEBUG=madvdontneed=1,gcshrinkstackoff=1 %s", strconv.Itoa(cmd.Process.Pid), tc.want)
		if got := strings.TrimSpace(string(out)); got != want {
			t.Errorf("child printed %q, want %q", got, want)
		}
	}
}
