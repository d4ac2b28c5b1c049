package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/pifleet/pifleet/hub/internal/api"
	"github.com/pifleet/pifleet/hub/internal/chat"
	"github.com/pifleet/pifleet/hub/internal/fleet"
	"github.com/pifleet/pifleet/internal/exitcode"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/wire"
)

// testHub is the hub's real API handler on a loopback httptest server,
// over a fleet fed through Apply, recording what the CLI sent.
type testHub struct {
	URL  string
	mu   sync.Mutex
	seen []string // "METHOD URI Authorization"
}

func (h *testHub) requests() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.seen...)
}

// startTestHub serves pi1 (online, 192.0.2.10 and a link-local
// address, 48.5 °C) and pi2 (lost, never sent a status).
func startTestHub(t *testing.T, token string) *testHub {
	t.Helper()
	f := fleet.New(nil)
	msg := func(topic string, v any) {
		b, _ := json.Marshal(v)
		if err := f.Apply(topic, b); err != nil {
			t.Fatalf("Apply %s: %v", topic, err)
		}
	}
	temp := 48.5
	msg(wire.StateTopic("pi1"), wire.State{V: 1, State: wire.StateOnline, Epoch: 10})
	msg(wire.StatusTopic("pi1"), wire.Status{V: 1, ID: "pi1", Epoch: 10, Seq: 1, Hostname: "pi1-host",
		Addresses: []wire.Address{
			{Address: "192.0.2.10", Prefix: 24, Family: wire.IPv4, Interface: "eth0", Primary: true},
			{Address: "fe80::1", Prefix: 64, Family: wire.IPv6, Interface: "eth0", LinkLocal: true},
		},
		Health: wire.Health{TempC: &temp}})
	msg(wire.StateTopic("pi2"), wire.State{V: 1, State: wire.StateOnline, Epoch: 7})
	msg(wire.StateTopic("pi2"), wire.State{V: 1, State: wire.StateLost, Epoch: 7})

	h := &testHub{}
	apiHandler := (&api.Server{Fleet: f, Engine: chat.New(f, nil), Token: token}).Handler()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.seen = append(h.seen, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Authorization"))
		h.mu.Unlock()
		apiHandler.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	h.URL = ts.URL
	return h
}

// pifleet runs the CLI as hub/main.go does, including how main turns the
// error into an exit code and its one "pifleet: ..." line on stderr.
func pifleet(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	err := Run(t.Context(), Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string { return env[k] }}, args)
	code = exitcode.Report(&errb, "pifleet", err)
	return code, out.String(), errb.String()
}

// wantOneErrorLine checks a failed run: exit 1, nothing on stdout, one
// "pifleet: " line on stderr containing want.
func wantOneErrorLine(t *testing.T, what string, code int, stdout, stderr, want string) {
	t.Helper()
	if code != 1 || stdout != "" || !strings.HasPrefix(stderr, "pifleet: ") || strings.Count(stderr, "\n") != 1 ||
		!strings.HasSuffix(stderr, "\n") || !strings.Contains(stderr, want) {
		t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 1, no output and one error line containing %q",
			what, code, stdout, stderr, want)
	}
}

// rows splits the table on stdout into the words of each line.
func rows(stdout string) [][]string {
	var out [][]string
	for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
		out = append(out, strings.Fields(l))
	}
	return out
}

const cliToken = "cli-tok-4b8e2f6a9d1c"

