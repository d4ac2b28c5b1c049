package broker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/pifleet/pifleet/hub/internal/natsengine"
	"github.com/pifleet/pifleet/internal/link"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/transport"
	"github.com/pifleet/pifleet/internal/wire"
)

// levelLog keeps every record's level and message.
type levelLog struct {
	mu   sync.Mutex
	recs []string
}

func (l *levelLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *levelLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	line := r.Level.String() + " " + r.Message
	r.Attrs(func(a slog.Attr) bool { line += " " + a.String(); return true })
	l.recs = append(l.recs, line)
	return nil
}
func (l *levelLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *levelLog) WithGroup(string) slog.Handler      { return l }

func (l *levelLog) errors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.recs {
		if strings.HasPrefix(r, "ERROR") {
			out = append(out, r)
		}
	}
	return out
}

// TestAgentLinkUnderACL: the agent's real MQTT session, logged in as its
// device under the broker policy (the embedded nats engine and Mosquitto
// with the generated ACL), connects with no ERROR line and keeps its
// stale-death protection: a retained state from an earlier session with a
// higher epoch (a Pi whose clock went backwards) is read and answered
// with a birth above it — which needs the Pi to read its own state topic.
func TestAgentLinkUnderACL(t *testing.T) {
	f := newFleetPKI(t)
	e, err := natsengine.Start(t.Context(), natsengine.Options{MQTTListen: "127.0.0.1:0", NATSListen: "127.0.0.1:0", Credentials: f.creds,
		TLS: &transport.ServerFiles{CertFile: f.serverCert, KeyFile: f.srvKey, ClientCAFile: f.ca}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	m := writeMosquitto(t, f, "")
	for name, url := range map[string]string{
		"nats":      e.MQTTURL(),
		"mosquitto": fmt.Sprintf("mqtts://127.0.0.1:%d", m.Port),
	} {
		t.Run(name, func(t *testing.T) {
			const old = 1_795_000_000_000
			seed := mustConnect(t, url, f.as("pi-a"), wire.ClientID(wire.ClientAgent, "pi-a"))
			stale, _ := json.Marshal(wire.State{V: 1, State: wire.StateLost, Epoch: old})
			if tok := seed.Publish(wire.StateTopic("pi-a"), 1, true, stale); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
				t.Fatalf("seed the stale state: %v", tok.Error())
			}
			seed.Disconnect(50)
			t.Cleanup(func() { // the next broker's case starts clean
				// Right after the link's session ended, nats-server may still
				// be closing it and refuse the same client id (EOF): retry.
				var c *client
				testenv.Eventually(t, 20*time.Second, func() string {
					var err error
					if c, err = connect(url, f.as("pi-a"), wire.ClientID(wire.ClientAgent, "pi-a"), ""); err != nil {
						return "connect as pi-a again: " + err.Error()
					}
					return ""
				})
				c.Publish(wire.StateTopic("pi-a"), 1, true, []byte{}).WaitTimeout(20 * time.Second)
				c.Disconnect(50)
			})

			hub := mustConnect(t, url, f.as("hub"), "hub")
			births := make(chan wire.State, 16)
			hub.Subscribe(wire.StateTopic("pi-a"), 1, func(_ paho.Client, m paho.Message) {
				if st, err := wire.DecodeState(m.Payload()); err == nil && st.State == wire.StateOnline {
					births <- st
				}
			}).WaitTimeout(20 * time.Second)

			logs := &levelLog{}
			creds := f.as("pi-a")
			l, err := link.New(link.Options{Brokers: []string{url}, ID: "pi-a", Configure: creds.Apply,
				Logger: slog.New(logs), Now: func() time.Time { return time.Unix(5, 0) }})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- l.Run(ctx) }()
			defer func() { cancel(); <-done }()

			testenv.Eventually(t, 30*time.Second, func() string {
				select {
				case st := <-births:
					if st.Epoch > old {
						return ""
					}
					return fmt.Sprintf("a birth with epoch %d, want one above the stale session's %d", st.Epoch, old)
				default:
					return "no birth above the stale session's epoch yet"
				}
			})
			if errs := logs.errors(); len(errs) > 0 {
				t.Errorf("ERROR lines on a normal connect under the ACL:\n%s", strings.Join(errs, "\n"))
			}
		})
	}
}
