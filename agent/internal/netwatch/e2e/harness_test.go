package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/testenv/netnstest"
	"github.com/pifleet/pifleet/internal/wire"
)

// Inside a fresh namespace every port is free.
const (
	mqttAddr = "127.0.0.1:1883"
	httpAddr = "127.0.0.1:8080"
)

// device is the part of the hub's /api/devices this test reads.
type device struct {
	ID         string           `json:"id"`
	Online     bool             `json:"online"`
	Addresses  []wire.Address   `json:"addresses"`
	Interfaces []wire.Interface `json:"interfaces"`
	Health     *wire.Health     `json:"health"`
}

// world is a namespace with a hub and an agent running in it.
type world struct {
	t      testing.TB
	ns     *netnstest.NS
	client *http.Client
	hubOut *testenv.SyncBuffer
	agOut  *testenv.SyncBuffer
}

func newWorld(t testing.TB, agentID string) *world {
	t.Helper()
	ns := netnstest.New(t)
	hubBin := testenv.Binary(t, "./hub", "pifleet")
	agentBin := testenv.Binary(t, "./agent", "pifleet-agent")
	w := &world{t: t, ns: ns, hubOut: &testenv.SyncBuffer{}, agOut: &testenv.SyncBuffer{}}
	w.client = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialIn(ctx, ns.Handle, network, addr)
		},
		DisableKeepAlives: false,
	}}
	w.start("hub", w.hubOut, hubBin, "hub", "--mqtt-listen", mqttAddr, "--http-listen", httpAddr, "--state-dir", t.TempDir())
	testenv.Eventually(t, 15*time.Second, func() string {
		if _, err := w.devices(); err != nil {
			return "hub API not up: " + err.Error() + "\n" + w.hubOut.String()
		}
		return ""
	})
	w.start("agent", w.agOut, agentBin, "--broker", "mqtt://"+mqttAddr, "--id", agentID,
		"--heartbeat", "30s", "--keepalive", "10s", "--console-issue", "off", "--log-level", "debug")
	return w
}

// start runs bin inside the namespace (ip netns exec: no shell).
func (w *world) start(name string, out *testenv.SyncBuffer, bin string, args ...string) {
	w.t.Helper()
	cmd := w.ns.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		w.t.Fatalf("start %s in %s: %v", name, w.ns.Name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	w.t.Cleanup(func() {
		stop(cmd, done)
		if w.t.Failed() {
			w.t.Logf("--- output of %s:\n%s", name, out.String())
		}
	})
}

func stop(cmd *exec.Cmd, done chan struct{}) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// dialIn opens a connection from inside the namespace: the socket is made
// on an OS thread switched into ns. The thread is never handed back to the
// scheduler (no UnlockOSThread), so it dies with the goroutine instead of
// carrying the namespace to other goroutines.
func dialIn(ctx context.Context, ns netns.NsHandle, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(ns); err != nil {
			ch <- result{nil, fmt.Errorf("enter namespace: %w", err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

func (w *world) devices() ([]device, error) {
	resp, err := w.client.Get("http://" + httpAddr + "/api/devices")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /api/devices: %s: %s", resp.Status, b)
	}
	var out []device
	return out, json.Unmarshal(b, &out)
}

func (w *world) device(id string) (device, error) {
	devs, err := w.devices()
	if err != nil {
		return device{}, err
	}
	for _, d := range devs {
		if d.ID == id {
			return d, nil
		}
	}
	return device{}, fmt.Errorf("device %s not in /api/devices", id)
}

// wait polls the hub until cond(device) returns "".
func (w *world) wait(id string, within time.Duration, cond func(device) string) device {
	w.t.Helper()
	var got device
	testenv.Eventually(w.t, within, func() string {
		d, err := w.device(id)
		if err != nil {
			return err.Error()
		}
		got = d
		return cond(d)
	})
	return got
}

func findAddr(d device, addr string) *wire.Address {
	for i := range d.Addresses {
		if d.Addresses[i].Address == addr {
			return &d.Addresses[i]
		}
	}
	return nil
}
