package dispatch

// Issue 14's fault suite: the broker restarts while a real agent runs a
// command (the hub's own test of a hub restart mid-command is in
// e2e_test.go; here the hub stays and waits).

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/natsengine"
	"github.com/pifleet/pifleet/internal/testenv"
)

// The embedded engine (with its state dir, as the hub runs it) goes down
// just after the Pi starts a command and comes back after the command
// has ended: the agent holds its final (FinalRetry) until the broker is
// back, the hub, still waiting in Handle, reconnects and gets it within
// seconds, and the command ran once.
func TestDockerBrokerRestartMidCommand(t *testing.T) {
	e := newE2E(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	data := t.TempDir()
	var b *natsengine.Engine
	startBroker := func() {
		var err error
		if b, err = natsengine.Start(context.Background(), natsengine.Options{MQTTListen: addr, NATSListen: "127.0.0.1:0", StateDir: data}); err != nil {
			t.Fatalf("start the broker: %v", err)
		}
	}
	startBroker()
	t.Cleanup(func() { b.Close() })
	e.brokerURL = "mqtt://" + addr
	a := e.startAgent("pi1")
	h := e.startHub("a")
	e.waitOnline("pi1", true)

	before := a.count("msg=running")
	asked := make(chan string, 1)
	go func() { asked <- ask(h, "job", "U2", "pi1", "2").Text }()
	testenv.Eventually(t, 30*time.Second, func() string {
		if a.count("msg=running") == before {
			return "the Pi has not started the command"
		}
		return ""
	})
	b.Close()
	down := time.Now()
	time.Sleep(3 * time.Second) // the command ends while the broker is down
	startBroker()
	back := time.Now()
	t.Logf("broker down for %v", back.Sub(down).Round(time.Millisecond))
	select {
	case text := <-asked:
		took := time.Since(back)
		t.Logf("the hub answered %v after the broker came back", took.Round(time.Millisecond))
		// The agent's reconnect and final re-send back off to 2 s and 4 s
		// here, the hub's client to 4 s.
		if took > 20*time.Second {
			t.Errorf("the hub answered %v after the broker came back; want it within seconds", took.Round(time.Second))
		}
		if !strings.Contains(text, "pi1: ✅ exit 0") || !strings.Contains(text, "slept 2") {
			t.Errorf("the hub answered %q; want the command's result", text)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("no answer a minute after the broker came back; agent log:\n%s", a.log.String())
	}
	if !strings.Contains(a.log.String(), "publish final; retrying") {
		t.Errorf("the agent did not hold its final while the broker was down (the test did not test what it says):\n%s", a.log.String())
	}
	if n := a.count("msg=running") - before; n != 1 {
		t.Errorf("the command ran %d times, want once", n)
	}
}
