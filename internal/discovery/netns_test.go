package discovery

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/pifleet/pifleet/internal/testenv/netnstest"
)

// The namespace tests run roles of this test binary inside namespaces
// (ip netns exec), chosen by this variable: a process lives in one
// network namespace for good, which the Go runtime's threads cannot.
const roleEnv = "PIFLEET_DISCOVERY_ROLE"

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role))
	}
	os.Exit(m.Run())
}

// runRole is a child: "advertise" (Service as JSON in
// PIFLEET_DISCOVERY_SERVICE, until stdin closes), "find" (prints the hubs as
// JSON), "find-oneshot" (the same from a port other than 5353), "find-pin"
// (FindPin of PIFLEET_DISCOVERY_PIN), "watch" (prints "seen" when a hub appears and "gone" when it
// says goodbye), "ask" (one-shot questions, see ask) or "fake-hub" (see
// fakeHub).
func runRole(role string) int {
	ctx := context.Background()
	switch role {
	case "ask":
		return ask(strings.Fields(os.Getenv("PIFLEET_DISCOVERY_ASK")))
	case "fake-hub":
		return fakeHub()
	case "advertise":
		var s Service
		if err := json.Unmarshal([]byte(os.Getenv("PIFLEET_DISCOVERY_SERVICE")), &s); err != nil {
			fmt.Println("error:", err)
			return 1
		}
		stop, err := Advertise(ctx, s)
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		fmt.Println("advertising")
		io.Copy(io.Discard, os.Stdin)
		stop()
		fmt.Println("stopped")
	case "find-oneshot":
		browsePorts = []int{0}
		fallthrough
	case "find", "find-pin":
		var hubs []Hub
		var err error
		if g, err := time.ParseDuration(os.Getenv("PIFLEET_DISCOVERY_GRACE")); err == nil {
			matchGrace = g
		}
		if pin := os.Getenv("PIFLEET_DISCOVERY_PIN"); role == "find-pin" {
			hubs, err = FindPin(ctx, 10*time.Second, pin)
		} else {
			hubs, err = Find(ctx, 3*time.Second)
		}
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		b, _ := json.Marshal(hubs)
		fmt.Printf("hubs %s\n", b)
	case "watch":
		fmt.Println("watching")
		seen, gone := false, false
		_, err := browse(ctx, time.Minute, newBrowseCache(), func(hubs []Hub) bool {
			if len(hubs) > 0 && !seen {
				seen = true
				b, _ := json.Marshal(hubs)
				fmt.Printf("seen %s\n", b)
			}
			gone = seen && len(hubs) == 0
			return gone
		}, 0)
		if err != nil || !gone {
			fmt.Println("error: no goodbye", err)
			return 1
		}
		fmt.Println("gone")
	}
	return 0
}

// child is a role running in a namespace.
type child struct {
	t     testing.TB
	name  string
	stdin io.WriteCloser
	next  int  // the first line waitLine has not looked at
	ended bool // the output closed
	mu    sync.Mutex
	out   []string
}

func startRole(t testing.TB, ns *netnstest.NS, role string, env ...string) *child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := ns.Command(exe, "-test.run=^$")
	cmd.Env = append(append(os.Environ(), roleEnv+"="+role), env...)
	return startChild(t, role+" in "+ns.Name, cmd)
}

// startChild starts cmd, collecting its output lines, and stops it (stdin
// closed, SIGTERM, at worst SIGKILL) when the test ends.
func startChild(t testing.TB, name string, cmd *exec.Cmd) *child {
	t.Helper()
	c := &child{t: t, name: name}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", c.name, err)
	}
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.mu.Lock()
			c.out = append(c.out, sc.Text())
			c.mu.Unlock()
		}
		c.mu.Lock()
		c.ended = true
		c.mu.Unlock()
		cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		c.stdin.Close()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("--- output of %s:\n%s", c.name, c.output())
		}
	})
	return c
}

func (c *child) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.out, "\n")
}

