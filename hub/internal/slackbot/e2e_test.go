package slackbot

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/chat"
	"github.com/pifleet/pifleet/hub/internal/fleetserver"
	sbt "github.com/pifleet/pifleet/hub/internal/slackbot/slackbottest"
	"github.com/pifleet/pifleet/internal/testenv"
)

// TestEndToEndFleetInSlack runs the real hub (embedded broker, fleet view,
// command engine) in process, a real pifleet-agent binary against its
// broker, and the Slack adapter against the fake workspace: a mention of
// `fleet` gets a threaded Block Kit answer listing the agent, and killing
// the agent posts an offline alert.
func TestEndToEndFleetInSlack(t *testing.T) {
	agentBin := testenv.Binary(t, "./agent", "pifleet-agent")
	mqttPort := testenv.FreePort(t)
	hubLog := &testenv.SyncBuffer{}
	ready := make(chan *fleetserver.Hub, 1)
	h, err := fleetserver.New(fleetserver.Config{
		MQTTListen: fmt.Sprintf("127.0.0.1:%d", mqttPort), HTTPListen: "127.0.0.1:0",
		KeepAlive: 10 * time.Second, Logger: testLogger(hubLog),
		Ready: func(h *fleetserver.Hub) { ready <- h },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	hubDone := make(chan error, 1)
	go func() { hubDone <- h.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-hubDone; err != nil {
			t.Errorf("hub Run: %v", err)
		}
		if t.Failed() {
			t.Logf("--- hub log:\n%s", hubLog.String())
		}
	})
	select {
	case <-ready:
	case err := <-hubDone:
		t.Fatalf("hub stopped: %v\n%s", err, hubLog.String())
	case <-time.After(wait):
		t.Fatalf("hub not ready within %v:\n%s", wait, hubLog.String())
	}

	agentOut := &testenv.SyncBuffer{}
	agent := exec.Command(agentBin, "--broker", fmt.Sprintf("mqtt://127.0.0.1:%d", mqttPort), "--id", "pi-slack", "--keepalive", "10s", "--console-issue", "off", "--log-level", "debug")
	agent.Stdout, agent.Stderr = agentOut, agentOut
	if err := agent.Start(); err != nil {
		t.Fatalf("start agent: %v", err)
	}
	agentDone := make(chan struct{})
	go func() { _ = agent.Wait(); close(agentDone) }()
	t.Cleanup(func() {
		_ = agent.Process.Kill()
		<-agentDone
		if t.Failed() {
			t.Logf("--- agent output:\n%s", agentOut.String())
		}
	})
	testenv.Eventually(t, 30*time.Second, func() string {
		if d, ok := h.Fleet.Get("pi-slack"); !ok || !d.Online() {
			return "agent pi-slack not online in the hub's fleet view"
		}
		return ""
	})

	ws := sbt.New(t)
	cfg := testConfig(ws)
	cfg.AlertChannel = "CALERTS"
	eng := &gated{Asker: h.Engine, gate: make(chan struct{})}
	start(t, ws, cfg, eng, h.Fleet)

	env := ws.Mention("EvE2E", "U1", "C1", "1700000100.000100", "fleet")
	// The real engine answers in microseconds, a race with the ack on the
	// fake workspace's side; holding it until the ack arrived shows that
	// the ack does not wait for the work.
	ack := waitAck(t, ws, env)
	close(eng.gate)
	post := waitPosts(t, ws, sbt.KindPost, 1, inThread("C1", "1700000100.000100"))[0]
	if ack.Seq > post.Seq {
		t.Errorf("ack #%d not before the answer #%d", ack.Seq, post.Seq)
	}
	types := blockTypes(t, post.Blocks)
	if len(types) < 2 || types[0] != "header" || types[1] != "section" {
		t.Errorf("answer blocks = %v, want a header and sections", types)
	}
	blocks := text(post.Blocks)
	if !strings.Contains(blocks, "*pi-slack*") || !strings.Contains(blocks, "1/1 online") {
		t.Errorf("the fleet answer does not list pi-slack as online:\n%s", blocks)
	}
	if !strings.Contains(post.Text, "pi-slack") {
		t.Errorf("fallback text %q does not name pi-slack", post.Text)
	}

	// The Pi's Where button asks `where pi-slack` for whoever presses it,
	// and the real engine's answer follows in the thread.
	if !strings.Contains(string(post.Blocks), `"value":"where pi-slack"`) {
		t.Fatalf("no Where button for pi-slack in %s", post.Blocks)
	}
	ws.Click("U1", post, ActionRun, "where pi-slack")
	where := waitPosts(t, ws, sbt.KindPost, 2, inThread("C1", "1700000100.000100"))[1]
	if w := text(where.Blocks); !strings.Contains(w, "pi-slack is online") || !strings.Contains(w, "<@U1> asked `where pi-slack` with a button") {
		t.Errorf("the Where button's answer:\n%s", w)
	}

	// A typo gets "did you mean pi-slack?" and a button that runs it.
	ws.Mention("EvE2E2", "U1", "C1", "1700000101.000100", "health pi-slak")
	typo := waitPosts(t, ws, sbt.KindPost, 1, inThread("C1", "1700000101.000100"))[0]
	if !strings.Contains(typo.Text, `did you mean "pi-slack"?`) || !strings.Contains(string(typo.Blocks), `"value":"health pi-slack"`) {
		t.Fatalf("the typo's answer has no button for the suggestion: %s", typo.Blocks)
	}
	ws.Click("U1", typo, ActionRun, "health pi-slack")
	health := waitPosts(t, ws, sbt.KindPost, 2, inThread("C1", "1700000101.000100"))[1]
	if h := text(health.Blocks); !strings.Contains(h, "Health of pi-slack (online)") {
		t.Errorf("the suggestion's button answered:\n%s", h)
	}

	// Kill the agent: the broker publishes its will, the fleet marks it
	// offline, and the alert channel hears of it once.
	if err := agent.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// (It may have reported health problems before, e.g. an unsynced clock.)
	waitPosts(t, ws, sbt.KindPost, 1, func(r sbt.Record) bool {
		return r.Channel == "CALERTS" && strings.Contains(r.Text, "pi-slack lost its connection")
	})
}

// gated holds the real engine's answers until gate is closed.
type gated struct {
	Asker
	gate chan struct{}
}

func (g *gated) Ask(ctx context.Context, r chat.Request) chat.Reply {
	select {
	case <-g.gate:
		return g.Asker.Ask(ctx, r)
	case <-ctx.Done():
		return chat.Reply{Text: "cancelled", Problem: true}
	}
}
