package dispatch

// The hub's dispatch state file under faults (issue 14's fault suite): a
// crash mid-write, a corrupt file at start, a full state dir. The file
// only remembers who asked for the commands in flight (the Pis' id
// stores are what keep a command from running twice): a hub that loses
// it answers late results without their request, and never sends a
// command again because of it.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/chat"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/wire"
)

// stateWriterEnv makes the test binary a process that writes the state
// file (TestStateWriterProcess): "loop" writes a different state over and
// over, "once" writes one and exits.
const stateWriterEnv = "PIFLEET_TEST_STATE_WRITER"

// TestStateWriterProcess is not a test: run with stateWriterEnv set, it
// is the process the tests below kill or trace.
func TestStateWriterProcess(t *testing.T) {
	mode, path, ok := strings.Cut(os.Getenv(stateWriterEnv), ":")
	if !ok {
		return
	}
	d := &Dispatcher{o: Options{StateFile: path}, log: slog.New(slog.NewTextHandler(os.Stderr, nil)), inflight: map[string]*flight{}}
	argv := strings.Fields(strings.Repeat("s3 ls --recursive ", 200)) // ~3.6 KB a record
	for i := 0; ; i++ {
		// 1 to 40 records: from 4 to 150 KB, so a write takes a while.
		clear(d.inflight)
		for j := range i%40 + 1 {
			id := fmt.Sprintf("c%08d-%03d", i, j)
			d.inflight[id] = &flight{rec: record{ID: id, Device: "pi1", Tool: "aws", Argv: argv, Expires: time.Now().Add(time.Minute)}}
		}
		d.saveLocked()
		if i == 0 {
			fmt.Println("written")
		}
		if mode == "once" {
			return
		}
	}
}

func startStateWriter(t *testing.T, mode, path string, wrap ...string) *exec.Cmd {
	t.Helper()
	args := append(wrap, os.Args[0], "-test.run=^TestStateWriterProcess$", "-test.count=1")
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), stateWriterEnv+"="+mode+":"+path)
	return cmd
}

// A hub killed (SIGKILL) while it writes its state file leaves the old
// file or the new one, whole: never a truncated or empty one. The writer
// rewrites 4-150 KB states in a loop and is killed at a random moment,
// 30 times.
func TestStateFileWholeAfterKillMidWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dispatch-hub1.json")
	for i := range 30 {
		cmd := startStateWriter(t, "loop", path)
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || line != "written\n" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the writer process did not start writing: %q %v", line, err)
		}
		time.Sleep(time.Duration(rand.IntN(20_000)) * time.Microsecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var recs []record
		if err := json.Unmarshal(b, &recs); err != nil || len(recs) == 0 {
			t.Fatalf("kill %d: the state file is not a whole state (%d bytes, %d records): %v", i+1, len(b), len(recs), err)
		}
	}
}