// waitLine returns the first line not yet seen that starts with prefix,
// failing the test when the child says "error:", ends, or within passes
// first.
func (c *child) waitLine(prefix string, within time.Duration) string {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		c.mu.Lock()
		lines, ended := c.out[c.next:], c.ended
		c.next = len(c.out)
		c.mu.Unlock()
		for i, l := range lines {
			if strings.HasPrefix(l, "error:") {
				c.t.Fatalf("%s: %s", c.name, l)
			}
			if strings.HasPrefix(l, prefix) {
				c.mu.Lock()
				c.next -= len(lines) - i - 1
				c.mu.Unlock()
				return l
			}
		}
		if ended {
			c.t.Fatalf("%s ended before %q:\n%s", c.name, prefix, c.output())
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s did not print %q within %v:\n%s", c.name, prefix, within, c.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func advertiseIn(t testing.TB, ns *netnstest.NS, s Service) *child {
	t.Helper()
	b, _ := json.Marshal(s)
	c := startRole(t, ns, "advertise", "PIFLEET_DISCOVERY_SERVICE="+string(b))
	c.waitLine("advertising", 10*time.Second)
	return c
}

func findIn(t testing.TB, ns *netnstest.NS) []Hub {
	t.Helper()
	return findAs(t, ns, "find")
}

func findAs(t testing.TB, ns *netnstest.NS, role string, env ...string) []Hub {
	t.Helper()
	l := startRole(t, ns, role, env...).waitLine("hubs ", 15*time.Second)
	var hubs []Hub
	if err := json.Unmarshal([]byte(strings.TrimPrefix(l, "hubs ")), &hubs); err != nil {
		t.Fatalf("find output %q: %v", l, err)
	}
	return hubs
}

// lan makes the hub's namespace (192.0.2.1, 2001:db8::1 on va) and the
// Pi's (192.0.2.2, 2001:db8::2 on vb), joined by a veth pair.
func lan(t testing.TB, v4, v6 bool) (hub, pi *netnstest.NS) {
	t.Helper()
	hub, pi = netnstest.Pair(t)
	if v4 {
		hub.IP("addr", "add", "192.0.2.1/24", "dev", "va")
		pi.IP("addr", "add", "192.0.2.2/24", "dev", "vb")
	}
	if v6 {
		hub.IP("addr", "add", "2001:db8::1/64", "dev", "va", "nodad")
		pi.IP("addr", "add", "2001:db8::2/64", "dev", "vb", "nodad")
	}
	return hub, pi
}

var testService = Service{Instance: "hub on pi-hub", EnrolPort: 8443, MQTTPort: 8883, CAPin: testPin}

// checkFound asserts hubs is exactly the test service at the given addresses
// (link-local ones may come too).
func checkFound(t testing.TB, hubs []Hub, want ...string) {
	t.Helper()
	if len(hubs) != 1 {
		t.Fatalf("found %d hubs, want 1: %+v", len(hubs), hubs)
	}
	h := hubs[0]
	if h.Instance != testService.Instance || h.EnrolPort != 8443 || h.MQTTPort != 8883 || h.CAPin != testPin[:16] || !h.MatchesPin(testPin) {
		t.Errorf("found %+v, want instance %q, enrol 8443, mqtt 8883, pin %s", h, testService.Instance, testPin[:16])
	}
	for _, w := range want {
		if !slices.Contains(h.Addrs, netip.MustParseAddr(w)) {
			t.Errorf("found addresses %v, want %s among them", h.Addrs, w)
		}
	}
	for _, a := range h.Addrs {
		if a.Is4() && a != netip.MustParseAddr("192.0.2.1") || a.Is6() && !a.IsLinkLocalUnicast() && a != netip.MustParseAddr("2001:db8::1") {
			t.Errorf("found address %v, which is not the hub's", a)
		}
		if a.IsLinkLocalUnicast() && a.Zone() != "vb" {
			t.Errorf("link-local address %v without the Pi's interface as zone", a)
		}
	}
}

func TestNetnsFindAcrossVeth(t *testing.T) {
	hub, pi := lan(t, true, true)
	advertiseIn(t, hub, testService)
	hubs := findIn(t, pi)
	t.Logf("found %+v", hubs)
	checkFound(t, hubs, "192.0.2.1", "2001:db8::1")
}

func TestNetnsFindOverIPv6Only(t *testing.T) {
	hub, pi := lan(t, false, true)
	advertiseIn(t, hub, testService)
	checkFound(t, findIn(t, pi), "2001:db8::1")
}

// A browser that cannot share port 5353 asks from a port of its own and
// gets its answers straight back (RFC 6762 §6.7).
func TestNetnsFindFromOneShotPort(t *testing.T) {
	hub, pi := lan(t, true, true)
	advertiseIn(t, hub, testService)
	checkFound(t, findAs(t, pi, "find-oneshot"), "192.0.2.1", "2001:db8::1")
}

// A hub that stops says goodbye: a browser forgets it at once, not when
// its records expire two minutes later.
func TestNetnsGoodbyeOnStop(t *testing.T) {
	hub, pi := lan(t, true, false)
	w := startRole(t, pi, "watch")
	w.waitLine("watching", 10*time.Second)
	a := advertiseIn(t, hub, testService)
	w.waitLine("seen", 10*time.Second)
	a.stdin.Close()
	a.waitLine("stopped", 10*time.Second)
	w.waitLine("gone", 10*time.Second)
}

// A hub that starts before its network (a Pi whose DHCP lease comes
// later) advertises once its address arrives.
func TestNetnsAddressAfterStart(t *testing.T) {
	hub, pi := netnstest.Pair(t)
	pi.IP("addr", "add", "192.0.2.2/24", "dev", "vb")
	hub.IP("-6", "addr", "flush", "dev", "va") // no link-local address either
	advertiseIn(t, hub, testService)
	w := startRole(t, pi, "watch")
	w.waitLine("watching", 10*time.Second)
	hub.IP("addr", "add", "192.0.2.1/24", "dev", "va")
	l := w.waitLine("seen", 3*refreshEvery+5*time.Second)
	var hubs []Hub
	if err := json.Unmarshal([]byte(strings.TrimPrefix(l, "seen ")), &hubs); err != nil {
		t.Fatalf("watch output %q: %v", l, err)
	}
	checkFound(t, hubs, "192.0.2.1")
}

// Two hubs on one LAN: each found, told apart by the pin.
func TestNetnsTwoHubs(t *testing.T) {
	hub, pi := lan(t, true, false)
	hub.IP("addr", "add", "192.0.2.3/24", "dev", "va")
	other := testService
	other.Instance, other.CAPin = "other hub", strings.Repeat("fe", 32)
	advertiseIn(t, hub, testService)
	advertiseIn(t, hub, other)
	hubs := findIn(t, pi)
	var names []string
	for _, h := range hubs {
		names = append(names, fmt.Sprintf("%s/%s", h.Instance, h.CAPin))
	}
	slices.Sort(names)
	want := []string{"hub on pi-hub/" + testPin[:16], "other hub/fefefefefefefefe"}
	if !slices.Equal(names, want) {
		t.Fatalf("found %v, want %v", names, want)
	}
	// The Pi holding a token for the other hub's fleet takes that one.
	hubs = findAs(t, pi, "find-pin", "PIFLEET_DISCOVERY_PIN="+strings.ToUpper(other.CAPin))
	if len(hubs) != 1 || hubs[0].Instance != "other hub" {
		t.Fatalf("FindPin: got %+v, want only %q", hubs, "other hub")
	}
}

// ask sends a one-shot PTR question for each SRC>DST pair, from SRC to
// DST port 5353, and prints "answered SRC" or "silent SRC" once an answer
// came or askWait passed.
func ask(pairs []string) int {
	out := make([]string, len(pairs))
	var wg sync.WaitGroup
	for i, pair := range pairs {
		src, dst, _ := strings.Cut(pair, ">")
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(src), 0)))
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		defer c.Close()
		q := new(dns.Msg)
		q.SetQuestion(serviceName, dns.TypePTR)
		b, _ := q.Pack()
		if _, err := c.WriteToUDPAddrPort(b, netip.AddrPortFrom(netip.MustParseAddr(dst), mdnsPort)); err != nil {
			fmt.Println("error:", err)
			return 1
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = "silent " + src
			c.SetReadDeadline(time.Now().Add(askWait))
			buf := make([]byte, maxPacket)
			for {
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				var r dns.Msg
				if r.Unpack(buf[:n]) == nil && r.Response && len(r.Answer) > 0 {
					out[i] = "answered " + src
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, l := range out {
		fmt.Println(l)
	}
	return 0
}

// askWait is how long ask waits for an answer that should not come; one
// that does comes within milliseconds over a veth pair.
const askWait = 2 * time.Second

// The advertiser answers only neighbours on the link (RFC 6762 §11): a
// one-shot question from an address routed to the hub, not on its link,
// gets no answer, though the hub could reach the asker; the same question
// from the link is answered.
func TestNetnsOffLinkQuestionUnanswered(t *testing.T) {
	hub, pi := lan(t, true, true)
	pi.IP("addr", "add", "198.51.100.2/24", "dev", "vb")
	pi.IP("addr", "add", "2001:db8:1::2/64", "dev", "vb", "nodad")
	hub.IP("route", "add", "198.51.100.0/24", "via", "192.0.2.2")
	hub.IP("-6", "route", "add", "2001:db8:1::/64", "via", "2001:db8::2")
	advertiseIn(t, hub, testService)
	a := startRole(t, pi, "ask", "PIFLEET_DISCOVERY_ASK=198.51.100.2>192.0.2.1 2001:db8:1::2>2001:db8::1 192.0.2.2>192.0.2.1 2001:db8::2>2001:db8::1")
	for _, want := range []string{"silent 198.51.100.2", "silent 2001:db8:1::2", "answered 192.0.2.2", "answered 2001:db8::2"} {
		a.waitLine(want, 15*time.Second)
	}
}

// fakeHub answers like an advertiser for "fake hub", whose pin has the
// test pin's prefix (public, in every answer of the real hub) and goes on
// otherwise, so that it is another fleet's CA. It never announces, and
// prints "answered" after its first answer to a question for the service,
// until stdin closes.
func fakeHub() int {
	a, err := newAdvertiser(Service{Instance: "fake hub", EnrolPort: 9443, MQTTPort: 9883, CAPin: testPin[:16] + strings.Repeat("ee", 24)})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	defer a.m.close()
	a.m.refresh()
	go func() {
		io.Copy(io.Discard, os.Stdin)
		a.m.close()
		os.Exit(0)
	}()
	fmt.Println("listening")
	said := false
	for p := range a.m.in {
		q, ok := parseQuery(append([]byte(nil), p.data...))
		a.answer(p)
		if ok && !said && slices.ContainsFunc(q.Question, func(q dns.Question) bool { return equalName(q.Name, serviceName) }) {
			said = true
			fmt.Println("answered")
		}
	}
	return 0
}

// The pin prefix in the TXT record is public: a fake that has it and
// answers first does not hide the real hub. FindPin listens on after the
// first match and lists both in the order they answered, so that join
// passes the fake (which fails the TLS pin check) and reaches the hub.
func TestNetnsFindPinPastAFake(t *testing.T) {
	hub, pi := lan(t, true, false)
	fake := startRole(t, hub, "fake-hub")
	fake.waitLine("listening", 10*time.Second)
	find := startRole(t, pi, "find-pin", "PIFLEET_DISCOVERY_PIN="+testPin, "PIFLEET_DISCOVERY_GRACE=5s")
	fake.waitLine("answered", 15*time.Second)
	advertiseIn(t, hub, testService) // only now: the fake's answer came first
	l := find.waitLine("hubs ", 20*time.Second)
	var hubs []Hub
	if err := json.Unmarshal([]byte(strings.TrimPrefix(l, "hubs ")), &hubs); err != nil {
		t.Fatalf("find output %q: %v", l, err)
	}
	var names []string
	for _, h := range hubs {
		names = append(names, h.Instance)
	}
	if want := []string{"fake hub", testService.Instance}; !slices.Equal(names, want) {
		t.Fatalf("FindPin found %q, want %q (the fake first, then the real hub)", names, want)
	}
}
