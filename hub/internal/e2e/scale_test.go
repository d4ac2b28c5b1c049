package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/api"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/wire"
)

// Fleet-scale correctness (issue 11): 2,000 simulated Pis in two `pifleet
// sim` processes against the real hub, on the embedded broker and on
// Mosquitto. These are correctness tests with generous bounds; the speed
// and memory figures live in scripts/bench-fleet.sh and the README.
//
// The hub and the simulators are built without the race detector: a
// race-instrumented process dies past 8,128 live goroutines, and every
// simulated Pi or broker connection takes several.

const (
	scalePis       = 2000
	scaleHeartbeat = 5 * time.Second
	scaleKeepAlive = 4 * time.Second
)

func TestScaleEmbedded(t *testing.T) { testScale(t, brokers[0], nil, false) }

func TestScaleMosquitto(t *testing.T) {
	m := testenv.StartMosquitto(t, "")
	testScale(t, brokerKind{name: "mosquitto", external: func(testing.TB) string { return m.URL }}, m, true)
}

// TestScaleMosquittoTinyQueues: Mosquitto told to queue almost nothing
// per client (max_queued_messages 2, one message in flight), so any burst
// may be dropped on the way to the hub. The view must still be exact
// within one heartbeat and the silence limit.
func TestScaleMosquittoTinyQueues(t *testing.T) {
	m := testenv.StartMosquitto(t, "max_queued_messages 2\nmax_inflight_messages 1\n")
	testScale(t, brokerKind{name: "mosquitto-tiny", external: func(testing.TB) string { return m.URL }}, m, false)
}

// testScale runs the scenario; with strictDrops, Mosquitto must not drop a
// single message for the hub before the hub restart.
func testScale(t *testing.T, b brokerKind, mq *testenv.Mosquitto, strictDrops bool) {
	pifleet := testenv.PlainBinary(t, "./hub", "pifleet")
	e := newEnv(t, b, func(e *fleetEnv) { e.pifleet = pifleet })
	sims := [2]*proc{}
	for i := range sims {
		sims[i] = startSim(t, e, pifleet, i)
	}
	half := scalePis / 2
	waitCounts(t, e, 20*time.Second, "all Pis online", scalePis, 0)

	// Strangers and hiccups: deleted retained states, a status with an
	// inflated seq, a forged "lost" for a live session. The Pis re-publish
	// their birth or their next heartbeat wins; within one heartbeat
	// (plus slack for a loaded machine) the view is right again.
	c := e.client()
	for i := 0; i < 10; i++ {
		publish(t, c, wire.StateTopic(simID(i)), nil, true)
	}
	for i := 10; i < 20; i++ {
		d := mustDevice(t, e, simID(i))
		st := wire.Status{V: 1, ID: simID(i), Epoch: d.Epoch, Seq: 1 << 50,
			Addresses: []wire.Address{{Address: "198.51.100.250", Prefix: 24, Family: wire.IPv4, Interface: "eth0", Primary: true}}}
		b, _ := json.Marshal(st)
		publish(t, c, wire.StatusTopic(simID(i)), b, true)
	}
	for i := 20; i < 30; i++ {
		d := mustDevice(t, e, simID(i))
		b, _ := json.Marshal(wire.State{V: 1, State: wire.StateLost, Epoch: d.Epoch})
		publish(t, c, wire.StateTopic(simID(i)), b, true)
	}
	testenv.Eventually(t, 2*scaleHeartbeat+5*time.Second, func() string {
		devs, err := e.devices()
		if err != nil {
			return err.Error()
		}
		byID := map[string]api.Device{}
		for _, d := range devs {
			byID[d.ID] = d
		}
		for i := 0; i < 30; i++ {
			d, ok := byID[simID(i)]
			switch {
			case !ok:
				return simID(i) + " missing"
			case !d.Online:
				return simID(i) + " not online: " + d.State
			case i >= 10 && i < 20 && hasAddr(d, "198.51.100.250"):
				return simID(i) + " still shows the inflated-seq status"
			}
		}
		return countsProblem(devs, scalePis, 0)
	})

	// One simulator process dies: the broker publishes 1,000 wills at
	// once. Exact within 1.5 × keepalive + 5 s.
	sims[1].kill(syscall.SIGKILL)
	waitCounts(t, e, scaleKeepAlive*3/2+5*time.Second, "the killed half lost", half, half)
	sims[1] = startSim(t, e, pifleet, 1)
	waitCounts(t, e, 30*time.Second, "the half back", scalePis, 0)

	// Dropped wills: the broker dies (Mosquitto) or the hub with its
	// embedded broker is killed, and half the Pis die while it is down.
	// No will is ever published for them; the hub takes them as lost when
	// they stay silent (wire.SilenceAfter), and the rest come back.
	if mq != nil {
		mq.Kill()
		sims[1].kill(syscall.SIGKILL)
		mq.Restart(t)
	} else {
		e.hub.kill(syscall.SIGKILL)
		sims[1].kill(syscall.SIGKILL)
		e.startHub()
	}
	waitCounts(t, e, 90*time.Second, "the Pis that died with the broker lost, the rest back", half, half)

	// The hub restarts cleanly. Every Pi that is alive is shown online
	// again (≥ 99 % soon, all in the end) and the dead half stays lost —
	// except on the test's Mosquitto, which runs without persistence and
	// forgot the dead half when it was killed: the rebuilt view rightly
	// does not list them.
	wantLost := half
	if mq != nil {
		wantLost = 0
		// Every burst so far (births, 1,000 wills at once, a broker
		// restart) went through without a drop: the hub reads at QoS 0.
		// The retained replay after the hub restart below may overflow
		// Mosquitto's per-client queue (max_queued_messages); what it
		// drops there heals by the next heartbeat, which the wait checks.
		if n := strings.Count(mq.Log.String(), "are being dropped"); n != 0 && strictDrops {
			t.Errorf("Mosquitto dropped outgoing messages %d times before the hub restart:\n%s", n, mq.Log.String())
		}
	}
	e.hub.kill(syscall.SIGTERM)
	e.startHub()
	testenv.Eventually(t, 90*time.Second, func() string {
		devs, err := e.devices()
		if err != nil {
			return err.Error()
		}
		online, lost := tally(devs)
		if online*100 < half*99 || online > half || lost+online != half+wantLost {
			return fmt.Sprintf("after the hub restart: %d online, %d not online (want ≥ 99%% of %d online, %d lost)", online, lost, half, wantLost)
		}
		return ""
	})
	waitCounts(t, e, 90*time.Second, "every live Pi back after the hub restart", half, wantLost)
	if mq != nil {
		t.Logf("Mosquitto log lines about dropped messages: %d", strings.Count(mq.Log.String(), "are being dropped"))
	}
	t.Logf("hub stats: %s", stats(t, e))
}

