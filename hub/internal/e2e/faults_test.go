package e2e

// Issue 14's fault suite, the agent's part: the real pifleet-agent on a
// real broker, with its command store (a real bbolt file) killed mid-
// write, filled up, or corrupt. Named TestDocker*: the agent's runner
// talks to the real Docker Engine.

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pifleet/pifleet/internal/runnertest"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/wire"
)

// faultRig is one agent's world: a broker, a hub key, a policy, and a
// client that signs commands and sees every record the agent publishes.
type faultRig struct {
	t       *testing.T
	id      string
	bin     string
	broker  string
	dataDir string
	pol     string
	pub     string // the hub key's public half, for --hub-key
	key     ed25519.PrivateKey
	client  mqtt.Client
	agent   *proc
	env     []string // extra environment of the agent (DOCKER_HOST)

	mu      sync.Mutex
	records map[string][]wire.ResultRecord // by command id
	epoch   uint64                         // of the last online state seen
	sent    map[string][]byte              // signed payloads by id
}

// newFaultRig prepares an agent with dataDir. Its tools: "nop" names an
// image that is not there, so a command is admitted (recorded in the
// store) and fails at once without a container; "job" sleeps in busybox.
func newFaultRig(t *testing.T, dataDir string) *faultRig {
	t.Helper()
	url := testenv.StartMosquitto(t, "").URL
	dir := t.TempDir()
	pub, key, _ := ed25519.GenerateKey(nil)
	r := &faultRig{t: t, id: fmt.Sprintf("pi-fault-%d", time.Now().UnixNano()%1e9), bin: binAgent(t), broker: url, dataDir: dataDir, key: key,
		pol: filepath.Join(dir, "policy.json"), pub: filepath.Join(dir, "hub.key.pub"),
		records: map[string][]wire.ResultRecord{}, sent: map[string][]byte{}}
	b, _ := json.Marshal(map[string]any{"tools": map[string]any{
		"nop": map[string]any{"image": "pifleet-test/absent:none", "verb_words": 1, "read": []string{"go"}, "entrypoint": []string{"true"}},
		"job": map[string]any{"image": runnertest.Busybox(t), "verb_words": 1, "read": []string{"[0-9]*"},
			"entrypoint": []string{"sh", "-c", `sleep "$0"; echo "slept $0"`}},
	}})
	os.WriteFile(r.pol, b, 0o644)
	os.WriteFile(r.pub, []byte(encodePub(pub)+"\n"), 0o644)
	r.client = mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID("fault-hub").SetOrderMatters(false))
	if tok := r.client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	t.Cleanup(func() { r.client.Disconnect(50) })
	subs := map[string]byte{wire.DeviceTopic(r.id, wire.LeafResult) + "/#": 1, wire.StateTopic(r.id): 1}
	if tok := r.client.SubscribeMultiple(subs, func(_ mqtt.Client, m mqtt.Message) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if st, err := wire.DecodeState(m.Payload()); err == nil && m.Topic() == wire.StateTopic(r.id) {
			if st.State == wire.StateOnline {
				r.epoch = st.Epoch
			}
			return
		}
		if rec, err := wire.DecodeResult(m.Payload()); err == nil {
			if pt, err := wire.ParseTopic(m.Topic()); err == nil {
				r.records[pt.CmdID] = append(r.records[pt.CmdID], rec)
			}
		}
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return r
}

// start starts the agent and waits until it runs commands.
func (r *faultRig) start() *proc {
	r.t.Helper()
	r.mu.Lock()
	epoch := r.epoch
	r.mu.Unlock()
	r.agent = startEnv(r.t, "agent", r.env, r.bin, "--broker", r.broker, "--id", r.id, "--data-dir", r.dataDir,
		"--hub-key", r.pub, "--policy", r.pol, "--docker-network", "none", "--console-issue", "off",
		"--keepalive", "10s", "--heartbeat", "30s", "--log-level", "debug")
	testenv.Eventually(r.t, 30*time.Second, func() string {
		r.mu.Lock()
		defer r.mu.Unlock()
		if !r.agent.alive() {
			r.t.Fatalf("the agent exited:\n%s", r.agent.out.String())
		}
		if r.epoch == epoch {
			return "the agent is not online\n" + r.agent.out.String()
		}
		return ""
	})
	// Commands reach the Pi at QoS 0: probe until one is answered.
	for i := 0; ; i++ {
		id := fmt.Sprintf("probe-%d-%d", time.Now().UnixNano(), i)
		r.send(id, "nop", time.Now())
		deadline := time.Now().Add(300 * time.Millisecond)
		for time.Now().Before(deadline) {
			if r.final(id) != nil {
				return r.agent
			}
			time.Sleep(10 * time.Millisecond)
		}
		if i == 100 {
			r.t.Fatalf("the agent answers no command:\n%s", r.agent.out.String())
		}
	}
}

