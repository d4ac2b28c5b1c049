package dispatch

// Hubs sharing a fleet share one reply-to and a job store in JetStream
// (hub/internal/jobs): a result reaches the asker through another hub
// when the hub that sent the command is gone, once. Real nats-server
// (the hub's embedded engine: MQTT and JetStream), real MQTT clients.

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pifleet/pifleet/hub/internal/chat"
	"github.com/pifleet/pifleet/hub/internal/jobs"
	"github.com/pifleet/pifleet/hub/internal/natsengine"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/wire"
)

type groupHub struct {
	d      *Dispatcher
	client mqtt.Client
	mu     sync.Mutex
	late   []Result
}

func (h *groupHub) lateResults() []Result {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Result(nil), h.late...)
}

func startGroupHub(t *testing.T, e *natsengine.Engine, store *jobs.Store, key ed25519.PrivateKey, id string) *groupHub {
	t.Helper()
	h := &groupHub{}
	d, err := New(Options{Hub: id, ReplyTo: "hubs-test", Jobs: store, TakeOverAfter: 300 * time.Millisecond, Key: key,
		Fleet: staticFleet{"pi1": true}, Publisher: Paho(func() mqtt.Client { return h.client }), Wait: 2 * time.Second,
		OnLateResult: func(r Result) { h.mu.Lock(); h.late = append(h.late, r); h.mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	h.d = d
	subscribed := make(chan struct{}, 1)
	h.client = mqtt.NewClient(mqtt.NewClientOptions().AddBroker(e.MQTTURL()).SetClientID(wire.ClientID(wire.ClientHub, id)).
		SetCleanSession(true).SetOnConnectHandler(func(c mqtt.Client) {
		tok := c.Subscribe(wire.ResultFilter("hubs-test"), 1, func(_ mqtt.Client, m mqtt.Message) { d.HandleResult(m.Topic(), m.Payload()) })
		tok.WaitTimeout(10 * time.Second)
		subscribed <- struct{}{}
	}))
	if tok := h.client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("hub %s connect: %v", id, tok.Error())
	}
	<-subscribed
	t.Cleanup(func() { h.client.Disconnect(0) })
	return h
}

// fakePi records the commands it gets and, when answer is set, answers
// each with a retained final to its reply-to.
type fakePi struct {
	c      mqtt.Client
	mu     sync.Mutex
	ids    map[string]int
	answer bool
	last   wire.Command
}

func startFakePi(t *testing.T, e *natsengine.Engine) *fakePi {
	t.Helper()
	p := &fakePi{ids: map[string]int{}}
	p.c = mqtt.NewClient(mqtt.NewClientOptions().AddBroker(e.MQTTURL()).SetClientID("pifleet-agent-pi1").SetCleanSession(true))
	if tok := p.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	t.Cleanup(func() { p.c.Disconnect(0) })
	tok := p.c.Subscribe(wire.CmdTopic("pi1"), 0, func(_ mqtt.Client, m mqtt.Message) {
		cmd, err := wire.DecodeCommand(m.Payload())
		if err != nil {
			return
		}
		p.mu.Lock()
		p.ids[cmd.ID]++
		p.last = cmd
		answer := p.answer
		p.mu.Unlock()
		if answer && p.ids[cmd.ID] == 1 {
			p.final(cmd)
		}
	})
	tok.WaitTimeout(10 * time.Second)
	return p
}

func (p *fakePi) final(cmd wire.Command) {
	b, _ := json.Marshal(wire.Final{V: 1, Kind: wire.KindFinal, ID: cmd.ID, Device: "pi1", Seq: 1, Outcome: wire.OutcomeExited, Output: "ran once\n"})
	p.c.Publish(wire.ResultTopic("pi1", cmd.ReplyTo, cmd.ID), 1, true, b).WaitTimeout(10 * time.Second)
}

func (p *fakePi) commands() (map[string]int, wire.Command) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := map[string]int{}
	for k, v := range p.ids {
		ids[k] = v
	}
	return ids, p.last
}

func TestSharedJobsAcrossHubs(t *testing.T) {
	e, err := natsengine.Start(context.Background(), natsengine.Options{MQTTListen: "127.0.0.1:0", NATSListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	nc, err := e.ConnectNATS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	store, err := jobs.Open(context.Background(), nc, 1)
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(nil)
	hub1 := startGroupHub(t, e, store, key, "hub1")
	hub2 := startGroupHub(t, e, store, key, "hub2")
	pi := startFakePi(t, e)
	req := chat.Request{User: "U7", Channel: "C9", Thread: "1700000000.000100", Source: "slack"}

	t.Run("the sending hub answers; the other stays quiet", func(t *testing.T) {
		pi.mu.Lock()
		pi.answer = true
		pi.mu.Unlock()
		r := hub1.d.Handle(context.Background(), req, []string{"pi1", "s3", "ls"})
		if r.Problem {
			t.Fatalf("reply %q", r.Text)
		}
		time.Sleep(3 * hub2.d.o.TakeOverAfter)
		if st := hub2.d.Stats(); st.TakenOver != 0 || len(hub2.lateResults()) != 0 || len(hub1.lateResults()) != 0 {
			t.Errorf("hub2 took over %d, late results hub1 %d hub2 %d; want none", st.TakenOver, len(hub1.lateResults()), len(hub2.lateResults()))
		}
	})

	t.Run("the sending hub is gone; another answers, once", func(t *testing.T) {
		pi.mu.Lock()
		pi.answer = false
		pi.mu.Unlock()
		hub1.d.Handle(context.Background(), req, []string{"pi1", "s3", "ls"}) // no answer within Wait
		ids, cmd := pi.commands()
		hub1.client.Disconnect(0) // hub1 dies with the command in flight
		pi.final(cmd)             // then the Pi finishes
		testenv.Eventually(t, 15*time.Second, func() string {
			if n := len(hub2.lateResults()); n != 1 {
				return fmt.Sprintf("hub2 has %d late results, want 1", n)
			}
			return ""
		})
		got := hub2.lateResults()[0]
		if got.ID != cmd.ID || got.Request.Channel != "C9" || got.Request.Thread != req.Thread || got.Request.User != "U7" || got.Output != "ran once\n" {
			t.Errorf("taken over %+v; want command %s with its request (channel C9, the thread, U7)", got, cmd.ID)
		}
		if ids[cmd.ID] < 1 {
			t.Errorf("the Pi never got %s", cmd.ID)
		}
		time.Sleep(3 * hub2.d.o.TakeOverAfter)
		if n := len(hub2.lateResults()); n != 1 || hub2.d.Stats().TakenOver != 1 {
			t.Errorf("hub2: %d late results, %d taken over; want 1 and 1", n, hub2.d.Stats().TakenOver)
		}
		if b, err := store.Get(context.Background(), cmd.ID); err != nil || b != nil {
			t.Errorf("job %s still shared after it was answered: %s %v", cmd.ID, b, err)
		}
	})
}
