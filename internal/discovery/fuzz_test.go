package discovery

import (
	"net/netip"
	"testing"
)

// FuzzBrowse feeds arbitrary packets to the browser: it must not panic,
// and whatever it accepts must be a well-formed hub.
func FuzzBrowse(f *testing.F) {
	r := testRecords("hub on pi")
	f.Add(answerTo(f, r, testIPs))
	f.Add(pack(f, r.all(testIPs, false), nil))
	f.Add(pack(f, r.all(testIPs, true), nil))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		c := newBrowseCache()
		c.add(pkt, netip.MustParseAddr("192.0.2.9"), "vb")
		c.add(pkt, netip.MustParseAddr("fe80::9"), "vb")
		for _, h := range c.hubs() {
			if !validInstance(h.Instance) {
				t.Errorf("accepted instance %q", h.Instance)
			}
			if h.EnrolPort < 1 || h.EnrolPort > 65535 || h.MQTTPort < 1 || h.MQTTPort > 65535 {
				t.Errorf("accepted ports %d, %d", h.EnrolPort, h.MQTTPort)
			}
			if len(h.CAPin) != PinPrefixLen || !isHex(h.CAPin) {
				t.Errorf("accepted pin %q", h.CAPin)
			}
			if len(h.Addrs) == 0 || len(h.Addrs) > maxAddrsPerHost {
				t.Errorf("accepted %d addresses", len(h.Addrs))
			}
			for _, a := range h.Addrs {
				if !usable(a) {
					t.Errorf("accepted address %v", a)
				}
			}
		}
	})
}
