package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/api"
	"github.com/pifleet/pifleet/internal/credentials"
	"github.com/pifleet/pifleet/internal/enrol"
	"github.com/pifleet/pifleet/internal/runnertest"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/testenv/netnstest"
)

// enrolRig is a hub in one network namespace (192.0.2.1) and a fresh
// "Pi" in another (192.0.2.2), joined by a veth pair: nothing reaches
// the hub but over that link, as on a LAN.
type enrolRig struct {
	t              *testing.T
	hubNS, piNS    *netnstest.NS
	pifleet, agent string
	dir, policy    string
	hub            *proc
}

const (
	hubAddr   = "192.0.2.1"
	piAddr    = "192.0.2.2"
	enrolAddr = hubAddr + ":8443"
	hubAPI    = "127.0.0.1:8080" // the hub's API on its own namespace's loopback
)

func newEnrolRig(t *testing.T) *enrolRig {
	r := &enrolRig{t: t, pifleet: binPifleet(t), agent: binAgent(t), dir: t.TempDir()}
	r.hubNS, r.piNS = netnstest.Pair(t)
	r.hubNS.IP("addr", "add", hubAddr+"/24", "dev", "va")
	r.piNS.IP("addr", "add", piAddr+"/24", "dev", "vb")
	// "job" is a test tool: a number sleeps that long in a busybox container.
	b, _ := json.Marshal(map[string]any{"tools": map[string]any{
		"job": map[string]any{"image": runnertest.Busybox(t), "verb_words": 1, "read": []string{"[0-9]*"},
			"entrypoint": []string{"sh", "-c", `sleep "$0"; echo "slept $0"`}},
	}})
	r.policy = filepath.Join(r.dir, "policy.json")
	if err := os.WriteFile(r.policy, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return r
}

// startHub starts `pifleet hub` in the hub's namespace with its MQTT
// listener on the LAN address and no security flags: it must secure
// itself and listen for joins on :8443.
func (r *enrolRig) startHub(name, stateDir string) *proc {
	p := startCmd(r.t, name, r.hubNS.Command(r.pifleet, "hub", "--mqtt-listen", hubAddr+":8883", "--http-listen", hubAPI,
		"--state-dir", stateDir, "--policy", r.policy, "--log-level", "debug"))
	testenv.Eventually(r.t, 30*time.Second, func() string {
		if !p.alive() {
			r.t.Fatalf("%s exited:\n%s", name, p.out.String())
		}
		if out, code := r.cli("devices"); code != 0 {
			return name + " not answering yet: " + out
		}
		if !strings.Contains(p.out.String(), "enrolment listening") {
			return name + " has no enrolment listener yet"
		}
		return ""
	})
	return p
}

// cli runs the pifleet CLI on the hub's machine.
func (r *enrolRig) cli(args ...string) (string, int) {
	cmd := r.hubNS.Command(r.pifleet, args...)
	cmd.Env = append(os.Environ(), "PIFLEET_HUB="+hubAPI)
	out, _ := cmd.CombinedOutput()
	return string(out), cmd.ProcessState.ExitCode()
}

// addPi runs add-pi and returns the line it printed for the Pi.
func (r *enrolRig) addPi(args ...string) (line, token string) {
	r.t.Helper()
	cmd := r.hubNS.Command(r.pifleet, append([]string{"add-pi"}, args...)...)
	cmd.Env = append(os.Environ(), "PIFLEET_HUB="+hubAPI)
	out, err := cmd.Output()
	if err != nil {
		r.t.Fatalf("pifleet add-pi %v: %v\n%s", args, err, out)
	}
	line = strings.TrimSpace(string(out))
	f := strings.Fields(line)
	if len(f) != 5 || strings.Join(f[:4], " ") != "sudo pifleet-agent join "+enrolAddr || !strings.HasPrefix(f[4], "pft1_") {
		r.t.Fatalf("add-pi printed %q; want one line: sudo pifleet-agent join %s pft1_…", line, enrolAddr)
	}
	return line, f[4]
}

// join runs `pifleet-agent join` on the Pi with root as its / and the
// fake systemctl; it returns the output and exit code.
func (r *enrolRig) join(root string, args ...string) (string, int) {
	fake := filepath.Join(r.dir, "systemctl")
	cmd := r.piNS.Command(r.agent, append([]string{"join", "--root", root, "--systemctl", fake}, args...)...)
	out, _ := cmd.CombinedOutput()
	return string(out), cmd.ProcessState.ExitCode()
}

// startUnit does what systemd does with the packaged unit: it starts the
// agent with /etc/default/pifleet-agent as its environment (paths under
// root, the test's /).
func (r *enrolRig) startUnit(name, root string, extra ...string) *proc {
	b, err := os.ReadFile(filepath.Join(root, "etc/default/pifleet-agent"))
	if err != nil {
		r.t.Fatalf("the join wrote no environment file: %v", err)
	}
	var env []string
	for _, l := range strings.Split(string(b), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		env = append(env, strings.Replace(l, "=/etc/", "="+root+"/etc/", 1))
	}
	data := filepath.Join(r.dir, name+"-data")
	args := append([]string{"--data-dir", data, "--console-issue", "off", "--keepalive", "10s", "--policy", r.policy,
		"--docker-network", "none", "--log-level", "debug"}, extra...)
	cmd := r.piNS.Command(r.agent, args...)
	cmd.Env = append(os.Environ(), env...)
	return startCmd(r.t, name, cmd)
}

func (r *enrolRig) devices() ([]api.Device, error) {
	out, code := r.cli("devices", "--json")
	if code != 0 {
		return nil, fmt.Errorf("pifleet devices --json: exit %d: %s", code, out)
	}
	var devs []api.Device
	return devs, json.Unmarshal([]byte(out), &devs)
}

func (r *enrolRig) device(id string) (api.Device, bool) {
	devs, err := r.devices()
	if err != nil {
		r.t.Fatal(err)
	}
	i := slices.IndexFunc(devs, func(d api.Device) bool { return d.ID == id })
	if i < 0 {
		return api.Device{}, false
	}
	return devs[i], true
}

func tokenID(t *testing.T, s string) string {
	tok, err := enrol.ParseToken(s)
	if err != nil {
		t.Fatal(err)
	}
	return tok.ID
}

// refusedOneLine checks a command failed with one line holding want.
func refusedOneLine(t *testing.T, what, out string, code int, want string) {
	t.Helper()
	if code == 0 || len(lines(out)) != 1 || !strings.Contains(out, want) {
		t.Errorf("%s: exit %d, output:\n%s\nwant a failure with one line containing %q", what, code, out, want)
	} else {
		t.Logf("%s: %s", what, strings.TrimSpace(out))
	}
}

// TestEnrolOnePiOverALAN is issue 16's path from a laptop hub to one real
// Pi, with the real binaries in two network namespaces: the hub, started
// off loopback with no security flags, makes its own CA and logins;
// `pifleet add-pi` prints one line; `pifleet-agent join` on the Pi checks
// the hub against the token's pin, writes the provisioned files and
// restarts the unit (a fake systemctl; the test starts the agent the way
// the unit does), and a second Pi finds the hub with join --discover;
// the Pi comes online over TLS with its own login and runs
// a signed command in a container on the real Docker Engine. Used,
// expired and wrong tokens and a hub with another CA on the same address
// are refused with one clear line; remove-pi cuts the session within 2 s
// and the old login no longer connects.
func TestEnrolOnePiOverALAN(t *testing.T) {
	r := newEnrolRig(t)
	state := filepath.Join(r.dir, "hub")
	r.hub = r.startHub("hub", state)
	if err := os.WriteFile(filepath.Join(r.dir, "systemctl"), []byte("#!/bin/sh\necho \"$@\" >> "+filepath.Join(r.dir, "systemctl.log")+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}

	line, token := r.addPi("--labels", "lab,shelf", "pi-lan")
	t.Logf("add-pi: %s", line)
	root := filepath.Join(r.dir, "pi-root")
	out, code := r.join(root, "--restart", enrolAddr, token) // --root is not /: no restart unless asked
	if code != 0 {
		t.Fatalf("join: exit %d:\n%s", code, out)
	}
	if calls, _ := os.ReadFile(filepath.Join(r.dir, "systemctl.log")); string(calls) != "restart -- pifleet-agent.service\n" {
		t.Errorf("systemctl was called with %q; want one restart of pifleet-agent.service", calls)
	}
	for path, mode := range map[string]os.FileMode{"etc/pifleet/ca.pem": 0o644, "etc/pifleet/hub-signing.pub": 0o644,
		"etc/pifleet/device.password": 0o640, "etc/default/pifleet-agent": 0o600} {
		if fi, err := os.Stat(filepath.Join(root, path)); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v, want mode %v", path, err, mode)
		}
	}
	env := readTrim(t, filepath.Join(root, "etc/default/pifleet-agent"))
	for _, want := range []string{"PIFLEET_AGENT_BROKER=mqtts://" + hubAddr + ":8883", "PIFLEET_AGENT_USERNAME=pi-lan", "PIFLEET_AGENT_LABELS=lab,shelf"} {
		if !strings.Contains(env, want) {
			t.Errorf("environment file lacks %q:\n%s", want, env)
		}
	}
	creds, err := credentials.Load(filepath.Join(state, "pki", "credentials.json"))
	if err != nil {
		t.Fatal(err)
	}
	if e, hub, ok := creds.Find("pi-lan"); !ok || hub || e.PasswordHash == "" {
		t.Errorf("the hub's credentials hold no password login for pi-lan: %+v", creds.Devices)
	}

	pi := r.startUnit("agent pi-lan", root)
	testenv.Eventually(t, 30*time.Second, func() string {
		d, ok := r.device("pi-lan")
		if !ok || !d.Online || strings.Join(d.Labels, ",") != "lab,shelf" {
			return fmt.Sprintf("pi-lan not online with its labels yet: %+v", d)
		}
		return ""
	})
	if !strings.Contains(pi.out.String(), "mqtts://"+hubAddr+":8883") {
		t.Errorf("the agent's log does not show its TLS broker:\n%s", pi.out.String())
	}
	testenv.Eventually(t, 60*time.Second, func() string {
		out, code := r.cli("ask", "job", "pi-lan", "0")
		if code != 0 || !strings.Contains(out, "slept 0") {
			return fmt.Sprintf("signed command on pi-lan: exit %d:\n%s", code, out)
		}
		return ""
	})

	t.Run("join --discover", func(t *testing.T) {
		// No host name typed: the hub is found on the LAN by mDNS (its
		// advertisement carries the CA pin's prefix); trust is still the pin.
		_, token := r.addPi("pi-found")
		root := filepath.Join(r.dir, "found")
		out, code := r.join(root, "--restart=false", "--discover", token)
		if code != 0 || !strings.Contains(out, "joined the fleet as pi-found") || !strings.Contains(out, "mqtts://"+hubAddr+":8883") {
			t.Fatalf("join --discover: exit %d:\n%s", code, out)
		}
		found := r.startUnit("agent pi-found", root)
		testenv.Eventually(t, 30*time.Second, func() string {
			if d, ok := r.device("pi-found"); !ok || !d.Online {
				return "pi-found (joined by --discover) not online yet"
			}
			return ""
		})
		found.kill(syscall.SIGTERM)
	})

	t.Run("hub restart keeps the CA and the logins", func(t *testing.T) {
		connects := strings.Count(pi.out.String(), `msg=connected`)
		_, pending := r.addPi("pi-after-restart")
		r.hub.kill(syscall.SIGTERM)
		r.hub = r.startHub("hub again", state)
		if strings.Contains(r.hub.out.String(), "secured the embedded broker") {
			t.Errorf("the restarted hub made its PKI again:\n%s", r.hub.out.String())
		}
		testenv.Eventually(t, 60*time.Second, func() string {
			// Its own login again, not the retained state the hub replays.
			if strings.Count(pi.out.String(), `msg=connected`) <= connects {
				return "pi-lan has not logged in to the restarted hub yet"
			}
			if d, ok := r.device("pi-lan"); !ok || !d.Online {
				return "pi-lan not online in the restarted hub's view"
			}
			return ""
		})
		// A token made before the restart still works after it.
		out, code := r.join(filepath.Join(r.dir, "after-restart"), "--restart=false", enrolAddr, pending)
		if code != 0 {
			t.Errorf("a token made before the restart: exit %d:\n%s", code, out)
		}
	})

	t.Run("refused tokens", func(t *testing.T) {
		out, code := r.join(filepath.Join(r.dir, "reuse"), enrolAddr, token)
		refusedOneLine(t, "a used token", out, code, "already used")

		_, short := r.addPi("--ttl", "1s", "pi-late")
		time.Sleep(1100 * time.Millisecond) // the token's whole life; no timing is asserted
		out, code = r.join(filepath.Join(r.dir, "late"), enrolAddr, short)
		refusedOneLine(t, "an expired token", out, code, "expired")

		_, good := r.addPi("pi-wrong")
		i := len("pft1_") + 12 // inside the secret
		c := "a"
		if good[i] == 'a' {
			c = "b"
		}
		wrong := good[:i] + c + good[i+1:]
		out, code = r.join(filepath.Join(r.dir, "wrong"), enrolAddr, wrong)
		refusedOneLine(t, "a token with a wrong secret", out, code, "does not know this token")

		out, code = r.join(filepath.Join(r.dir, "typo"), enrolAddr, good[:40])
		refusedOneLine(t, "half a token", out, code, "not a pifleet join token")

		// pis revoke: the token is refused from then on.
		_, revoked := r.addPi("pi-revoked")
		out, code = r.cli("pis", "revoke", tokenID(t, revoked))
		if code != 0 || !strings.Contains(out, "revoked join token "+tokenID(t, revoked)) {
			t.Errorf("pis revoke: exit %d:\n%s", code, out)
		}
		out, code = r.join(filepath.Join(r.dir, "revoked"), enrolAddr, revoked)
		refusedOneLine(t, "a revoked token", out, code, "revoked")

		// A batch token: each Pi takes the id it asks for, never a taken one.
		_, batch := r.addPi("--uses", "3")
		out, code = r.join(filepath.Join(r.dir, "b1"), "--restart=false", "--id", "pi-b1", enrolAddr, batch)
		if code != 0 || !strings.Contains(out, "joined the fleet as pi-b1") {
			t.Errorf("batch join as pi-b1: exit %d:\n%s", code, out)
		}
		out, code = r.join(filepath.Join(r.dir, "b2"), "--restart=false", "--id", "pi-lan", enrolAddr, batch)
		refusedOneLine(t, "a batch join asking for a taken id", out, code, `already has a Pi or hub named "pi-lan"`)
		out, _ = r.cli("pis", "pending", "--json")
		var pending []struct {
			TokenID  string `json:"token_id"`
			UsesLeft int    `json:"uses_left"`
		}
		if err := json.Unmarshal([]byte(out), &pending); err != nil {
			t.Fatalf("pis pending --json: %v\n%s", err, out)
		}
		left := map[string]int{}
		for _, p := range pending {
			left[p.TokenID] = p.UsesLeft
		}
		if batchID := tokenID(t, batch); left[batchID] != 2 || len(pending) != 2 || strings.Contains(out, batch[5:]) {
			t.Errorf("pis pending: want the batch token %s with 2 uses left (the refused join gave its use back) and pi-wrong's, no secret:\n%s", batchID, out)
		}
		// The token from the standard input, out of the command line.
		cmd := r.piNS.Command(r.agent, "join", "--root", filepath.Join(r.dir, "b3"), "--id", "pi-b3", enrolAddr, "-")
		cmd.Stdin = strings.NewReader(batch + "\n")
		if b, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(b), "joined the fleet as pi-b3") {
			t.Errorf("join with the token on the standard input: %v\n%s", err, b)
		}

		// The answer of a join lost on the way (here: the Pi kept nothing):
		// the same token and id again get a fresh login.
		_, lost := r.addPi("pi-lost")
		var pws []string
		for _, dir := range []string{"lost1", "lost2"} {
			out, code := r.join(filepath.Join(r.dir, dir), enrolAddr, lost)
			if code != 0 || !strings.Contains(out, "joined the fleet as pi-lost") {
				t.Fatalf("join %s with the token of a lost answer: exit %d:\n%s", dir, code, out)
			}
			pws = append(pws, readTrim(t, filepath.Join(r.dir, dir, "etc/pifleet/device.password")))
		}
		if pws[0] == pws[1] {
			t.Errorf("joining again gave the same password")
		}
	})

	t.Run("remove-pi cuts the session", func(t *testing.T) {
		before := strings.Count(pi.out.String(), "broker connection lost")
		start := time.Now()
		type result struct {
			out  string
			code int
		}
		done := make(chan result, 1)
		go func() { out, code := r.cli("remove-pi", "pi-lan"); done <- result{out, code} }()
		testenv.Eventually(t, 3*time.Second, func() string { // 2 s, and a margin for a loaded machine
			if strings.Count(pi.out.String(), "broker connection lost") > before {
				return ""
			}
			return "pi-lan's session is still up"
		})
		cut := time.Since(start)
		res := <-done
		if res.code != 0 {
			t.Fatalf("remove-pi: exit %d:\n%s", res.code, res.out)
		}
		t.Logf("remove-pi → the Pi's session closed after %v; the command returned after %v (%s)", cut.Round(time.Millisecond),
			time.Since(start).Round(time.Millisecond), strings.TrimSpace(res.out))
		testenv.Eventually(t, 30*time.Second, func() string {
			if strings.Contains(lastMatching(pi.out.String(), "connect failed"), "not Authorized") {
				return ""
			}
			return "the removed Pi's reconnect has not been refused yet"
		})
		if d, ok := r.device("pi-lan"); ok {
			t.Errorf("the view still has pi-lan after remove-pi: %+v", d)
		}
	})

	t.Run("another hub on the same address", func(t *testing.T) {
		_, token := r.addPi("pi-impostor") // a good token of this fleet
		r.hub.kill(syscall.SIGTERM)
		r.startHub("impostor hub", filepath.Join(r.dir, "impostor")) // its own CA, same address and port
		out, code := r.join(filepath.Join(r.dir, "impostor-root"), enrolAddr, token)
		refusedOneLine(t, "a hub with another CA", out, code, "not from the fleet CA this token was made for")
		if _, err := os.Stat(filepath.Join(r.dir, "impostor-root", "etc")); err == nil {
			t.Errorf("the refused join wrote files")
		}
	})

	secrets := []string{token, readTrim(t, filepath.Join(root, "etc/pifleet/device.password"))}
	for _, p := range []*proc{r.hub, pi} {
		for _, s := range secrets {
			if strings.Contains(p.out.String(), s) {
				t.Errorf("%s logged a secret", p.name)
			}
		}
	}
}
