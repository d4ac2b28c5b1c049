package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/api"
	"github.com/pifleet/pifleet/hub/internal/chat"
	"github.com/pifleet/pifleet/hub/internal/fleet"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/wire"
)

// t0 is the hub clock when the fixture fleet's first message arrives.
var t0 = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

// clock is the fleet's and engine's hub clock, set by the test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func apply(t *testing.T, f *fleet.Fleet, topic string, msg any) {
	t.Helper()
	b, err := json.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Apply(topic, b); err != nil {
		t.Fatalf("Apply %s %s: %v", topic, b, err)
	}
}

// testFleet builds, through the fleet's normal Apply path, pi1 (online,
// one usable and one link-local address, 48.5 °C, label "lab") and pi2
// (was online, then its will said lost; never sent a status).
func testFleet(t *testing.T) (*fleet.Fleet, *clock) {
	t.Helper()
	c := &clock{t: t0}
	f := fleet.New(c.now)
	apply(t, f, wire.StateTopic("pi1"), wire.State{V: 1, State: wire.StateOnline, Epoch: 10})
	apply(t, f, wire.StateTopic("pi2"), wire.State{V: 1, State: wire.StateOnline, Epoch: 7})
	c.set(t0.Add(time.Minute))
	temp := 48.5
	apply(t, f, wire.StatusTopic("pi1"), wire.Status{V: 1, ID: "pi1", Hostname: "pi1-host", AgentVersion: "1.2.3",
		Epoch: 10, Seq: 1, Labels: []string{"lab"},
		Interfaces: []wire.Interface{{Name: "eth0", Up: true, DefaultRoute: true}},
		Addresses: []wire.Address{
			{Address: "192.0.2.10", Prefix: 24, Family: wire.IPv4, Interface: "eth0", Primary: true},
			{Address: "fe80::1", Prefix: 64, Family: wire.IPv6, Interface: "eth0", LinkLocal: true},
		},
		Health: wire.Health{TempC: &temp}})
	c.set(t0.Add(2 * time.Minute))
	apply(t, f, wire.StateTopic("pi2"), wire.State{V: 1, State: wire.StateLost, Epoch: 7})
	c.set(t0.Add(10 * time.Minute))
	return f, c
}

// serve runs s on a loopback httptest server.
func serve(t *testing.T, s *api.Server) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts
}

type answer struct {
	code   int
	header http.Header
	body   []byte
}

func (a answer) String() string { return fmt.Sprintf("%d %s", a.code, a.body) }

func do(t *testing.T, method, url string, body io.Reader, header ...string) answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return answer{resp.StatusCode, resp.Header, b}
}