func TestCLIDevicesTable(t *testing.T) {
	hub := startTestHub(t, cliToken)
	env := map[string]string{"PIFLEET_HUB": hub.URL, "PIFLEET_HUB_TOKEN": cliToken}
	code, stdout, stderr := pifleet(t, env, "devices")
	if code != 0 || stderr != "" {
		t.Fatalf("devices: exit %d, stderr %q", code, stderr)
	}
	r := rows(stdout)
	if len(r) != 3 {
		t.Fatalf("devices: want a header and 2 rows:\n%s", stdout)
	}
	if strings.Join(r[0], " ") != "ID ONLINE ADDRESSES TEMP PROBLEMS LAST SEEN" {
		t.Errorf("header %q", r[0])
	}
	// LAST SEEN is the hub's wall clock ("just now", "3s ago" on a slow
	// machine); the columns before it are exact.
	if got := strings.Join(r[1][:5], " "); got != "pi1 yes eth0=192.0.2.10 48.5°C -" {
		t.Errorf("pi1 row %q (the link-local address must not show):\n%s", got, stdout)
	}
	if got := strings.Join(r[2][:6], " "); got != "pi2 NO (lost) - - -" {
		t.Errorf("pi2 row %q:\n%s", got, stdout)
	}
	if strings.Contains(stdout, cliToken) {
		t.Errorf("the token is printed:\n%s", stdout)
	}
	want := "GET /api/devices?limit=1000 Bearer " + cliToken
	if got := hub.requests(); len(got) != 1 || got[0] != want {
		t.Errorf("hub saw %q, want [%q]", got, want)
	}

	// --hub wins over PIFLEET_HUB; --filter goes along.
	env["PIFLEET_HUB"] = "http://127.0.0.1:1"
	code, stdout, stderr = pifleet(t, env, "devices", "--hub", hub.URL+"/", "--filter", "online")
	if r := rows(stdout); code != 0 || stderr != "" || len(r) != 2 || r[1][0] != "pi1" {
		t.Errorf("devices --hub --filter online: exit %d, stdout:\n%s\nstderr %q", code, stdout, stderr)
	}
	if got := hub.requests(); got[len(got)-1] != "GET /api/devices?filter=online&limit=1000 Bearer "+cliToken {
		t.Errorf("hub saw %q", got[len(got)-1])
	}
}

func TestCLIDeviceByIDAndJSON(t *testing.T) {
	hub := startTestHub(t, "")
	env := map[string]string{"PIFLEET_HUB": hub.URL}

	code, stdout, stderr := pifleet(t, env, "devices", "pi1")
	r := rows(stdout)
	if code != 0 || stderr != "" || len(r) != 2 || r[0][0] != "ID" || strings.Join(r[1][:3], " ") != "pi1 yes eth0=192.0.2.10" {
		t.Errorf("devices pi1: exit %d, stderr %q, stdout:\n%s", code, stderr, stdout)
	}

	code, stdout, stderr = pifleet(t, env, "devices", "--json")
	var devs []api.Device
	if err := json.Unmarshal([]byte(stdout), &devs); err != nil || code != 0 || stderr != "" {
		t.Fatalf("devices --json: exit %d, stderr %q, %v:\n%s", code, stderr, err, stdout)
	}
	if len(devs) != 2 || devs[0].ID != "pi1" || !devs[0].Online || len(devs[0].Addresses) != 2 ||
		devs[0].Addresses[0].Address != "192.0.2.10" || devs[0].Hostname != "pi1-host" ||
		devs[1].ID != "pi2" || devs[1].Online || devs[1].State != "lost" || devs[1].LastSeen == nil {
		t.Errorf("devices --json:\n%s", stdout)
	}
	for _, k := range []string{`"id"`, `"online"`, `"state"`, `"addresses"`, `"health"`, `"last_seen"`} {
		if !strings.Contains(stdout, k) {
			t.Errorf("devices --json lacks %s:\n%s", k, stdout)
		}
	}

	code, stdout, _ = pifleet(t, env, "devices", "--json", "pi2")
	devs = nil
	if err := json.Unmarshal([]byte(stdout), &devs); err != nil || code != 0 || len(devs) != 1 || devs[0].State != "lost" {
		t.Errorf("devices --json pi2: exit %d, %v:\n%s", code, err, stdout)
	}
}

func TestCLIDeviceUnknown(t *testing.T) {
	hub := startTestHub(t, cliToken)
	env := map[string]string{"PIFLEET_HUB": hub.URL, "PIFLEET_HUB_TOKEN": cliToken}
	code, stdout, stderr := pifleet(t, env, "devices", "pl1")
	wantOneErrorLine(t, "devices pl1", code, stdout, stderr, `no device "pl1"; did you mean "pi1"?`)
	code, stdout, stderr = pifleet(t, env, "devices", "pi+1")
	wantOneErrorLine(t, "devices pi+1", code, stdout, stderr, `"pi+1" is not a valid device id`)
	code, stdout, stderr = pifleet(t, env, "devices", "--filter", "bogus")
	wantOneErrorLine(t, "devices --filter bogus", code, stdout, stderr, `unknown filter "bogus"`)
	if strings.Contains(stderr, cliToken) {
		t.Errorf("the token is printed: %q", stderr)
	}
}

