package e2e

import (
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/api"
	"github.com/pifleet/pifleet/internal/testenv"
)

// TestCtrlCIsCleanAndQuiet: the usual session of an operator with the
// embedded broker (issue 15). The hub starts (twice: the second time on
// its broker's stored data), a port probe touches the broker, an agent
// connects, Ctrl-C (SIGINT) stops the agent, which leaves its Pi offline,
// not lost; Ctrl-C stops the hub with another agent still connected. The
// hub's log, at the default level, has no warning or error, no line
// without a message and no kilobyte-long packet dump.
func TestCtrlCIsCleanAndQuiet(t *testing.T) {
	e := newEnv(t, brokers[0])
	e.hub.kill(syscall.SIGTERM) // newEnv's hub logs at debug; this test reads the default level
	var logs []string
	startQuietHub := func() *proc {
		p := start(t, "hub (info)", e.pifleet, "hub", "--http-listen", fmt.Sprintf("127.0.0.1:%d", e.httpPort),
			"--state-dir", e.stateDir, "--mqtt-listen", fmt.Sprintf("127.0.0.1:%d", e.mqttPort))
		testenv.WaitTCP(t, fmt.Sprintf("127.0.0.1:%d", e.httpPort), 15*time.Second, p.out)
		e.hub = p
		return p
	}
	for round := 1; round <= 2; round++ {
		hub := startQuietHub()
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", e.mqttPort)); err == nil {
			c.Close() // a health check or port scan: connect, say nothing
		}
		id := fmt.Sprintf("pi-ctrlc-%d", round)
		a := e.startAgent(id)
		e.waitDevice(id, 20*time.Second, "online", func(d api.Device) bool { return d.Online })
		a.kill(syscall.SIGINT)
		if code := a.exitCode(); code != 0 {
			t.Errorf("agent exit code after SIGINT = %d, want 0", code)
		}
		e.waitDevice(id, 10*time.Second, "offline after Ctrl-C (a clean stop, not lost)", func(d api.Device) bool { return d.State == "offline" })

		b := e.startAgent(id + "-stays")
		e.waitDevice(id+"-stays", 20*time.Second, "online", func(d api.Device) bool { return d.Online })
		hub.kill(syscall.SIGINT)
		if code := hub.exitCode(); code != 0 {
			t.Errorf("hub exit code after SIGINT = %d, want 0", code)
		}
		b.kill(syscall.SIGTERM)
		logs = append(logs, strings.Split(strings.TrimSpace(hub.out.String()), "\n")...)
	}
	for _, l := range logs {
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") || strings.Contains(l, `msg=""`) ||
			strings.Contains(l, "failed to get data") || strings.Contains(l, "pk={") || len(l) > 400 {
			t.Errorf("hub log line on a normal start and Ctrl-C: %s", l)
		}
	}
	if !strings.Contains(strings.Join(logs, "\n"), "pifleet hub stopped") {
		t.Errorf("hub did not log its clean stop:\n%s", strings.Join(logs, "\n"))
	}
}