// send signs and publishes a command (argv by default: nop "go", job
// "0").
func (r *faultRig) send(id, tool string, created time.Time, argv ...string) {
	r.t.Helper()
	switch {
	case len(argv) > 0:
	case tool == "job":
		argv = []string{"0"}
	default:
		argv = []string{"go"}
	}
	c := wire.Command{V: wire.ProtocolVersion, ID: id, Hub: "hub", Device: r.id, ReplyTo: "hub",
		Created: created.UTC(), Expires: created.Add(5 * time.Minute).UTC(), Tool: tool, Argv: argv}
	c.Sign(r.key)
	b, _ := json.Marshal(c)
	r.mu.Lock()
	r.sent[id] = b
	r.mu.Unlock()
	r.resend(id)
}

// resend publishes the same signed bytes again.
func (r *faultRig) resend(id string) {
	r.mu.Lock()
	b := r.sent[id]
	r.mu.Unlock()
	if tok := r.client.Publish(wire.CmdTopic(r.id), 1, false, b); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		r.t.Errorf("publish %s: %v", id, tok.Error())
	}
}

func (r *faultRig) final(id string) *wire.Final {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.records[id] {
		if rec.Final != nil {
			return rec.Final
		}
	}
	return nil
}

func (r *faultRig) notices(id string, reason wire.NoticeReason) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rec := range r.records[id] {
		if rec.Notice != nil && rec.Notice.Reason == reason {
			n++
		}
	}
	return n
}

func (r *faultRig) waitFinal(id string) *wire.Final {
	r.t.Helper()
	var f *wire.Final
	testenv.Eventually(r.t, 30*time.Second, func() string {
		if f = r.final(id); f == nil {
			return "no final for " + id
		}
		return ""
	})
	return f
}

var runningRe = regexp.MustCompile(`msg=running .*\bid=(\S+)`)

// ran returns the ids a log says the agent ran (recorded, then started).
func ran(log string) map[string]bool {
	ids := map[string]bool{}
	for _, m := range runningRe.FindAllStringSubmatch(log, -1) {
		ids[m[1]] = true
	}
	return ids
}

// storeWriteSyscalls are pwrite64, fsync and fdatasync: how bbolt writes.
var storeWriteSyscalls = map[string][]string{"amd64": {"18", "74", "75"}, "arm64": {"68", "82", "83"}}

// inStoreWrite reports whether a thread of pid is in a write or sync of
// the file at path (/proc/PID/task/*/syscall: number, then arguments).
func inStoreWrite(t *testing.T, pid int, path string) bool {
	nrs, ok := storeWriteSyscalls[runtime.GOARCH]
	if !ok {
		t.Fatalf("no syscall numbers for %s", runtime.GOARCH)
	}
	fd := ""
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, e := range ents {
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name())); l == path {
			fd = e.Name()
		}
	}
	if fd == "" {
		return false
	}
	n, _ := strconv.Atoi(fd)
	arg := fmt.Sprintf("0x%x", n)
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/syscall", pid, task.Name()))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) < 2 || f[1] != arg {
			continue
		}
		for _, nr := range nrs {
			if f[0] == nr {
				return true
			}
		}
	}
	return false
}