// wantJSON checks the answer is JSON with code and decodes it into v.
func wantJSON(t *testing.T, what string, a answer, code int, v any) {
	t.Helper()
	if a.code != code {
		t.Fatalf("%s: got %s, want %d", what, a, code)
	}
	if mt, _, _ := mime.ParseMediaType(a.header.Get("Content-Type")); mt != "application/json" {
		t.Errorf("%s: Content-Type %q, want application/json", what, a.header.Get("Content-Type"))
	}
	dec := json.NewDecoder(bytes.NewReader(a.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: body %s: %v", what, a.body, err)
	}
}

// wantError checks a JSON error answer: exactly {"error": "..."} with a
// message containing want, and code in [lo, hi].
func wantError(t *testing.T, what string, a answer, lo, hi int, want string) string {
	t.Helper()
	if a.code < lo || a.code > hi {
		t.Errorf("%s: got %s, want a status in %d..%d", what, a, lo, hi)
	}
	var e struct {
		Error string `json:"error"`
	}
	wantJSON(t, what, a, a.code, &e)
	if e.Error == "" || !strings.Contains(e.Error, want) {
		t.Errorf("%s: error %q does not contain %q", what, e.Error, want)
	}
	return e.Error
}

func engineServer(t *testing.T) (*httptest.Server, *fleet.Fleet) {
	f, c := testFleet(t)
	return serve(t, &api.Server{Fleet: f, Engine: chat.New(f, c.now)}), f
}

// TestDevicesList checks the JSON contract of GET /api/devices field by
// field on the raw JSON (names and types, as a script sees them), for an
// online device with addresses and a lost one that never sent a status.
func TestDevicesList(t *testing.T) {
	ts, _ := engineServer(t)
	var got []map[string]any
	wantJSON(t, "GET /api/devices", do(t, "GET", ts.URL+"/api/devices", nil), http.StatusOK, &got)
	if len(got) != 2 {
		t.Fatalf("got %d devices, want 2: %v", len(got), got)
	}
	pi1, pi2 := got[0], got[1]
	for _, d := range got {
		for _, k := range []string{"id", "online", "state", "epoch", "addresses", "interfaces", "health", "problems", "last_seen"} {
			if _, ok := d[k]; !ok {
				t.Errorf("device %v has no %q", d["id"], k)
			}
		}
		if _, ok := d["online"].(bool); !ok {
			t.Errorf("device %v: online is %T, want a JSON bool", d["id"], d["online"])
		}
		if _, ok := d["addresses"].([]any); !ok {
			t.Errorf("device %v: addresses is %T, want a JSON array (never null)", d["id"], d["addresses"])
		}
	}

	want1 := map[string]any{
		"id": "pi1", "online": true, "state": "online", "epoch": 10.0,
		"hostname": "pi1-host", "agent_version": "1.2.3", "labels": []any{"lab"},
		"addresses": []any{
			map[string]any{"address": "192.0.2.10", "prefix": 24.0, "family": "ipv4", "interface": "eth0", "primary": true},
			map[string]any{"address": "fe80::1", "prefix": 64.0, "family": "ipv6", "interface": "eth0", "link_local": true},
		},
		"interfaces": []any{map[string]any{"name": "eth0", "up": true, "default_route": true}},
		"health":     map[string]any{"temp_c": 48.5},
		"problems":   []any{},
		"last_seen":  "2025-03-04T05:07:07Z", // the status, a minute after the birth
		"since":      "2025-03-04T05:06:07Z",
	}
	want2 := map[string]any{
		"id": "pi2", "online": false, "state": "lost", "epoch": 7.0,
		"addresses": []any{}, "interfaces": []any{}, "health": nil, "problems": []any{},
		"last_seen": "2025-03-04T05:06:07Z", // the birth: a will is the broker speaking, not the Pi
		"since":     "2025-03-04T05:08:07Z",
	}
	for _, c := range []struct{ got, want map[string]any }{{pi1, want1}, {pi2, want2}} {
		if !reflect.DeepEqual(c.got, c.want) {
			g, _ := json.MarshalIndent(c.got, "", "  ")
			w, _ := json.MarshalIndent(c.want, "", "  ")
			t.Errorf("device %v:\ngot  %s\nwant %s", c.want["id"], g, w)
		}
	}

	// The same answer decodes into the Go type the CLI uses.
	var typed []api.Device
	wantJSON(t, "GET /api/devices", do(t, "GET", ts.URL+"/api/devices", nil), http.StatusOK, &typed)
	if len(typed) != 2 || typed[0].Addresses[0].Address != "192.0.2.10" || *typed[0].Health.TempC != 48.5 ||
		!typed[0].LastSeen.Equal(t0.Add(time.Minute)) || typed[1].Online || typed[1].Health != nil {
		t.Errorf("typed decode: %+v", typed)
	}
}

func TestDevicesFilter(t *testing.T) {
	ts, _ := engineServer(t)
	for filter, want := range map[string][]string{
		"online": {"pi1"}, "offline": {"pi2"}, "problems": {"pi2"}, "label:lab": {"pi1"}, "lab": {"pi1"}, "all": {"pi1", "pi2"},
		"label:none": {},
	} {
		var got []api.Device
		wantJSON(t, "filter "+filter, do(t, "GET", ts.URL+"/api/devices?filter="+filter, nil), http.StatusOK, &got)
		ids := []string{}
		for _, d := range got {
			ids = append(ids, d.ID)
		}
		if !reflect.DeepEqual(ids, want) {
			t.Errorf("filter %s: got %q, want %q", filter, ids, want)
		}
	}
	wantError(t, "unknown filter", do(t, "GET", ts.URL+"/api/devices?filter=bogus", nil), 400, 400, `unknown filter "bogus"`)
}

func TestDeviceByID(t *testing.T) {
	ts, _ := engineServer(t)
	var d map[string]any
	wantJSON(t, "GET /api/devices/pi1", do(t, "GET", ts.URL+"/api/devices/pi1", nil), http.StatusOK, &d)
	if d["id"] != "pi1" || d["online"] != true || d["state"] != "online" {
		t.Errorf("pi1: %v", d)
	}
	addrs, _ := d["addresses"].([]any)
	if len(addrs) != 2 || addrs[0].(map[string]any)["address"] != "192.0.2.10" {
		t.Errorf("pi1 addresses: %v", d["addresses"])
	}
	var lost api.Device
	wantJSON(t, "GET /api/devices/pi2", do(t, "GET", ts.URL+"/api/devices/pi2", nil), http.StatusOK, &lost)
	if lost.ID != "pi2" || lost.Online || lost.State != "lost" {
		t.Errorf("pi2: %+v", lost)
	}

	msg := wantError(t, "unknown id", do(t, "GET", ts.URL+"/api/devices/pl1", nil), 404, 404, `did you mean "pi1"`)
	if !strings.Contains(msg, `"pl1"`) {
		t.Errorf("the error %q does not name the id asked for", msg)
	}
	wantError(t, "unknown id, nothing close", do(t, "GET", ts.URL+"/api/devices/kitchen-display", nil), 404, 404, `no device "kitchen-display"`)

	for _, bad := range []string{"pi+1", "pi%231", "pi%2F1", "pi%201", "%2E%2E", "-pi1", "pi%C3%A91", "pi%00", strings.Repeat("a", wire.MaxIDLen+1)} {
		wantError(t, "invalid id "+bad, do(t, "GET", ts.URL+"/api/devices/"+bad, nil), 400, 499, "not a valid device id")
	}
	// An id of exactly the maximum length is valid, only unknown.
	long := strings.Repeat("a", wire.MaxIDLen)
	wantError(t, "unknown long id", do(t, "GET", ts.URL+"/api/devices/"+long, nil), 404, 404, `no device "`+long+`"`)
}

func TestAskWithTheEngine(t *testing.T) {
	ts, _ := engineServer(t)
	var r chat.Reply
	wantJSON(t, "ask fleet", do(t, "POST", ts.URL+"/api/ask", strings.NewReader(`{"text":"fleet"}`), "Content-Type", "application/json"), http.StatusOK, &r)
	for _, want := range []string{
		"Fleet: 1/2 online\n",
		"🟢 pi1 · online · 192.0.2.10 · 48.5 °C · seen 9m ago\n",
		"🔴 pi2 · lost · no address · seen 10m ago\n",
	} {
		if !strings.Contains(r.Text, want) {
			t.Errorf("fleet answer lacks %q:\n%s", want, r.Text)
		}
	}
	if r.Problem {
		t.Errorf("fleet answer marked as a problem: %+v", r)
	}
	// The engine marks ids, addresses and times for Slack; the API's JSON
	// carries them as plain words.
	if len(r.Sections) == 0 || r.Sections[0].Text != "🔴 pi2 · no address\nlost · seen 10m ago" {
		t.Errorf("fleet answer's first section = %+v, want pi2's plain line", r.Sections)
	}

	wantJSON(t, "ask where pl1", do(t, "POST", ts.URL+"/api/ask", strings.NewReader(`{"text":"where pl1"}`)), http.StatusOK, &r)
	if !r.Problem || !strings.Contains(r.Text, "pi1") {
		t.Errorf("where pl1: want a problem answer naming pi1, got %+v", r)
	}

	for name, body := range map[string]string{
		"empty body":  ``,
		"not JSON":    `fleet`,
		"truncated":   `{"text":`,
		"wrong type":  `{"text": 5}`,
		"array":       `["fleet"]`,
		"bare string": `"fleet"`,
	} {
		wantError(t, name, do(t, "POST", ts.URL+"/api/ask", strings.NewReader(body)), 400, 400, `want a JSON body like {"text": "fleet"}`)
	}

	big := `{"text":"` + strings.Repeat("x", api.MaxBody) + `"}`
	wantError(t, "oversized body", do(t, "POST", ts.URL+"/api/ask", strings.NewReader(big)), 400, 499, "too large")

	a := do(t, "GET", ts.URL+"/api/ask", nil)
	wantError(t, "GET /api/ask", a, 405, 405, "POST")
	if a.header.Get("Allow") != "POST" {
		t.Errorf("GET /api/ask: Allow %q, want POST", a.header.Get("Allow"))
	}
	wantError(t, "no such endpoint", do(t, "GET", ts.URL+"/api/nothing", nil), 404, 404, "no such endpoint: GET /api/nothing")
}

// recorder is an Asker that records what it was asked.
type recorder struct {
	mu  sync.Mutex
	got []chat.Request
}

func (r *recorder) Ask(_ context.Context, req chat.Request) chat.Reply {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, req)
	return chat.Reply{Text: "recorded " + req.Text}
}

