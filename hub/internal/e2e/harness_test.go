package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pifleet/pifleet/hub/internal/api"
	"github.com/pifleet/pifleet/internal/testenv"
)

// proc is a running binary with its output captured.
type proc struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	out  *testenv.SyncBuffer
	done chan struct{}
}

func start(t testing.TB, name, bin string, args ...string) *proc {
	t.Helper()
	return startEnv(t, name, nil, bin, args...)
}

// startEnv is start with env added to the process's environment.
func startEnv(t testing.TB, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	return startCmd(t, name, cmd)
}

// startCmd starts cmd (e.g. one that runs in a network namespace) with
// its output captured.
func startCmd(t testing.TB, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{t: t, name: name, cmd: cmd, out: &testenv.SyncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("--- output of %s:\n%s", name, p.out.String())
		}
	})
	return p
}

func (p *proc) kill(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	if sig == syscall.SIGKILL || sig == syscall.SIGTERM {
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.t.Errorf("%s did not exit within 10s of %v", p.name, sig)
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
}

// exitCode waits for the process to end and returns its exit code.
func (p *proc) exitCode() int {
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Fatalf("%s still running", p.name)
	}
	return p.cmd.ProcessState.ExitCode()
}

// brokerKind is one of the brokers every scenario runs against.
type brokerKind struct {
	name string
	// external returns a broker URL, or "" for the hub's embedded broker.
	external func(t testing.TB) string
}

var brokers = []brokerKind{
	{name: "embedded", external: func(testing.TB) string { return "" }},
	{name: "mosquitto", external: func(t testing.TB) string { return testenv.StartMosquitto(t, "").URL }},
}

// fleetEnv is a hub (and maybe an external broker) for one test.
type fleetEnv struct {
	t         testing.TB
	pifleet   string
	agentBin  string
	brokerURL string // what agents connect to
	external  bool
	mqttPort  int
	httpPort  int
	mqttData  string // embedded broker's --mqtt-data; empty: the default, <state-dir>/broker
	stateDir  string // the hub's --state-dir, kept across its restarts
	hub       *proc
}

func newEnv(t testing.TB, b brokerKind, opts ...func(*fleetEnv)) *fleetEnv {
	e := &fleetEnv{t: t,
		pifleet:  testenv.Binary(t, "./hub", "pifleet"),
		agentBin: testenv.Binary(t, "./agent", "pifleet-agent"),
		httpPort: testenv.FreePort(t),
		stateDir: t.TempDir(),
	}
	if url := b.external(t); url != "" {
		e.brokerURL, e.external = url, true
	} else {
		e.mqttPort = testenv.FreePort(t)
		e.brokerURL = fmt.Sprintf("mqtt://127.0.0.1:%d", e.mqttPort)
	}
	for _, o := range opts {
		o(e)
	}
	e.startHub()
	return e
}

func (e *fleetEnv) hubURL() string { return fmt.Sprintf("http://127.0.0.1:%d", e.httpPort) }

func (e *fleetEnv) startHub() {
	args := []string{"hub", "--http-listen", fmt.Sprintf("127.0.0.1:%d", e.httpPort), "--state-dir", e.stateDir, "--log-level", "debug"}
	if e.external {
		args = append(args, "--broker", e.brokerURL)
	} else {
		args = append(args, "--mqtt-listen", fmt.Sprintf("127.0.0.1:%d", e.mqttPort))
		if e.mqttData != "" {
			args = append(args, "--mqtt-data", e.mqttData)
		}
	}
	e.hub = start(e.t, "hub", e.pifleet, args...)
	testenv.WaitTCP(e.t, fmt.Sprintf("127.0.0.1:%d", e.httpPort), 15*time.Second, e.hub.out)
}

// startAgent starts an agent with a 10 s keepalive: its 5 s ping timeout
// rides out a loaded CI machine, so a session (and its epoch) lasts as
// long as the test wants. Tests of the keepalive pass their own. The
// console banner is off: it would write /run/issue.d and reload this
// machine's gettys (the console package tests it against its own agetty).
func (e *fleetEnv) startAgent(id string, extra ...string) *proc {
	args := append([]string{"--broker", e.brokerURL, "--id", id, "--keepalive", "10s", "--heartbeat", "30s",
		"--console-issue", "off", "--log-level", "debug"}, extra...)
	return start(e.t, "agent "+id, e.agentBin, args...)
}

func (e *fleetEnv) devices() ([]api.Device, error) {
	resp, err := http.Get(e.hubURL() + "/api/devices")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []api.Device
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET /api/devices: %s: %s", resp.Status, b)
	}
	return out, json.Unmarshal(b, &out)
}

func (e *fleetEnv) device(id string) (api.Device, bool, error) {
	devs, err := e.devices()
	for _, d := range devs {
		if d.ID == id {
			return d, true, err
		}
	}
	return api.Device{}, false, err
}

// waitDevice waits until cond holds for device id.
func (e *fleetEnv) waitDevice(id string, within time.Duration, what string, cond func(api.Device) bool) api.Device {
	e.t.Helper()
	var got api.Device
	testenv.Eventually(e.t, within, func() string {
		d, ok, err := e.device(id)
		if err != nil {
			return err.Error()
		}
		if !ok {
			return "device " + id + " not in /api/devices"
		}
		got = d
		if !cond(d) {
			return fmt.Sprintf("device %s: want %s, have online=%v state=%s epoch=%d", id, what, d.Online, d.State, d.Epoch)
		}
		return ""
	})
	return got
}

// run runs the pifleet CLI and returns its output and exit code.
func (e *fleetEnv) run(args ...string) (string, int) {
	cmd := exec.Command(e.pifleet, args...)
	cmd.Env = append(cmd.Environ(), "PIFLEET_HUB="+e.hubURL())
	out, _ := cmd.CombinedOutput()
	return string(out), cmd.ProcessState.ExitCode()
}

// client connects a plain MQTT client to the test's broker (to inject
// stale or malformed messages as an attacker or a broken agent would).
func (e *fleetEnv) client() mqtt.Client {
	e.t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(e.brokerURL).SetClientID(fmt.Sprintf("test-%d", time.Now().UnixNano())).SetConnectTimeout(5 * time.Second))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		e.t.Fatalf("test client connect to %s: %v", e.brokerURL, tok.Error())
	}
	e.t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func publish(t testing.TB, c mqtt.Client, topic string, payload []byte, retained bool) {
	t.Helper()
	tok := c.Publish(topic, 1, retained, payload)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

func hasAddress(d api.Device) bool {
	for _, a := range d.Addresses {
		if a.Address != "" {
			return true
		}
	}
	return false
}

func lines(s string) []string { return strings.Split(strings.TrimSpace(s), "\n") }

// alive reports whether the process is still running.
func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// startAgentWith starts an agent with its own --broker list (comma
// separated: it moves to the next when one dies).
func (e *fleetEnv) startAgentWith(id, brokers string, extra ...string) *proc {
	save := e.brokerURL
	defer func() { e.brokerURL = save }()
	e.brokerURL = brokers
	return e.startAgent(id, extra...)
}