// The state file reaches the disk before it replaces the old one, and
// the rename does too: fsync of the new file, rename, fsync of the dir,
// as strace sees the writer do it. (A kill -9 cannot show this: the page
// cache survives a process; a power cut does not.)
func TestStateFileWriteIsDurable(t *testing.T) {
	strace := testenv.RequireCommand(t, "strace", "strace")
	dir := t.TempDir()
	path := filepath.Join(dir, "dispatch-hub1.json")
	trace := filepath.Join(dir, "trace")
	cmd := startStateWriter(t, "once", path, strace, "-f", "-qq", "-o", trace, "-e", "trace=openat,fsync,fdatasync,rename,renameat,renameat2,close")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("strace the writer: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(trace)
	// Follow the file descriptors: which path each one is, and what
	// happened to the state file and its dir, in order.
	var events []string
	fds := map[string]string{}
	openRe := regexp.MustCompile(`openat\(AT_FDCWD, "([^"]+)", [^)]*\)\s+= (\d+)`)
	syncRe := regexp.MustCompile(`f(?:data)?sync\((\d+)\)\s+= 0`)
	closeRe := regexp.MustCompile(`close\((\d+)\)`)
	renameRe := regexp.MustCompile(`rename(?:at2?)?\((?:AT_FDCWD, )?"([^"]+)", (?:AT_FDCWD, )?"([^"]+)"`)
	unfinished := map[string]string{} // pid → the start of a call another thread's line interrupted
	resumedRe := regexp.MustCompile(`^(\d+) <\.\.\. \w+ resumed>(.*)`)
	for _, l := range strings.Split(string(b), "\n") {
		if pre, ok := strings.CutSuffix(l, " <unfinished ...>"); ok {
			pid, _, _ := strings.Cut(pre, " ")
			unfinished[pid] = pre
			continue
		}
		if m := resumedRe.FindStringSubmatch(l); m != nil {
			l = unfinished[m[1]] + m[2]
		}
		if m := openRe.FindStringSubmatch(l); m != nil {
			fds[m[2]] = m[1]
		} else if m := syncRe.FindStringSubmatch(l); m != nil {
			switch fds[m[1]] {
			case path + ".tmp":
				events = append(events, "sync new")
			case dir:
				events = append(events, "sync dir")
			}
		} else if m := renameRe.FindStringSubmatch(l); m != nil && m[2] == path {
			events = append(events, "rename")
		} else if m := closeRe.FindStringSubmatch(l); m != nil {
			delete(fds, m[1])
		}
	}
	if got := strings.Join(events, ", "); got != "sync new, rename, sync dir" {
		t.Errorf("the state file was written with: %q; want \"sync new, rename, sync dir\"\n%s", got, b)
	}
}

// A state file that does not parse (garbage, or cut short) does not keep
// the hub from starting: a warning, the file kept aside for a post-mortem
// (the next save would overwrite it), and nothing sent again.
func TestStateFileCorruptWarnsAndStarts(t *testing.T) {
	for name, content := range map[string]string{
		"garbage":   "\x00\x17\xfe not json",
		"cut short": `[{"id":"c0000000000000001","device":"pi1","tool":"aws","argv":["s3",`,
		"empty":     "",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "dispatch-hub1.json")
			os.WriteFile(path, []byte(content), 0o600)
			logs := &testenv.SyncBuffer{}
			p := &pub{}
			d, _ := newTestDispatcher(t, p, staticFleet{"pi1": true}, func(o *Options) {
				o.StateFile = path
				o.Logger = slog.New(slog.NewTextHandler(logs, nil))
			})
			if log := logs.String(); !strings.Contains(log, "level=WARN") || !strings.Contains(log, "state file unreadable") ||
				!strings.Contains(log, path+".corrupt") {
				t.Errorf("log:\n%s\nwant a warning that the state file is unreadable and where it was moved", log)
			}
			if b, err := os.ReadFile(path + ".corrupt"); err != nil || string(b) != content {
				t.Errorf("the unreadable state file was not kept as .corrupt: %v", err)
			}
			if len(d.Pending()) != 0 || len(p.msgs) != 0 {
				t.Errorf("pending %v, published %d messages; want nothing", d.Pending(), len(p.msgs))
			}
			// The dispatcher works and writes a sound file again.
			p.onCmd = func(c wire.Command) {
				send(d, c.Device, c.ID, final(c.Device, c.ID, 1, 0, "ok\n"))
			}
			if r := d.Handle(context.Background(), chat.Request{User: "U2"}, []string{"pi1", "s3", "ls"}); r.Problem {
				t.Errorf("a command after the start: %q", r.Text)
			}
			if b, err := os.ReadFile(path); err != nil || strings.TrimSpace(string(b)) != "[]" {
				t.Errorf("state file after a command: %q %v", b, err)
			}
		})
	}
}

// A full state dir: the hub keeps answering, says clearly that it cannot
// remember commands in flight, keeps the last state it wrote whole, and
// leaves no half-written temp file to hold space; once there is room
// again, it saves as before.
func TestStateDirFull(t *testing.T) {
	dir := testenv.Tmpfs(t, "64k")
	path := filepath.Join(dir, "dispatch-hub1.json")
	logs := &testenv.SyncBuffer{}
	p := &pub{}
	var d *Dispatcher
	answer := make(chan bool, 1) // true: the fake Pi answers the next command
	p.onCmd = func(c wire.Command) {
		if <-answer {
			send(d, c.Device, c.ID, final(c.Device, c.ID, 1, 0, "ok\n"))
		}
	}
	d, _ = newTestDispatcher(t, p, staticFleet{"pi1": true}, func(o *Options) {
		o.StateFile = path
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
		o.Wait = 300 * time.Millisecond
		o.Now = time.Now
	})
	// One command whose Pi never answers stays in flight, in the file.
	answer <- false
	d.Handle(context.Background(), chat.Request{User: "U2", Channel: "C1"}, []string{"pi1", "s3", "ls"})
	before, _ := os.ReadFile(path)
	if !strings.Contains(string(before), `"channel":"C1"`) {
		t.Fatalf("state file before the disk is full: %s", before)
	}

	free := testenv.Fill(t, dir)
	answer <- true
	r := d.Handle(context.Background(), chat.Request{User: "U2", Channel: "C2"}, []string{"pi1", "s3", "ls"})
	if r.Problem || !strings.Contains(r.Text, "ok") {
		t.Errorf("with the state dir full the hub answered %q; want the result", r.Text)
	}
	log := logs.String()
	if !strings.Contains(log, "level=WARN") || !strings.Contains(log, "no space left on device") || !strings.Contains(log, "not remembered across a restart") {
		t.Errorf("log:\n%s\nwant a warning that says the disk is full and what it costs", log)
	}
	if b, _ := os.ReadFile(path); string(b) != string(before) {
		t.Errorf("the last state written is not kept whole: %q, want %q", b, before)
	}
	if _, err := os.Stat(path + ".tmp"); err == nil {
		t.Error("a half-written temp file is left in the full state dir")
	}

	free()
	answer <- true
	if r := d.Handle(context.Background(), chat.Request{User: "U2", Channel: "C3"}, []string{"pi1", "s3", "ls"}); r.Problem {
		t.Errorf("after space was freed: %q", r.Text)
	}
	var recs []record
	b, _ := os.ReadFile(path)
	if err := json.Unmarshal(b, &recs); err != nil || len(recs) != 1 || recs[0].Request.Channel != "C1" {
		t.Errorf("state file once there is room again: %s (%v); want the one command in flight", b, err)
	}
}
