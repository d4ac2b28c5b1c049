package dispatch

import (
	"errors"
	"fmt"
	"slices"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pifleet/pifleet/hub/internal/fleet"
	"github.com/pifleet/pifleet/internal/wire"
)

// Paho adapts a paho client to Publisher. client is a func because the
// hub creates its client only when it runs.
func Paho(client func() mqtt.Client) Publisher { return pahoPublisher{client} }

type pahoPublisher struct{ client func() mqtt.Client }

func (p pahoPublisher) Publish(topic string, qos byte, retained bool, payload []byte) error {
	c := p.client()
	if c == nil {
		return errors.New("not connected to the MQTT broker")
	}
	tok := c.Publish(topic, qos, retained, payload)
	if !tok.WaitTimeout(10 * time.Second) {
		return fmt.Errorf("publish %s: no acknowledgement from the broker within 10s", topic)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	return nil
}

// Subscribe subscribes c to this hub's results (register it with the
// hub's OnConnect: the session is clean, so every reconnect renews it,
// and the broker then re-sends any retained finals the hub missed).
//
// A SUBACK can refuse a filter with a failure code that paho does not
// report as an error, and a refusal may pass: a broker may answer "packet
// identifier in use" (0x91) when the client's SUBSCRIBE id equals one of
// its own unacknowledged PUBLISH ids (e.g. retained states it is still
// sending). So the code is checked and the subscription retried.
func (d *Dispatcher) Subscribe(c mqtt.Client) {
	filter := wire.ResultFilter(d.o.ReplyTo)
	handler := func(_ mqtt.Client, m mqtt.Message) {
		d.log.Debug("result message", "topic", m.Topic(), "retained", m.Retained(), "bytes", len(m.Payload()))
		d.HandleResult(m.Topic(), m.Payload())
	}
	go func() {
		wait := 100 * time.Millisecond
		for attempt := 1; ; attempt++ {
			tok := c.Subscribe(filter, 1, handler)
			if !tok.WaitTimeout(10 * time.Second) {
				d.log.Error("subscribe to results: no SUBACK", "filter", filter)
			} else if err := tok.Error(); err != nil {
				d.log.Error("subscribe to results", "filter", filter, "err", err)
			} else if code := subackCode(tok, filter); code >= 0x80 {
				d.log.Warn("subscribe to results refused by the broker; retrying", "filter", filter, "code", fmt.Sprintf("0x%02x", code))
			} else {
				d.log.Debug("subscribed to results", "filter", filter)
				return
			}
			if !c.IsConnected() || attempt >= 20 {
				return // the next OnConnect subscribes again
			}
			time.Sleep(wait)
			wait = min(wait*2, 5*time.Second)
		}
	}()
}

func subackCode(tok mqtt.Token, filter string) byte {
	if st, ok := tok.(*mqtt.SubscribeToken); ok {
		return st.Result()[filter]
	}
	return 0
}

// FromFleet adapts the hub's fleet view to Fleet.
func FromFleet(f *fleet.Fleet) Fleet { return fleetView{f} }

type fleetView struct{ f *fleet.Fleet }

func (v fleetView) Resolve(target string) ([]string, error) { return v.f.Resolve(target) }

// Runs reports whether the device said (in its status) that it runs
// commands for tool.
func (v fleetView) Runs(id, tool string) bool {
	d, ok := v.f.Get(id)
	return ok && d.Status != nil && slices.Contains(d.Status.Tools, tool)
}

func (v fleetView) Online(id string) bool {
	d, ok := v.f.Get(id)
	return ok && d.Online()
}
