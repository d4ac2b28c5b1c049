package hubd

import (
	"strings"
	"testing"
)

const testCAPin = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestMDNSPlan(t *testing.T) {
	enrolling := mdnsPlan{ID: "hub", Host: "pi-hub", MQTTListen: "0.0.0.0:8883", EnrolListen: "0.0.0.0:8443", CAPin: testCAPin}
	cases := []struct {
		name    string
		edit    func(*mdnsPlan)
		want    bool   // advertises
		reason  string // why not, when it does not
		wantErr string
	}{
		{"auto, off loopback, enrolling", func(*mdnsPlan) {}, true, "", ""},
		{"default mode is auto", func(p *mdnsPlan) { p.Mode = "" }, true, "", ""},
		{"auto on loopback", func(p *mdnsPlan) { p.MQTTListen = "127.0.0.1:1883" }, false, "loopback", ""},
		{"auto, default listener", func(p *mdnsPlan) { p.MQTTListen = "" }, false, "loopback", ""},
		{"auto on IPv6 loopback", func(p *mdnsPlan) { p.MQTTListen = "[::1]:1883" }, false, "loopback", ""},
		{"auto without enrolment", func(p *mdnsPlan) { p.EnrolListen, p.CAPin = "", "" }, false, "no enrolment", ""},
		{"off", func(p *mdnsPlan) { p.Mode = MDNSOff }, false, "off", ""},
		{"on, on loopback", func(p *mdnsPlan) { p.Mode, p.MQTTListen = MDNSOn, "127.0.0.1:1883" }, true, "", ""},
		{"on without enrolment", func(p *mdnsPlan) { p.Mode, p.CAPin = MDNSOn, "" }, false, "", "--mdns on: the hub advertises its enrolment listener"},
		{"unknown mode", func(p *mdnsPlan) { p.Mode = "yes" }, false, "", `--mdns "yes": want auto, on or off`},
		{"address nobody has", func(p *mdnsPlan) { p.MQTTListen = "198.51.100.77:8883" }, false, "", "no interface has the address 198.51.100.77"},
		{"bad port", func(p *mdnsPlan) { p.EnrolListen = "0.0.0.0:0" }, false, "", "enrolment listener"},
	}
	for _, tc := range cases {
		p := enrolling
		p.Mode = MDNSAuto
		tc.edit(&p)
		s, why, err := p.service()
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: got error %v, want one saying %q", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := s != nil; got != tc.want || !strings.Contains(why, tc.reason) {
			t.Errorf("%s: advertises %v (%q), want %v (%q)", tc.name, got, why, tc.want, tc.reason)
			continue
		}
		if s != nil && (s.Instance != "hub on pi-hub" || s.EnrolPort != 8443 || s.MQTTPort != 8883 && p.MQTTListen == enrolling.MQTTListen || s.CAPin != testCAPin) {
			t.Errorf("%s: got %+v", tc.name, *s)
		}
	}
}

func TestMDNSInstanceName(t *testing.T) {
	for _, tc := range []struct{ id, host, want string }{
		{"hub", "pi-hub", "hub on pi-hub"},
		{"hub", "", "hub"},
		{"hub", strings.Repeat("x", 70), "hub on " + strings.Repeat("x", 56)},
		{"hub", strings.Repeat("é", 40), "hub on " + strings.Repeat("é", 28)},
	} {
		if got := instanceName(tc.id, tc.host); got != tc.want {
			t.Errorf("instanceName(%q, %q) = %q, want %q", tc.id, tc.host, got, tc.want)
		}
	}
}
