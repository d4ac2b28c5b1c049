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

// busConf is a system bus of its own for avahi-daemon and avahi-browse
// (they speak D-Bus), open to the root user the test runs as.
const busConf = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=/run/dbus/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`

// avahiBrowseScript starts a D-Bus system bus and avahi-daemon in a
// private /run, then asks avahi-browse for resolved _pifleet._tcp services
// (up to 10 times) and stops both daemons. Every wait is bounded.
const avahiBrowseScript = `set -u
mount -t tmpfs tmpfs /run && mkdir -p /run/dbus /run/avahi-daemon || exit 1
"$4" --config-file="$1" --nofork --nopidfile & DB=$!
trap 'kill $DB ${AV:-} 2>/dev/null; wait' EXIT
i=0; until [ -S /run/dbus/system_bus_socket ]; do
  i=$((i+1)); [ $i -lt 100 ] || { echo "error: no D-Bus socket"; exit 1; }; sleep 0.1
done
"$5" -f "$2" --no-drop-root --no-chroot --no-rlimits --no-proc-title >"$3" 2>&1 & AV=$!
i=0; until grep -q "Server startup complete" "$3"; do
  i=$((i+1)); [ $i -lt 150 ] || { echo "error: avahi-daemon did not start:"; cat "$3"; exit 1; }; sleep 0.1
done
i=0; while [ $i -lt 10 ]; do
  out=$(timeout 10 "$6" --resolve --terminate --parsable _pifleet._tcp)
  case "$out" in *"=;"*) printf "%s\n" "$out"; exit 0;; esac
  i=$((i+1))
done
echo "error: avahi-browse resolved no _pifleet._tcp service"; exit 1
`

// avahi-browse, the tool a Raspberry Pi OS user reaches for, sees and
// resolves the hub this package advertises: avahi-daemon parses our
// answers as its own.
func TestNetnsAvahiBrowseSeesHub(t *testing.T) {
	bus := testenv.RequireCommand(t, "dbus-daemon", "dbus")
	daemon := testenv.RequireCommand(t, "avahi-daemon", "avahi-daemon")
	browse := testenv.RequireCommand(t, "avahi-browse", "avahi-utils")
	unshare := testenv.RequireCommand(t, "unshare", "util-linux")
	hub, pi := lan(t, true, false)
	advertiseIn(t, hub, testService)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "bus.conf"), busConf)
	write(t, filepath.Join(dir, "avahi-daemon.conf"), "[server]\nhost-name=avahi-pi\nuse-ipv4=yes\nuse-ipv6=no\nenable-dbus=yes\n"+
		"[publish]\npublish-hinfo=no\npublish-workstation=no\n")
	cmd := pi.Command(unshare, "--mount", "--propagation", "private", "sh", "-c", avahiBrowseScript, "sh",
		filepath.Join(dir, "bus.conf"), filepath.Join(dir, "avahi-daemon.conf"), filepath.Join(dir, "avahi.log"), bus, daemon, browse)
	c := startChild(t, "avahi-browse in "+pi.Name, cmd)
	l := c.waitLine("=;", 2*time.Minute)
	// =;IFACE;PROTO;NAME;TYPE;DOMAIN;HOST;ADDRESS;PORT;TXT
	f := strings.SplitN(l, ";", 10)
	if len(f) != 10 || f[3] != `hub\032on\032pi-hub` || f[4] != "_pifleet._tcp" || f[7] != "192.0.2.1" || f[8] != "8443" {
		t.Fatalf("avahi-browse resolved %q, want hub on pi-hub at 192.0.2.1 port 8443", l)
	}
	for _, kv := range []string{`"v=1"`, `"enrol=8443"`, `"mqtt=8883"`, `"pin=` + testPin[:16] + `"`} {
		if !strings.Contains(f[9], kv) {
			t.Errorf("avahi-browse's TXT %s lacks %s", f[9], kv)
		}
	}
}