// An agent killed (SIGKILL) while it records a command in its store
// opens the store as it was at the next start (no "corrupt" recovery),
// and every command it had started is not run again when it comes back.
// A stream of commands keeps the agent writing its store; the test kills
// it when /proc shows a thread in a write or sync of commands.db, once
// 20 commands have run, until four kills have landed so (at most 10
// tries). (The test catches an agent that records a command only after
// starting it about half the time per landed kill: four make a miss
// unlikely.)
func TestDockerAgentKilledMidStoreWrite(t *testing.T) {
	dataDir := t.TempDir()
	r := newFaultRig(t, dataDir)
	db := filepath.Join(dataDir, "commands.db")
	r.start()
	landed := 0
	for try := 0; try < 10 && landed < 4; try++ {
		a := r.agent
		stop := make(chan struct{})
		flooded := make(chan struct{})
		go func() {
			defer close(flooded)
			for n := 0; n < 200; n++ {
				select {
				case <-stop:
					return
				case <-time.After(3 * time.Millisecond):
				}
				r.send(fmt.Sprintf("k%d-%d", try, n), "nop", time.Now())
			}
		}()
		// Let a few run first, so that the kill has something to lose.
		testenv.Eventually(t, 30*time.Second, func() string {
			if n := len(ran(a.out.String())); n < 20 {
				return fmt.Sprintf("try %d: %d commands run", try, n)
			}
			return ""
		})
		caught := false
		deadline := time.Now().Add(3 * time.Second)
		for !caught && time.Now().Before(deadline) {
			caught = inStoreWrite(t, a.cmd.Process.Pid, db)
		}
		a.kill(syscall.SIGKILL)
		close(stop)
		<-flooded
		if caught {
			landed++
		}
		before := ran(a.out.String())

		b := r.start()
		if log := b.out.String(); strings.Contains(log, "command store was corrupt") {
			t.Fatalf("after a kill -9 the store was taken for corrupt:\n%s", log)
		}
		var again []string
		for id := range before {
			if strings.HasPrefix(id, "k") {
				again = append(again, id)
				r.resend(id)
				time.Sleep(2 * time.Millisecond)
			}
		}
		testenv.Eventually(t, 30*time.Second, func() string {
			after := ran(b.out.String())
			for _, id := range again {
				if after[id] {
					t.Fatalf("try %d: %s ran before the kill and again after it", try, id)
				}
				if r.notices(id, wire.NoticeDuplicate) == 0 {
					return fmt.Sprintf("try %d: no duplicate notice for %s, run before the kill and sent again", try, id)
				}
			}
			return ""
		})
		t.Logf("try %d: kill landed in a store write: %v; %d commands run before it, none again", try, caught, len(again))
	}
	if landed < 4 {
		t.Fatalf("only %d of 10 kills landed while the agent wrote its store: the test did not test what it says", landed)
	}
}

func encodePub(k ed25519.PublicKey) string { return base64.StdEncoding.EncodeToString(k) }

// A full data dir: a command that cannot be recorded is refused with a
// clear error and not run (it would run again after a restart), the
// agent keeps running, and once there is room it runs commands again.
// The store starts small (bbolt grows it a page at a time within its
// first 32 KiB), so a few dozen commands reach the end of the space.
func TestDockerAgentDataDirFull(t *testing.T) {
	dataDir := testenv.Tmpfs(t, "256k")
	r := newFaultRig(t, dataDir)
	r.start()
	free := testenv.Fill(t, dataDir)
	refused := ""
	for n := 0; n < 300 && refused == ""; n++ {
		id := fmt.Sprintf("full-%d", n)
		r.send(id, "nop", time.Now())
		if f := r.waitFinal(id); f.Outcome == wire.OutcomeRejected {
			refused = id
			if !strings.Contains(f.Error, "cannot record the command, so it is not run") || !strings.Contains(f.Error, "no space left on device") {
				t.Errorf("the refusal says %q; want that the command cannot be recorded for want of space, so it is not run", f.Error)
			}
		}
	}
	if refused == "" {
		t.Fatalf("300 commands were recorded in a full data dir:\n%s", r.agent.out.String())
	}
	if ran(r.agent.out.String())[refused] {
		t.Errorf("%s ran although it could not be recorded", refused)
	}
	if !r.agent.alive() {
		t.Fatalf("the agent stopped:\n%s", r.agent.out.String())
	}
	free()
	r.send("room-again", "job", time.Now())
	if f := r.waitFinal("room-again"); f.Outcome != wire.OutcomeExited || f.Output != "slept 0\n" {
		t.Errorf("with room again: final %+v; want the command run", f)
	}
}

// A corrupt command store (garbage) at start: the real agent starts, says
// what it did, refuses a command created before it replaced the store
// (it may have run already) and runs a new one.
func TestDockerAgentCorruptStore(t *testing.T) {
	dataDir := t.TempDir()
	db := filepath.Join(dataDir, "commands.db")
	os.WriteFile(db, []byte(strings.Repeat("not a bbolt file ", 2000)), 0o600)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(db, old, old)
	r := newFaultRig(t, dataDir)
	started := time.Now()
	a := r.start()
	if log := a.out.String(); !strings.Contains(log, "level=WARN") || !strings.Contains(log, "the command store was corrupt") ||
		!strings.Contains(log, "moved_to="+db+".corrupt") {
		t.Errorf("agent log:\n%s\nwant a warning that the store was corrupt and where it went", log)
	}
	if _, err := os.Stat(db + ".corrupt"); err != nil {
		t.Errorf("the corrupt store is not kept: %v", err)
	}
	r.send("from-before", "job", started.Add(-10*time.Second))
	if f := r.waitFinal("from-before"); f.Outcome != wire.OutcomeRejected || !strings.Contains(f.Error, "may have run already") {
		t.Errorf("a command created before the agent started: %+v; want it refused (it may have run already)", f)
	}
	r.send("new", "job", time.Now())
	if f := r.waitFinal("new"); f.Outcome != wire.OutcomeExited || f.Output != "slept 0\n" {
		t.Errorf("a new command: %+v; want it run", f)
	}
}