func (r *recorder) requests() []chat.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]chat.Request(nil), r.got...)
}

// TestAskActsAsHTTPUser: whatever the body or headers claim, the engine
// sees user and source "http" (a client cannot borrow a Slack user's roles).
func TestAskActsAsHTTPUser(t *testing.T) {
	f, _ := testFleet(t)
	rec := &recorder{}
	ts := serve(t, &api.Server{Fleet: f, Engine: rec})
	body := `{"text":"aws pi1 s3 ls","user":"U0ADMIN","User":"U0ADMIN","source":"slack","channel":"C1","thread":"1.2"}`
	var r chat.Reply
	wantJSON(t, "ask", do(t, "POST", ts.URL+"/api/ask", strings.NewReader(body),
		"X-Forwarded-User", "U0ADMIN", "X-Slack-User", "U0ADMIN"), http.StatusOK, &r)
	if r.Text != "recorded aws pi1 s3 ls" {
		t.Errorf("reply %+v", r)
	}
	want := []chat.Request{{Text: "aws pi1 s3 ls", User: "http", Source: "http"}}
	if got := rec.requests(); !reflect.DeepEqual(got, want) {
		t.Errorf("engine got %+v, want %+v", got, want)
	}
	// Bad requests never reach the engine.
	do(t, "POST", ts.URL+"/api/ask", strings.NewReader(`{`))
	do(t, "GET", ts.URL+"/api/ask", nil)
	if n := len(rec.requests()); n != 1 {
		t.Errorf("engine asked %d times, want 1", n)
	}
}