// startSim starts shard i of 2 of the simulated fleet.
func startSim(t *testing.T, e *fleetEnv, pifleet string, i int) *proc {
	return start(t, fmt.Sprintf("sim %d/2", i), pifleet, "sim",
		"--agents", fmt.Sprint(scalePis), "--shard", fmt.Sprintf("%d/2", i), "--rate", "500",
		"--heartbeat", scaleHeartbeat.String(), "--keepalive", scaleKeepAlive.String(),
		"--broker", e.brokerURL, "--prefix", "sim-",
		"--source-addrs", fmt.Sprintf("127.0.0.%d-127.0.0.%d", 2+4*i, 5+4*i))
}

func simID(i int) string { return fmt.Sprintf("sim-%05d", i) }

func mustDevice(t *testing.T, e *fleetEnv, id string) api.Device {
	t.Helper()
	d, ok, err := e.device(id)
	if err != nil || !ok {
		t.Fatalf("device %s: ok=%v err=%v", id, ok, err)
	}
	return d
}

func hasAddr(d api.Device, addr string) bool {
	for _, a := range d.Addresses {
		if a.Address == addr {
			return true
		}
	}
	return false
}

func tally(devs []api.Device) (online, notOnline int) {
	for _, d := range devs {
		if d.Online {
			online++
		} else {
			notOnline++
		}
	}
	return online, notOnline
}

func countsProblem(devs []api.Device, wantOnline, wantLost int) string {
	online, lost := tally(devs)
	if online != wantOnline || lost != wantLost {
		return fmt.Sprintf("%d online, %d not online (want %d, %d)", online, lost, wantOnline, wantLost)
	}
	return ""
}

func waitCounts(t *testing.T, e *fleetEnv, within time.Duration, what string, online, lost int) {
	t.Helper()
	start := time.Now()
	testenv.Eventually(t, within, func() string {
		devs, err := e.devices()
		if err != nil {
			return err.Error()
		}
		if p := countsProblem(devs, online, lost); p != "" {
			return what + ": " + p
		}
		return ""
	})
	t.Logf("%s after %v", what, time.Since(start).Round(100*time.Millisecond))
}

func stats(t *testing.T, e *fleetEnv) string {
	resp, err := http.Get(e.hubURL() + "/api/stats")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b))
}