func TestCLIAsk(t *testing.T) {
	hub := startTestHub(t, cliToken)
	env := map[string]string{"PIFLEET_HUB": hub.URL, "PIFLEET_HUB_TOKEN": cliToken}
	code, stdout, stderr := pifleet(t, env, "ask", "fleet")
	if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "Fleet: 1/2 online\n") ||
		!strings.Contains(stdout, "pi1 · online · 192.0.2.10 · 48.5 °C") || !strings.Contains(stdout, "pi2 · lost · no address") {
		t.Errorf("ask fleet: exit %d, stderr %q, stdout:\n%s", code, stderr, stdout)
	}
	want := "POST /api/ask Bearer " + cliToken
	if got := hub.requests(); len(got) != 1 || got[0] != want {
		t.Errorf("hub saw %q, want [%q]", got, want)
	}
	// An answer about an error is printed and exits 1 with nothing more.
	code, stdout, stderr = pifleet(t, env, "ask", "where", "pl1")
	if code != 1 || stderr != "" || !strings.Contains(stdout, "pi1") {
		t.Errorf("ask where pl1: exit %d, stderr %q, stdout %q", code, stderr, stdout)
	}
	code, _, stderr = pifleet(t, env, "ask")
	if code != 2 || !strings.Contains(stderr, "usage: pifleet ask TEXT") {
		t.Errorf("ask without text: exit %d, stderr %q", code, stderr)
	}
	if strings.Contains(stdout+stderr, cliToken) {
		t.Errorf("the token is printed")
	}
}

// TestCLIToken: the token comes from PIFLEET_HUB_TOKEN only, goes as a
// bearer header, and a missing or wrong one is one clear line that never
// shows a token.
func TestCLIToken(t *testing.T) {
	hub := startTestHub(t, cliToken)
	for _, tok := range []string{"", "wrong-" + cliToken} {
		for _, args := range [][]string{{"devices"}, {"devices", "pi1"}, {"ask", "fleet"}} {
			code, stdout, stderr := pifleet(t, map[string]string{"PIFLEET_HUB": hub.URL, "PIFLEET_HUB_TOKEN": tok}, args...)
			what := fmt.Sprintf("%s with token %q", args, tok)
			wantOneErrorLine(t, what, code, stdout, stderr, "missing or wrong bearer token")
			if strings.Contains(stderr, cliToken) {
				t.Errorf("%s: a token is printed: %q", what, stderr)
			}
		}
	}
	for _, r := range hub.requests() {
		if !strings.HasSuffix(r, " ") && !strings.HasSuffix(r, " Bearer wrong-"+cliToken) {
			t.Errorf("hub saw %q, want no Authorization or the wrong token as bearer", r)
		}
	}
}

// TestCLIHubWithoutScheme: --hub (and PIFLEET_HUB) take host:port, as the
// hub's --http-listen is written, and mean http:// (issue 15).
func TestCLIHubWithoutScheme(t *testing.T) {
	hub := startTestHub(t, "")
	hostPort := strings.TrimPrefix(hub.URL, "http://")
	for _, c := range []struct {
		env  map[string]string
		args []string
	}{
		{nil, []string{"devices", "--hub", hostPort}},
		{nil, []string{"devices", "--hub", strings.Replace(hostPort, "127.0.0.1", "localhost", 1)}},
		{map[string]string{"PIFLEET_HUB": hostPort + "/"}, []string{"devices"}},
		{nil, []string{"ask", "--hub", hostPort, "fleet"}},
	} {
		code, stdout, stderr := pifleet(t, c.env, c.args...)
		if code != 0 || stderr != "" || !strings.Contains(stdout, "pi1") {
			t.Errorf("%v (env %v): exit %d, stdout %q, stderr %q; want the fleet", c.args, c.env, code, stdout, stderr)
		}
	}
}