func TestStats(t *testing.T) {
	f, c := testFleet(t)
	// One stale and two rejected messages next to the fixture's accepted ones.
	_ = f.Apply(wire.StateTopic("pi1"), []byte(`{"v":1,"state":"online","epoch":9}`))
	_ = f.Apply(wire.StateTopic("pi1"), []byte(`{garbage`))
	_ = f.Apply(wire.StatusTopic("pi1"), []byte(`{"v":1,"id":"pi9"}`))
	st := f.Stats()
	if st.Stale != 1 || len(st.Rejected) != 2 {
		t.Fatalf("fixture stats %+v", st)
	}
	ts := serve(t, &api.Server{Fleet: f, Engine: chat.New(f, c.now), Counters: map[string]func() any{
		// Names as the hub's parts give them: a Go name, Go fields, a
		// json tag, an acronym, data in a map's keys.
		"Commands": func() any { return struct{ BadRecords, StrayDuplicates int64 }{3, 1} },
		"slack": func() any {
			return &struct {
				Envelopes      int
				LastSnapshotMS int `json:"last_snap"`
				MQTTRejected   int
				ByReason       map[string]int
			}{42, 7, 2, map[string]int{"TooBig": 1}}
		},
	}})
	var got map[string]any
	wantJSON(t, "stats", do(t, "GET", ts.URL+"/api/stats", nil), http.StatusOK, &got)
	want := map[string]any{
		"accepted": float64(st.Accepted),
		"stale":    1.0,
		"inferred": float64(st.Inferred),
		"silenced": 0.0,
		"rejected": map[string]any{"malformed": 1.0, "id_mismatch": 1.0},
		"commands": map[string]any{"bad_records": 3.0, "stray_duplicates": 1.0},
		"slack":    map[string]any{"envelopes": 42.0, "last_snap": 7.0, "mqtt_rejected": 2.0, "by_reason": map[string]any{"TooBig": 1.0}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stats:\ngot  %v\nwant %v", got, want)
	}
	if st.Accepted != 4 {
		t.Errorf("Accepted %d, want the fixture's 4 messages", st.Accepted)
	}
}

// TestBearerToken: with a token, everything but /healthz needs it, and the
// token (or a near miss of it) is never in an answer or the server's log.
func TestBearerToken(t *testing.T) {
	const token = "tok-7f3a9c1e5b2d-SECRET"
	f, c := testFleet(t)
	logs := &testenv.SyncBuffer{}
	ts := serve(t, &api.Server{Fleet: f, Engine: chat.New(f, c.now), Token: token,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Extra: map[string]http.Handler{"GET /metrics": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, "metrics\n")
		})},
	})
	var bodies []string
	check := func(what string, a answer, code int) {
		t.Helper()
		bodies = append(bodies, string(a.body))
		if a.code != code {
			t.Errorf("%s: got %s, want %d", what, a, code)
		}
	}
	reqs := []struct {
		method, path, body string
		code               int // with the right token
	}{
		{"GET", "/api/devices", "", 200},
		{"GET", "/api/devices/pi1", "", 200},
		{"GET", "/api/devices/pl1", "", 404},
		{"POST", "/api/ask", `{"text":"fleet"}`, 200},
		{"GET", "/api/ask", "", 405},
		{"GET", "/api/stats", "", 200},
		{"GET", "/metrics", "", 200},
		{"GET", "/api/nothing", "", 404},
		{"GET", "/healthz/", "", 404}, // only exactly /healthz is open
	}
	for _, r := range reqs {
		what := r.method + " " + r.path
		for _, auth := range []string{"", "Bearer wrong", "Bearer " + token + "x", "Bearer " + token[:len(token)-1],
			token, "Basic " + token, "Bearer  " + token, "Bearer " + strings.ToUpper(token)} {
			var hdr []string
			if auth != "" {
				hdr = []string{"Authorization", auth}
			}
			a := do(t, r.method, ts.URL+r.path, strings.NewReader(r.body), hdr...)
			bodies = append(bodies, string(a.body))
			wantError(t, fmt.Sprintf("%s with Authorization %q", what, auth), a, 401, 401, "missing or wrong bearer token")
			if a.header.Get("WWW-Authenticate") != `Bearer realm="pifleet"` {
				t.Errorf("%s: WWW-Authenticate %q", what, a.header.Get("WWW-Authenticate"))
			}
		}
		check(what+" with the token", do(t, r.method, ts.URL+r.path, strings.NewReader(r.body), "Authorization", "Bearer "+token), r.code)
		// The scheme's case does not matter (RFC 9110), the token's does.
		check(what+" with the token, scheme in lower case", do(t, r.method, ts.URL+r.path, strings.NewReader(r.body), "Authorization", "bearer "+token), r.code)
	}
	a := do(t, "GET", ts.URL+"/healthz", nil)
	check("GET /healthz without a token", a, 200)
	if string(a.body) != "ok\n" {
		t.Errorf("healthz body %q", a.body)
	}
	check("GET /healthz with a wrong token", do(t, "GET", ts.URL+"/healthz", nil, "Authorization", "Bearer wrong"), 200)

	for _, b := range bodies {
		if strings.Contains(b, token[:12]) {
			t.Errorf("an answer contains the token: %s", b)
		}
	}
	if strings.Contains(logs.String(), token[:12]) {
		t.Errorf("the server's log contains the token:\n%s", logs)
	}
}

