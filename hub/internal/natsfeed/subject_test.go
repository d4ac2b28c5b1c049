package natsfeed

import (
	"testing"

	"github.com/nats-io/nats.go"
)

func TestFilterSubject(t *testing.T) {
	for _, tc := range []struct{ filter, want string }{
		{"pifleet/v1/devices/+/state", "$MQTT.rmsgs.pifleet.v1.devices.*.state"},
		{"pifleet/v1/devices/+/status", "$MQTT.rmsgs.pifleet.v1.devices.*.status"},
		{"pifleet/v1/devices/pi.kitchen/state", "$MQTT.rmsgs.pifleet.v1.devices.pi//kitchen.state"},
		{"pifleet/v1/#", "$MQTT.rmsgs.pifleet.v1.>"},
		{"pifleet/v1//x", ""},
		{"/pifleet", ""},
		{"pifleet/", ""},
		{"pifleet/a b", ""},
		{"pifleet/#/x", ""},
		{"pifleet/a+", ""},
		{"pifleet/a*", ""},
	} {
		got, err := filterSubject(tc.filter)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("filterSubject(%q): got %q, %v, want %q", tc.filter, got, err, tc.want)
		}
	}
}

// subjectTopic is nats-server's natsSubjectToMQTTTopic (mqtt.go), applied
// to the subjects its mqttToNATSSubjectConversion makes of these topics.
func TestSubjectTopic(t *testing.T) {
	for _, tc := range []struct{ subject, want string }{
		{"$MQTT.rmsgs.pifleet.v1.devices.pi1.state", "pifleet/v1/devices/pi1/state"},
		{"$MQTT.rmsgs.pifleet.v1.devices.pi//kitchen.state", "pifleet/v1/devices/pi.kitchen/state"},
		{"$MQTT.rmsgs.a.b////c.d", "a/b..c/d"},
		{"$MQTT.rmsgs./.a", "/a"},     // leading '/'
		{"$MQTT.rmsgs.a./", "a/"},     // trailing '/'
		{"$MQTT.rmsgs.a./.b", "a//b"}, // doubled '/'
	} {
		if got := subjectTopic(tc.subject); got != tc.want {
			t.Errorf("subjectTopic(%q): got %q, want %q", tc.subject, got, tc.want)
		}
	}
}

// The topic header wins; without it the subject is mapped back.
func TestTopicOf(t *testing.T) {
	with := &nats.Msg{Subject: "$MQTT.rmsgs.x.y", Header: nats.Header{headerTopic: []string{"pifleet/v1/devices/a.b/state"}}}
	without := &nats.Msg{Subject: "$MQTT.rmsgs.pifleet.v1.devices.a//b.status"}
	for _, tc := range []struct {
		m    *nats.Msg
		want string
	}{{with, "pifleet/v1/devices/a.b/state"}, {without, "pifleet/v1/devices/a.b/status"}} {
		if got := topicOf(fakeMsg{tc.m}); got != tc.want {
			t.Errorf("topicOf(%s): got %q, want %q", tc.m.Subject, got, tc.want)
		}
	}
}

// fakeMsg is a jetstream.Msg made of a core message.
type fakeMsg struct{ m *nats.Msg }

func (f fakeMsg) Headers() nats.Header { return f.m.Header }
func (f fakeMsg) Subject() string      { return f.m.Subject }