// dockerProxy forwards a unix socket to the Docker Engine's, and can cut
// every connection and refuse new ones (the engine gone, as far as the
// agent can tell) and come back.
type dockerProxy struct {
	t      *testing.T
	path   string // the agent's DOCKER_HOST: unix://path
	target string // the engine's socket

	mu    sync.Mutex
	l     net.Listener
	conns map[net.Conn]bool
}

func startDockerProxy(t *testing.T) *dockerProxy {
	t.Helper()
	runnertest.RequireDocker(t)
	target := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		var ok bool
		if target, ok = strings.CutPrefix(h, "unix://"); !ok {
			t.Fatalf("DOCKER_HOST=%s: this test proxies a unix socket only", h)
		}
	}
	// A short path: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "dproxy")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := &dockerProxy{t: t, path: filepath.Join(dir, "docker.sock"), target: target, conns: map[net.Conn]bool{}}
	p.up()
	t.Cleanup(p.cut)
	return p
}

func (p *dockerProxy) up() {
	p.t.Helper()
	l, err := net.Listen("unix", p.path)
	if err != nil {
		p.t.Fatalf("docker proxy: %v", err)
	}
	p.mu.Lock()
	p.l = l
	p.mu.Unlock()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			e, err := net.Dial("unix", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[e] = true, true
			p.mu.Unlock()
			go func() { io.Copy(e, c); e.Close() }()
			go func() { io.Copy(c, e); c.Close() }()
		}
	}()
}

// cut closes the listener (the socket file goes with it) and every
// connection through it.
func (p *dockerProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.l != nil {
		p.l.Close()
		p.l = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// The Docker Engine becomes unreachable while the agent runs a command:
// the command ends at once with a clear error (not a hang: its own
// timeout is 60 s), the container the engine still runs is removed once
// the engine is reachable again (not only at the agent's next start),
// and the agent keeps running and runs the next command.
func TestDockerAgentEngineGoneMidCommand(t *testing.T) {
	proxy := startDockerProxy(t)
	docker := runnertest.RequireDocker(t)
	r := newFaultRig(t, t.TempDir())
	r.env = []string{"DOCKER_HOST=unix://" + proxy.path}
	r.start()
	ours := filters.NewArgs(filters.Arg("label", "org.pifleet.runner="+r.id))
	containers := func() []container.Summary {
		t.Helper()
		cs, err := docker.ContainerList(context.Background(), container.ListOptions{All: true, Filters: ours})
		if err != nil {
			t.Fatalf("list containers: %v", err)
		}
		return cs
	}
	t.Cleanup(func() {
		for _, c := range containers() {
			docker.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
		}
	})

	r.send("long", "job", time.Now(), "40")
	testenv.Eventually(t, 30*time.Second, func() string {
		for _, c := range containers() {
			if c.State == "running" {
				return ""
			}
		}
		return "the command's container is not running"
	})
	proxy.cut()
	cut := time.Now()
	f := r.waitFinal("long")
	took := time.Since(cut)
	if f.Outcome != wire.OutcomeError || !strings.Contains(f.Error, "docker engine") {
		t.Errorf("final with the engine gone: %+v; want an error that names the docker engine", f)
	}
	t.Logf("final %v after the engine went: %s", took.Round(time.Millisecond), f.Error)
	if took > 5*time.Second {
		t.Errorf("the final came %v after the engine went; want it at once", took.Round(time.Millisecond))
	}
	if !r.agent.alive() {
		t.Fatalf("the agent stopped:\n%s", r.agent.out.String())
	}

	proxy.up()
	testenv.Eventually(t, 20*time.Second, func() string {
		if cs := containers(); len(cs) > 0 {
			return fmt.Sprintf("the engine is back but the lost command's container is still there (%s)", cs[0].State)
		}
		return ""
	})
	r.send("next", "job", time.Now())
	if f := r.waitFinal("next"); f.Outcome != wire.OutcomeExited || f.Output != "slept 0\n" {
		t.Errorf("the next command: %+v; want it run", f)
	}
}
