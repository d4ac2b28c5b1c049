package dispatch

import (
	"errors"
	"fmt"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pifleet/pifleet/agent/wire"
	"github.com/pifleet/pifleet/hub/internal/fleet"
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
func (d *Dispatcher) Subscribe(c mqtt.Client) {
	tok := c.Subscribe(wire.ResultFilter(d.o.Hub), 1, func(_ mqtt.Client, m mqtt.Message) {
		d.HandleResult(m.Topic(), m.Payload())
	})
	go func() {
		if tok.WaitTimeout(10*time.Second) && tok.Error() != nil {
			d.log.Error("subscribe to results", "err", tok.Error())
		}
	}()
}

// FromFleet adapts the hub's fleet view to Fleet.
func FromFleet(f *fleet.Fleet) Fleet { return fleetView{f} }

type fleetView struct{ f *fleet.Fleet }

func (v fleetView) Resolve(target string) ([]string, error) { return v.f.Resolve(target) }

func (v fleetView) Online(id string) bool {
	d, ok := v.f.Get(id)
	return ok && d.Online()
}