// TestNoTokenNoAuth: without a token the API is open (loopback default),
// and a client's Authorization header does no harm.
func TestNoTokenNoAuth(t *testing.T) {
	ts, _ := engineServer(t)
	var devs []api.Device
	wantJSON(t, "no token", do(t, "GET", ts.URL+"/api/devices", nil), 200, &devs)
	wantJSON(t, "some token", do(t, "GET", ts.URL+"/api/devices", nil, "Authorization", "Bearer x"), 200, &devs)
}

// TestNoTokenAnswersOnlyLocalRequests: without a token the API is on
// loopback, and a web page in a browser on the same machine must not use
// it: a foreign Host (DNS rebinding) or a foreign Origin (a cross-site
// form POST to 127.0.0.1) is refused; the CLI's and curl's requests pass.
func TestNoTokenAnswersOnlyLocalRequests(t *testing.T) {
	f := fleet.New(time.Now)
	h := (&api.Server{Fleet: f, Engine: chat.New(f, time.Now)}).Handler()
	for _, tc := range []struct {
		name, host, origin, fetchSite string
		want                          int
	}{
		{name: "CLI by address", host: "127.0.0.1:8080", want: http.StatusOK},
		{name: "curl localhost", host: "localhost:8080", want: http.StatusOK},
		{name: "IPv6 loopback", host: "[::1]:8080", want: http.StatusOK},
		{name: "same-origin page", host: "127.0.0.1:8080", origin: "http://127.0.0.1:8080", want: http.StatusOK},
		{name: "DNS rebinding", host: "attacker.example:8080", want: http.StatusForbidden},
		{name: "rebinding without port", host: "attacker.example", want: http.StatusForbidden},
		{name: "cross-site form post", host: "127.0.0.1:8080", origin: "https://attacker.example", want: http.StatusForbidden},
		{name: "opaque origin", host: "127.0.0.1:8080", origin: "null", want: http.StatusForbidden},
		{name: "cross-site without Origin", host: "127.0.0.1:8080", fetchSite: "cross-site", want: http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", "http://x/api/ask", strings.NewReader(`{"text":"help"}`))
			req.Host = tc.host
			if tc.origin != "" {
				req.Header.Set("Origin", tc.origin)
			}
			if tc.fetchSite != "" {
				req.Header.Set("Sec-Fetch-Site", tc.fetchSite)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Errorf("%s: status %d, want %d: %s", tc.name, rec.Code, tc.want, rec.Body)
			}
			if tc.want == http.StatusForbidden && !strings.Contains(rec.Body.String(), "no token") {
				t.Errorf("refusal does not say why: %s", rec.Body)
			}
		})
	}
}
