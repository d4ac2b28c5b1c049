package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/api"
	"github.com/pifleet/pifleet/internal/testenv"
)

// clusterHub is one `pifleet hub` whose embedded nats-server is
// a node of a three-node cluster.
type clusterHub struct {
	env  *fleetEnv // its HTTP API and CLI (env.hub is this process)
	mqtt string
}

// startCluster starts three hubs whose embedded nats-servers form one
// cluster on loopback (routes listed on every hub, its own included).
func startCluster(t *testing.T) []*clusterHub {
	t.Helper()
	pifleet, agent := binPifleet(t), binAgent(t)
	var routes []string
	var clusterPorts []int
	for range 3 {
		p := testenv.FreePort(t)
		clusterPorts = append(clusterPorts, p)
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	var hubs []*clusterHub
	for i := range 3 {
		e := &fleetEnv{t: t, pifleet: pifleet, agentBin: agent, httpPort: testenv.FreePort(t), mqttPort: testenv.FreePort(t),
			stateDir: t.TempDir()}
		e.brokerURL = fmt.Sprintf("mqtt://127.0.0.1:%d", e.mqttPort)
		args := []string{"hub", "--id", fmt.Sprintf("hub%d", i+1),
			"--http-listen", fmt.Sprintf("127.0.0.1:%d", e.httpPort), "--mqtt-listen", fmt.Sprintf("127.0.0.1:%d", e.mqttPort),
			"--state-dir", e.stateDir, "--log-level", "debug",
			"--cluster-listen", fmt.Sprintf("127.0.0.1:%d", clusterPorts[i]), "--cluster-routes", strings.Join(routes, ",")}
		e.hub = start(t, fmt.Sprintf("hub%d", i+1), pifleet, args...)
		hubs = append(hubs, &clusterHub{env: e, mqtt: e.brokerURL})
	}
	// The engines wait for each other (JetStream needs two of three for a
	// leader), so the HTTP APIs open once the cluster has formed.
	for _, h := range hubs {
		testenv.WaitTCP(t, fmt.Sprintf("127.0.0.1:%d", h.env.httpPort), 90*time.Second, h.env.hub.out)
	}
	return hubs
}

// brokersFrom lists every hub's MQTT URL starting with hub i's: an agent
// of hub i moves to the next one when its node dies.
func brokersFrom(hubs []*clusterHub, i int) string {
	var urls []string
	for k := range hubs {
		urls = append(urls, hubs[(i+k)%len(hubs)].mqtt)
	}
	return strings.Join(urls, ",")
}

// view is a hub's fleet as id → "online@epoch" (or the state).
func view(e *fleetEnv) (map[string]string, error) {
	devs, err := e.devices()
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, d := range devs {
		m[d.ID] = fmt.Sprintf("%s@%d", d.State, d.Epoch)
		if !d.Online {
			m[d.ID] = "not online:" + m[d.ID]
		}
	}
	return m, nil
}

// Three hubs, one cluster (each hub's embedded nats-server a node), one
// agent on each node with the others as failover. Every hub shows every
// Pi online; a hub killed with its node (kill -9: no wills) → its Pi is
// on another node and online again in every remaining view, which agree.
func TestClusterThreeHubs(t *testing.T) {
	hubs := startCluster(t)
	agents := map[string]*proc{}
	for i, h := range hubs {
		id := fmt.Sprintf("pi-n%d", i+1)
		agents[id] = h.env.startAgentWith(id, brokersFrom(hubs, i))
	}
	ids := make([]string, 0, len(agents))
	for id := range agents {
		ids = append(ids, id)
	}
	took := agree(t, 90*time.Second, hubs, ids, isOnline)
	t.Logf("three hubs agree on three online Pis %v after the APIs opened", took)
	// Steady state before the fault: every hub has its results
	// subscription (a JetStream consumer, made while the new cluster
	// still places its streams).
	testenv.Eventually(t, 60*time.Second, func() string {
		for _, h := range hubs {
			if !strings.Contains(h.env.hub.out.String(), "subscribed to results") {
				return h.env.hub.name + " has not subscribed to its results yet"
			}
		}
		return ""
	})
	before, _ := view(hubs[1].env)
	testenv.Eventually(t, 30*time.Second, func() string { return oneAlertLeader(hubs) })

	// Node 1 (and its hub) dies without a word.
	hubs[0].env.hub.kill(syscall.SIGKILL)
	killed := time.Now()
	rest := hubs[1:]
	// The Pi moves on. A node's first CONNECT after the loss can wait out
	// nats-server's 5 s JetStream API timeout while the streams elect new
	// leaders; then the agent tries the next node, after its backoff (seen
	// in CI: two such attempts, more than 20 s in all).
	testenv.Eventually(t, 60*time.Second, func() string {
		if strings.Count(agents["pi-n1"].out.String(), "msg=connected") < 2 {
			return "pi-n1 has not connected to another node"
		}
		return ""
	})
	reconnected := time.Since(killed)
	agree(t, 10*time.Second, rest, ids, func(id, state string) string {
		if p := isOnline(id, state); p != "" {
			return p
		}
		if id == "pi-n1" && state == before[id] {
			return "pi-n1 still shows its session on the dead node (" + state + ")"
		}
		return ""
	})
	t.Logf("node 1 killed: pi-n1 connected to another node after %v; both remaining views agree on its new session %v after that",
		reconnected, time.Since(killed)-reconnected)
	if out := agents["pi-n1"].out.String(); !strings.Contains(out, hubs[1].mqtt) && !strings.Contains(out, "connected component=link broker="+hubs[2].mqtt) {
		t.Errorf("pi-n1's log does not show it on another node:\n%s", out)
	}
	// Exactly one hub posts alerts (the "alerts" lease in JetStream); the
	// dead hub held it or not, one of the two left holds it within the
	// lease's 15 s TTL.
	testenv.Eventually(t, 30*time.Second, func() string { return oneAlertLeader(rest) })
	t.Logf("one alerts leader among the two hubs left %v after the kill", time.Since(killed))

	// The API and CLI answer from the hubs that are left.
	for _, h := range rest {
		out, code := h.env.run("devices")
		if code != 0 || strings.Count(out, "pi-n") != 3 {
			t.Errorf("pifleet devices on %s (exit %d):\n%s", h.env.hub.name, code, out)
		}
	}
	var d api.Device
	if code, err := httpGetJSON(rest[1].env.hubURL()+"/api/devices/pi-n2", &d); err != nil || code != 200 || !d.Online {
		t.Errorf("GET /api/devices/pi-n2 on hub3: %d %v %+v", code, err, d)
	}
}

// oneAlertLeader is "" when exactly one of the hubs holds the alerts
// lease (GET /api/stats).
func oneAlertLeader(live []*clusterHub) string {
	var held []string
	for _, h := range live {
		var st struct {
			Lease struct {
				Held bool `json:"held"`
			} `json:"alerts_lease"`
		}
		if code, err := httpGetJSON(h.env.hubURL()+"/api/stats", &st); err != nil || code != 200 {
			return fmt.Sprintf("GET /api/stats on %s: %d %v", h.env.hub.name, code, err)
		}
		if st.Lease.Held {
			held = append(held, h.env.hub.name)
		}
	}
	if len(held) != 1 {
		return fmt.Sprintf("hubs holding the alerts lease: %v, want one", held)
	}
	return ""
}
