package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netns"

	"github.com/pifleet/pifleet/internal/discovery"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/testenv/netnstest"
)

// inNS runs fn on an OS thread switched into ns, so the sockets fn opens
// live there. The thread is never handed back (no UnlockOSThread): it
// dies with the goroutine instead of carrying the namespace elsewhere.
func inNS[T any](t testing.TB, ns *netnstest.NS, fn func() (T, error)) (T, error) {
	t.Helper()
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(ns.Handle); err != nil {
			ch <- result{err: fmt.Errorf("enter namespace %s: %w", ns.Name, err)}
			return
		}
		v, err := fn()
		ch <- result{v, err}
	}()
	r := <-ch
	return r.v, r.err
}

// findFrom runs discovery.Find on the Pi's side of the LAN.
func findFrom(t testing.TB, ns *netnstest.NS, timeout time.Duration) []discovery.Hub {
	t.Helper()
	hubs, err := inNS(t, ns, func() ([]discovery.Hub, error) { return discovery.Find(context.Background(), timeout) })
	if err != nil {
		t.Fatalf("discovery.Find in %s: %v", ns.Name, err)
	}
	return hubs
}

var caPinLine = regexp.MustCompile(`ca_pin=([0-9a-f]{64})`)

// caPin is the fleet CA's pin as the hub logs it.
func caPin(t testing.TB, p *proc) string {
	t.Helper()
	m := caPinLine.FindStringSubmatch(p.out.String())
	if m == nil {
		t.Fatalf("%s logged no ca_pin:\n%s", p.name, p.out.String())
	}
	return m[1]
}

// mdnsLAN is the hub's machine and a Pi's on one LAN (netnstest.Pair),
// with the same addresses as the enrolment test.
func mdnsLAN(t *testing.T) (hubNS, piNS *netnstest.NS) {
	hubNS, piNS = netnstest.Pair(t)
	hubNS.IP("addr", "add", hubAddr+"/24", "dev", "va")
	piNS.IP("addr", "add", piAddr+"/24", "dev", "vb")
	return hubNS, piNS
}

// startMDNSHub starts `pifleet hub` in ns and waits until its enrolment
// listener is up and it has decided about mDNS.
func startMDNSHub(t *testing.T, ns *netnstest.NS, name string, args ...string) *proc {
	t.Helper()
	api := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	p := startCmd(t, name, ns.Command(binPifleet(t), append([]string{"hub", "--http-listen", api,
		"--state-dir", t.TempDir(), "--log-level", "debug"}, args...)...))
	testenv.Eventually(t, 30*time.Second, func() string {
		out := p.out.String()
		if !p.alive() {
			t.Fatalf("%s exited:\n%s", name, out)
		}
		if !strings.Contains(out, "enrolment listening") || !strings.Contains(out, "advertising the hub on the LAN") {
			return name + " has not started its enrolment listener and decided about mDNS yet"
		}
		return ""
	})
	return p
}

// A hub whose MQTT listener is on the LAN advertises itself (--mdns auto):
// a Pi finds it by mDNS, with its enrolment and MQTT ports and the fleet
// CA's pin, and hears its goodbye when it stops.
func TestNetnsMDNSHubFoundOnTheLAN(t *testing.T) {
	hubNS, piNS := mdnsLAN(t)
	hub := startMDNSHub(t, hubNS, "hub", "--mqtt-listen", hubAddr+":8883")
	pin := caPin(t, hub)
	hubs := findFrom(t, piNS, 3*time.Second)
	if len(hubs) != 1 {
		t.Fatalf("found %d hubs, want 1: %+v", len(hubs), hubs)
	}
	h := hubs[0]
	if !strings.HasPrefix(h.Instance, "hub on ") || h.EnrolPort != 8443 || h.MQTTPort != 8883 || !h.MatchesPin(pin) ||
		!slices.Contains(h.Addrs, netip.MustParseAddr(hubAddr)) {
		t.Fatalf("found %+v, want \"hub on …\" at %s, enrol 8443, mqtt 8883, pin %.16s", h, hubAddr, pin)
	}
	if strings.Contains(hub.out.String(), "not advertising") {
		t.Errorf("the hub says it does not advertise:\n%s", hub.out.String())
	}
	goodbye := listenForGoodbye(t, piNS)
	hub.kill(syscall.SIGTERM)
	select {
	case err := <-goodbye:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no mDNS goodbye (PTR _pifleet._tcp with TTL 0) within 15s of stopping the hub")
	}
}

// listenForGoodbye joins the mDNS group on the Pi's side and reports the
// first goodbye of a _pifleet._tcp instance (or why it cannot listen).
func listenForGoodbye(t testing.TB, ns *netnstest.NS) <-chan error {
	t.Helper()
	c, err := inNS(t, ns, func() (*net.UDPConn, error) {
		ifi, err := net.InterfaceByName("vb")
		if err != nil {
			return nil, err
		}
		return net.ListenMulticastUDP("udp4", ifi, &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353})
	})
	if err != nil {
		t.Fatalf("listen for mDNS in %s: %v", ns.Name, err)
	}
	t.Cleanup(func() { c.Close() })
	ch := make(chan error, 1)
	go func() {
		buf := make([]byte, 9000)
		for {
			n, err := c.Read(buf)
			if err != nil {
				ch <- errors.New("mDNS listener closed before a goodbye")
				return
			}
			var m dns.Msg
			if m.Unpack(buf[:n]) != nil || !m.Response {
				continue
			}
			for _, rr := range m.Answer {
				if p, ok := rr.(*dns.PTR); ok && strings.EqualFold(p.Hdr.Name, "_pifleet._tcp.local.") && p.Hdr.Ttl == 0 {
					ch <- nil
					return
				}
			}
		}
	}()
	return ch
}

// The hub does not advertise what Pis on the LAN cannot reach: with its
// MQTT listener on loopback (--mdns auto), or with --mdns off. --mdns on
// advertises the same loopback hub: the mode is the only difference.
func TestNetnsMDNSOnlyOffLoopbackOrAsked(t *testing.T) {
	hubNS, piNS := mdnsLAN(t)
	loopback := []string{"--mqtt-listen", "127.0.0.1:1883", "--enrol-listen", enrolAddr}

	p := startMDNSHub(t, hubNS, "hub on loopback", loopback...)
	if hubs := findFrom(t, piNS, 3*time.Second); len(hubs) != 0 {
		t.Errorf("a hub with MQTT on loopback was advertised: %+v", hubs)
	}
	if !strings.Contains(p.out.String(), "not advertising the hub on the LAN") {
		t.Errorf("the hub on loopback did not say why it does not advertise:\n%s", p.out.String())
	}
	p.kill(syscall.SIGTERM)

	p = startMDNSHub(t, hubNS, "hub with --mdns off", "--mqtt-listen", hubAddr+":8883", "--mdns", "off")
	if hubs := findFrom(t, piNS, 3*time.Second); len(hubs) != 0 {
		t.Errorf("a hub with --mdns off was advertised: %+v", hubs)
	}
	p.kill(syscall.SIGTERM)

	p = startMDNSHub(t, hubNS, "hub on loopback with --mdns on", append(loopback, "--mdns", "on")...)
	hubs := findFrom(t, piNS, 3*time.Second)
	if len(hubs) != 1 || hubs[0].MQTTPort != 1883 || hubs[0].EnrolPort != 8443 || !hubs[0].MatchesPin(caPin(t, p)) {
		t.Errorf("--mdns on: found %+v, want the hub with mqtt 1883, enrol 8443", hubs)
	}
}
