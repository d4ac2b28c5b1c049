package console_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pifleet/pifleet/agent/internal/console"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/wire"
)

// agettyReloadFile is where `agetty --reload` signals the waiting gettys
// (util-linux: it opens the file for writing and touches it; each getty
// watches it with inotify).
const agettyReloadFile = "/run/agetty.reload"

// TestAgettyReloadAsTheServiceUser: the packaged agent runs as the
// unprivileged user pifleet, and `agetty --reload` must still reach a
// waiting prompt. It cannot while the reload file is root's 0600; the
// line in systemd/pifleet-agent.tmpfiles (f … 0660 root pifleet) is what
// makes it work. Here the service user is nobody (65534), given the
// tmpfiles line's mode and group on the real reload file, which is put
// back afterwards.
func TestAgettyReloadAsTheServiceUser(t *testing.T) {
	setpriv := testenv.RequireCommand(t, "setpriv", "util-linux")
	agetty := testenv.RequireCommand(t, "agetty", "util-linux")
	testenv.RequireRoot(t, "agetty and the ownership of /run/agetty.reload")

	mode, owner, group := tmpfilesLine(t, agettyReloadFile)
	if owner != "root" || group != "pifleet" || mode&0o020 == 0 {
		t.Fatalf("pifleet-agent.tmpfiles gives %s mode %04o %s:%s; the agent (group pifleet) needs to write it", agettyReloadFile, mode, owner, group)
	}

	// Leave the machine's reload file as it was: put back its owner and
	// mode, or remove it if there was none.
	if fi, err := os.Stat(agettyReloadFile); err == nil {
		st := fi.Sys().(*syscall.Stat_t)
		t.Cleanup(func() {
			os.Chown(agettyReloadFile, int(st.Uid), int(st.Gid))
			os.Chmod(agettyReloadFile, fi.Mode().Perm())
		})
	} else {
		t.Cleanup(func() { os.Remove(agettyReloadFile) })
	}
	if f, err := os.OpenFile(agettyReloadFile, os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
		f.Close()
	} else {
		t.Fatal(err)
	}

	const nobody = 65534
	reloadAsService := func() error {
		out, err := exec.Command(setpriv, fmt.Sprintf("--reuid=%d", nobody), fmt.Sprintf("--regid=%d", nobody),
			"--clear-groups", agetty, "--reload").CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
		}
		return nil
	}

	// As root's 0600 file: the service user cannot signal the gettys.
	if err := os.Chown(agettyReloadFile, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(agettyReloadFile, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := reloadAsService(); err == nil {
		t.Fatalf("agetty --reload as uid %d worked on a root-only %s; this test no longer shows why the tmpfiles line exists", nobody, agettyReloadFile)
	}

	// With the tmpfiles line's mode and the service's group, it can.
	if err := os.Chown(agettyReloadFile, 0, nobody); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(agettyReloadFile, mode); err != nil {
		t.Fatal(err)
	}

	issueDir := filepath.Join(t.TempDir(), "issue.d")
	b := &console.Banner{Path: filepath.Join(issueDir, "pifleet.issue"), Reload: func(context.Context) error { return nil }}
	ctx := context.Background()
	if _, err := b.Update(ctx, piInfo); err != nil {
		t.Fatal(err)
	}
	c := newCable(t)
	startGetty(t, c.Pi, nil, "--issue-file", issueDir)
	got := watchPrompt(t, c)

	moved := piInfo
	moved.Addresses = []wire.Address{{Address: "198.51.100.99", Prefix: 24, Family: wire.IPv4, Interface: "wlan0", Primary: true}}
	if _, err := b.Update(ctx, moved); err != nil {
		t.Fatal(err)
	}
	var last error
	lastReload := time.Time{}
	testenv.Eventually(t, 20*time.Second, func() string {
		if strings.Contains(got.String(), "198.51.100.99/24") {
			return ""
		}
		// A getty arms its watch once it waits at the prompt: repeat.
		if time.Since(lastReload) > 3*time.Second {
			lastReload = time.Now()
			last = reloadAsService()
		}
		return fmt.Sprintf("the waiting prompt did not reprint the banner after agetty --reload as uid %d (last: %v); line shows %q", nobody, last, got.String())
	})
	if last != nil {
		t.Errorf("agetty --reload as the service user: %v", last)
	}
}

// tmpfilesLine returns mode, user and group of path's line in the agent's
// tmpfiles snippet.
func tmpfilesLine(t *testing.T, path string) (os.FileMode, string, string) {
	t.Helper()
	f, err := os.Open(filepath.Join(testenv.ModuleRoot(t), "systemd", "pifleet-agent.tmpfiles"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 5 && fields[1] == path {
			var mode uint32
			if _, err := fmt.Sscanf(fields[2], "%o", &mode); err != nil {
				t.Fatalf("tmpfiles mode %q: %v", fields[2], err)
			}
			return os.FileMode(mode), fields[3], fields[4]
		}
	}
	t.Fatalf("systemd/pifleet-agent.tmpfiles has no line for %s", path)
	return 0, "", ""
}
