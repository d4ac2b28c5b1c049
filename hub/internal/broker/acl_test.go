package broker

import (
	"strings"
	"testing"

	"github.com/pifleet/pifleet/internal/credentials"
)

func TestIdentityACL(t *testing.T) {
	dev := Identity{RoleDevice, "pi-a"}
	hub := Identity{RoleHub, "hub"}
	dotted := Identity{RoleDevice, "pi.a"}
	for _, tc := range []struct {
		who   Identity
		write bool
		topic string
		want  bool
	}{
		{dev, true, "pifleet/v1/devices/pi-a/state", true},
		{dev, true, "pifleet/v1/devices/pi-a/status", true},
		{dev, true, "pifleet/v1/devices/pi-a/result/hub/c1", true},
		{dev, true, "pifleet/v1/devices/pi-a/cmd", false},
		{dev, true, "pifleet/v1/devices/pi-b/state", false},
		{dev, true, "pifleet/v1/devices/pi-a/other", false},
		{dev, true, "pifleet/v1/hubs/hub/presence", false},
		{dev, true, "elsewhere", false},
		{dev, false, "pifleet/v1/devices/pi-a/cmd", true},
		{dev, false, "pifleet/v1/devices/pi-b/cmd", false},
		{dev, false, "pifleet/v1/devices/+/cmd", false},
		{dev, false, "pifleet/v1/#", false},
		{dev, false, "#", false},
		{dev, false, "pifleet/v1/hubs/+/presence", true},
		{dev, false, "pifleet/v1/hubs/hub/presence", true},
		{dev, false, "pifleet/v1/devices/pi-b/status", false},
		{hub, true, "pifleet/v1/devices/pi-a/cmd", true},
		{hub, true, "pifleet/v1/hubs/hub/presence", true},
		{hub, true, "pifleet/v1/hubs/other/presence", false},
		{hub, true, "pifleet/v1/devices/pi-a/result/hub/c1", true},
		{hub, true, "pifleet/v1/devices/pi-a/result/other/c1", false},
		{hub, true, "pifleet/v1/devices/pi-a/state", false},
		{hub, false, "pifleet/v1/#", true},
		{hub, false, "#", false},
	} {
		var got bool
		if tc.write {
			got = tc.who.CanWrite(tc.topic)
		} else {
			got = tc.who.CanRead(tc.topic)
		}
		if got != tc.want {
			t.Errorf("%s %s write=%v %s: got %v, want %v", tc.who.Role, tc.who.ID, tc.write, tc.topic, got, tc.want)
		}
	}
	for _, tc := range []struct {
		who  Identity
		cid  string
		want bool
	}{
		{dev, "pifleet-agent-pi-a", true}, {dev, "pi-a", true}, {dev, "pifleet-agent-pi-b", false},
		{hub, "pifleet-hub-hub", true}, {hub, "pifleet-agent-pi-a", false},
		{dotted, "pifleet-agent-pi~a", true}, {dotted, "pifleet-agent-pi.a", true}, {dotted, "pi.a", true},
		{dotted, "pifleet-agent-pi-a", false}, {dotted, "pifleet-agent-pi~b", false}, {dev, "pifleet-agent-pi~a", false},
		{hub, "pifleet-agent-pi~a", false},
	} {
		if got := tc.who.ClientIDAllowed(tc.cid); got != tc.want {
			t.Errorf("%s client id %q: got %v, want %v", tc.who.ID, tc.cid, got, tc.want)
		}
	}
}

func TestCredentialsValidate(t *testing.T) {
	for _, tc := range []struct{ json, want string }{
		{`{"version":1,"hubs":[{"id":"hub"}],"devices":[{"id":"hub"}]}`, "appears twice"},
		{`{"version":1,"devices":[{"id":"a/b"}]}`, "invalid id"},
		{`{"version":1,"devices":[{"id":"pi","password_hash":"plain"}]}`, "not a $7$"},
		{`{"version":2}`, "version 2"},
		{`{"version":1,"extra":1}`, "unknown field"},
		{`{"version":1,"devices":[{"id":"pi"}]}`, ""},
	} {
		_, err := credentials.Parse([]byte(tc.json))
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: got %v, want %q", tc.json, err, tc.want)
		}
	}
}