func TestCLIUnreachableHub(t *testing.T) {
	url := fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t)) // nothing listens
	env := map[string]string{"PIFLEET_HUB_TOKEN": cliToken}
	for _, args := range [][]string{{"devices"}, {"devices", "pi1"}, {"devices", "--json"}, {"ask", "fleet"}} {
		code, stdout, stderr := pifleet(t, env, append([]string{args[0], "--hub", url}, args[1:]...)...)
		what := fmt.Sprint(args)
		wantOneErrorLine(t, what, code, stdout, stderr, "cannot reach the hub at "+url+" (is `pifleet hub` running?)")
		if strings.Contains(stderr, cliToken) {
			t.Errorf("%s: the token is printed: %q", what, stderr)
		}
	}

	code, stdout, stderr := pifleet(t, env, "devices", "--hub", "ftp://127.0.0.1:8080")
	wantOneErrorLine(t, "--hub with another scheme", code, stdout, stderr, "want a URL such as http://127.0.0.1:8080")

	// A password in --hub never shows, whatever is wrong with the URL.
	for _, hub := range []string{"http://u:s3cret@127.0.0.1:1/", "http://u:s3cret@127.0.0.1:port/", "ftp://u:s3cret@host/", "http://u:s3cret@ho st/", "u:s3cret@127.0.0.1:1"} {
		code, stdout, stderr = pifleet(t, env, "devices", "--hub", hub)
		if code == 0 || strings.Contains(stdout+stderr, "s3cret") {
			t.Errorf("--hub %s: exit %d, output %q; want an error without the password", hub, code, stdout+stderr)
		}
	}
}

// TestCLINotAHub: something else on the hub's port gives one clear line,
// not a page of HTML.
func TestCLINotAHub(t *testing.T) {
	for _, c := range []struct {
		code int
		body string
		want string
	}{
		{200, "<html><body>hello</body></html>\n", "hub sent something that is not the expected JSON"},
		{502, "<html>\n<h1>Bad Gateway</h1>\n</html>\n", "hub answered 502 Bad Gateway"},
		{404, "404 page not found\n", "hub answered 404 Not Found"},
	} {
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(c.code)
			io.WriteString(w, c.body)
		}))
		code, stdout, stderr := pifleet(t, map[string]string{"PIFLEET_HUB": ts.URL}, "devices")
		wantOneErrorLine(t, fmt.Sprintf("devices against a %d page", c.code), code, stdout, stderr, c.want)
		ts.Close()
	}
}

// What the command line cannot mean is refused before the hub is asked,
// and what it can mean reaches the hub intact.
func TestCLIDevicesArgumentsAndEscaping(t *testing.T) {
	hub := startTestHub(t, "")
	env := map[string]string{"PIFLEET_HUB": hub.URL}

	// Flags after the id are not flags: say so rather than print the fleet.
	code, stdout, stderr := pifleet(t, env, "devices", "pi1", "--json")
	if code != 2 || stdout != "" || !strings.Contains(stderr, "flags before it") {
		t.Errorf("devices pi1 --json: exit %d, stdout %q, stderr %q; want a usage error", code, stdout, stderr)
	}
	// An id that could not exist never becomes another path or query.
	for _, id := range []string{"pi#1", "../stats", "pi%1", "pi?x=1"} {
		code, stdout, stderr = pifleet(t, env, "devices", id)
		wantOneErrorLine(t, "devices "+id, code, stdout, stderr, "is not a valid device id")
	}
	if got := hub.requests(); len(got) != 0 {
		t.Errorf("the hub was asked %q for ids that cannot exist", got)
	}
	// A label with query characters is one filter value.
	code, _, stderr = pifleet(t, env, "devices", "--filter", "label:a&filter=online")
	if got := hub.requests(); len(got) != 1 || got[0] != "GET /api/devices?filter=label%3Aa%26filter%3Donline&limit=1000 " {
		t.Errorf("hub saw %q (exit %d, %q), want the whole label as one escaped filter", got, code, stderr)
	}
}

// TestCLIDevicesProblemsInWords: the table says what is wrong as the
// README and the chat answers do ("clock not synchronised"), not in the
// wire's codes.
func TestCLIDevicesProblemsInWords(t *testing.T) {
	var out strings.Builder
	devs := []api.Device{{ID: "pi1", Online: true, State: "online", Problems: []wire.Problem{wire.ProblemClockUnsynced, wire.ProblemUnderVoltage}}}
	if err := printDevices(Env{Stdout: &out}, devs, false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "clock not synchronised, under-voltage") || strings.Contains(out.String(), "clock_unsynced") {
		t.Errorf("problems not in words:\n%s", out.String())
	}
}
