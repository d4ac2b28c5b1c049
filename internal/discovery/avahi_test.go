package discovery

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/testenv/netnstest"
)

// avahiService is a static avahi service file: avahi-daemon advertises a
// pifleet hub itself, so the browser is checked against another stack's
// real answers.
const avahiService = `<?xml version="1.0" standalone='no'?>
<!DOCTYPE service-group SYSTEM "avahi-service.dtd">
<service-group>
  <name>avahi hub</name>
  <service>
    <type>_pifleet._tcp</type>
    <port>9443</port>
    <txt-record>v=1</txt-record>
    <txt-record>enrol=9443</txt-record>
    <txt-record>mqtt=9883</txt-record>
    <txt-record>pin=fedcba9876543210</txt-record>
  </service>
</service-group>
`

// startAvahi runs Debian's avahi-daemon in ns as on a Raspberry Pi OS
// machine (it holds UDP 5353), without D-Bus and with its runtime
// directory and service directory private to it: a mount namespace of its
// own gets a tmpfs /run and the test's services directory over
// /etc/avahi/services. It returns once avahi says it has started.
func startAvahi(t testing.TB, ns *netnstest.NS, hostName, service string) *child {
	t.Helper()
	daemon := testenv.RequireCommand(t, "avahi-daemon", "avahi-daemon")
	unshare := testenv.RequireCommand(t, "unshare", "util-linux")
	dir := t.TempDir()
	conf := filepath.Join(dir, "avahi-daemon.conf")
	services := filepath.Join(dir, "services")
	write(t, conf, "[server]\nhost-name="+hostName+"\nuse-ipv4=yes\nuse-ipv6=no\nenable-dbus=no\n"+
		"[publish]\npublish-hinfo=no\npublish-workstation=no\n")
	if err := os.Mkdir(services, 0o755); err != nil {
		t.Fatal(err)
	}
	if service != "" {
		write(t, filepath.Join(services, "pifleet.service"), service)
	}
	script := `mount -t tmpfs tmpfs /run && mkdir /run/avahi-daemon && mount --bind "$2" /etc/avahi/services &&
exec "$3" -f "$1" --no-drop-root --no-chroot --no-rlimits --no-proc-title`
	cmd := ns.Command(unshare, "--mount", "--propagation", "private", "sh", "-c", script, "sh", conf, services, daemon)
	c := startChild(t, "avahi-daemon in "+ns.Name, cmd)
	c.waitLine("Server startup complete", 15*time.Second)
	if service != "" {
		c.waitLine(`Service "avahi hub"`, 15*time.Second)
	}
	return c
}

func write(t testing.TB, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// With avahi-daemon holding 5353 on both machines, as on Raspberry Pi OS,
// the hub still advertises and the Pi still browses; the Pi finds both
// the pifleet hub and the one avahi advertises, and avahi sees no conflict.
func TestNetnsBesideAvahi(t *testing.T) {
	hub, pi := lan(t, true, false)
	avHub := startAvahi(t, hub, "avahi-hub", avahiService)
	avPi := startAvahi(t, pi, "avahi-pi", "")
	advertiseIn(t, hub, testService)
	hubs := findIn(t, pi)
	t.Logf("found %+v", hubs)
	i := slices.IndexFunc(hubs, func(h Hub) bool { return h.Instance == "avahi hub" })
	if i < 0 {
		t.Fatalf("the hub avahi advertises was not found: %+v", hubs)
	}
	av := hubs[i]
	if av.EnrolPort != 9443 || av.MQTTPort != 9883 || av.CAPin != "fedcba9876543210" ||
		!slices.Contains(av.Addrs, netip.MustParseAddr("192.0.2.1")) {
		t.Errorf("avahi's hub: got %+v, want enrol 9443, mqtt 9883, pin fedcba9876543210 at 192.0.2.1", av)
	}
	checkFound(t, slices.Delete(slices.Clone(hubs), i, i+1), "192.0.2.1")
	for _, c := range []*child{avHub, avPi} {
		if out := strings.ToLower(c.output()); strings.Contains(out, "conflict") {
			t.Errorf("%s reports a conflict:\n%s", c.name, c.output())
		}
	}
}
