package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/api"
	"github.com/pifleet/pifleet/hub/internal/chat"
	"github.com/pifleet/pifleet/hub/internal/fleet"
	"github.com/pifleet/pifleet/internal/wire"
)

func bigServer(t *testing.T, n int) (*httptest.Server, *fleet.Fleet) {
	t.Helper()
	c := &clock{t: t0}
	f := bigFleet(t, n, c.now)
	return serve(t, &api.Server{Fleet: f, Engine: chat.New(f, c.now)}), f
}

func ids(devs []api.Device) []string {
	out := []string{}
	for _, d := range devs {
		out = append(out, d.ID)
	}
	return out
}

func fleetIDs(t *testing.T, f *fleet.Fleet, filter string) []string {
	t.Helper()
	devs, err := f.Filter(filter)
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, d := range devs {
		out = append(out, d.ID)
	}
	return out
}

var linkNext = regexp.MustCompile(`^<(/api/devices\?[^>]+)>; rel="next"$`)

// TestDevicesPaging walks every page by the Link header and by
// X-Next-After, with and without a filter: together the pages are the
// unpaged answer, in id order, each device once.
func TestDevicesPaging(t *testing.T) {
	ts, f := bigServer(t, 250)
	for _, c := range []struct {
		filter string
		limit  int
	}{{"", 7}, {"", 250}, {"", 1}, {"problems", 4}, {"label:site-3", 10}, {"online", 1000}} {
		want := fleetIDs(t, f, c.filter)
		q := url.Values{"limit": {fmt.Sprint(c.limit)}}
		if c.filter != "" {
			q.Set("filter", c.filter)
		}
		// By the Link header.
		var got []string
		next := "/api/devices?" + q.Encode()
		pages := 0
		for next != "" {
			pages++
			if pages > 300 {
				t.Fatalf("%v: more pages than devices", c)
			}
			a := do(t, "GET", ts.URL+next, nil)
			var page []api.Device
			wantJSON(t, next, a, http.StatusOK, &page)
			if len(page) > c.limit {
				t.Errorf("%s: %d devices, limit %d", next, len(page), c.limit)
			}
			if a.header.Get("X-Total-Count") != fmt.Sprint(len(want)) {
				t.Errorf("%s: X-Total-Count %q, want %d", next, a.header.Get("X-Total-Count"), len(want))
			}
			got = append(got, ids(page)...)
			next = ""
			if l := a.header.Get("Link"); l != "" {
				m := linkNext.FindStringSubmatch(l)
				if m == nil {
					t.Fatalf("%s: Link %q", next, l)
				}
				next = m[1]
				nq, _ := url.ParseQuery(strings.SplitN(next, "?", 2)[1])
				if nq.Get("after") != page[len(page)-1].ID || nq.Get("after") != a.header.Get("X-Next-After") ||
					nq.Get("filter") != c.filter || nq.Get("limit") != fmt.Sprint(c.limit) {
					t.Errorf("Link %q after a page ending in %s (X-Next-After %q)", l, page[len(page)-1].ID, a.header.Get("X-Next-After"))
				}
			} else if a.header.Get("X-Next-After") != "" {
				t.Errorf("%s: X-Next-After %q without a Link", next, a.header.Get("X-Next-After"))
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("filter %q limit %d: pages gave %d devices %.80q…, want %d", c.filter, c.limit, len(got), got, len(want))
		}
		if wantPages := max(1, (len(want)+c.limit-1)/c.limit); pages != wantPages {
			t.Errorf("filter %q limit %d: %d pages, want %d", c.filter, c.limit, pages, wantPages)
		}

		// By X-Next-After, the way the CLI pages.
		got = nil
		after := ""
		for {
			q.Set("after", after)
			a := do(t, "GET", ts.URL+"/api/devices?"+q.Encode(), nil)
			var page []api.Device
			wantJSON(t, "page after "+after, a, http.StatusOK, &page)
			got = append(got, ids(page)...)
			if after = a.header.Get("X-Next-After"); after == "" {
				break
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("filter %q limit %d by X-Next-After: %d devices, want %d", c.filter, c.limit, len(got), len(want))
		}
	}
}

// A cursor need not be a device that still exists; past the end is an
// empty array; an unpaged answer has no paging headers.
func TestDevicesPagingCursor(t *testing.T) {
	ts, _ := bigServer(t, 30)
	var page []api.Device
	a := do(t, "GET", ts.URL+"/api/devices?limit=3&after=pi-00004x", nil) // between pi-00004 and pi-00005
	wantJSON(t, "after a gone id", a, 200, &page)
	if got := ids(page); !reflect.DeepEqual(got, []string{"pi-00005", "pi-00006", "pi-00007"}) {
		t.Errorf("after pi-00004x: %q", got)
	}
	a = do(t, "GET", ts.URL+"/api/devices?after=pi-00026", nil) // after alone: the rest
	wantJSON(t, "after alone", a, 200, &page)
	if got := ids(page); !reflect.DeepEqual(got, []string{"pi-00027", "pi-00028", "pi-00029"}) || a.header.Get("Link") != "" || a.header.Get("X-Total-Count") != "30" {
		t.Errorf("after alone: %q, headers %v", got, a.header)
	}
	a = do(t, "GET", ts.URL+"/api/devices?limit=3&after=zzz", nil)
	if a.code != 200 || strings.TrimSpace(string(a.body)) != "[]" || a.header.Get("Link") != "" {
		t.Errorf("past the end: %s %v", a, a.header)
	}
	a = do(t, "GET", ts.URL+"/api/devices?limit=3&filter=label:none", nil)
	if a.code != 200 || strings.TrimSpace(string(a.body)) != "[]" || a.header.Get("X-Total-Count") != "0" {
		t.Errorf("nothing matched: %s %v", a, a.header)
	}
	a = do(t, "GET", ts.URL+"/api/devices?limit=30", nil) // exactly all: no next page
	wantJSON(t, "limit = all", a, 200, &page)
	if len(page) != 30 || a.header.Get("Link") != "" || a.header.Get("X-Next-After") != "" {
		t.Errorf("limit 30 of 30: %d devices, headers %v", len(page), a.header)
	}
	a = do(t, "GET", ts.URL+"/api/devices", nil)
	for _, h := range []string{"Link", "X-Next-After", "X-Total-Count"} {
		if a.header.Get(h) != "" {
			t.Errorf("unpaged answer has %s: %q", h, a.header.Get(h))
		}
	}
}

func TestDevicesPagingBadParams(t *testing.T) {
	ts, _ := bigServer(t, 3)
	for q, want := range map[string]string{
		"limit=0":                    `limit "0": want a number of devices from 1 to 10000`,
		"limit=-5":                   `limit "-5"`,
		"limit=abc":                  `limit "abc"`,
		"limit=":                     `limit ""`,
		"limit=10001":                `limit "10001"`,
		"limit=1e3":                  `limit "1e3"`,
		"limit=99999999999999999999": `limit "99999999999999999999"`,
		"limit=5&after=..%2Fetc":     `after "../etc" is not a valid device id`,
		"after=pi%2000001":           `after "pi 00001" is not a valid device id`,
		"after=" + strings.Repeat("a", wire.MaxIDLen+1): `is not a valid device id`,
		"limit=5&filter=bogus":                          `unknown filter "bogus"`,
	} {
		wantError(t, q, do(t, "GET", ts.URL+"/api/devices?"+q, nil), 400, 400, want)
	}
}

// TestDevicesEncoding: every device of the streamed list is byte for byte
// what json.Marshal makes of FromFleet, for every shape in the big fleet
// and odd ones (characters JSON escapes, no state, no status), also after
// devices reported again (the encoder's cache follows the reports).
func TestDevicesEncoding(t *testing.T) {
	c := &clock{t: t0}
	f := bigFleet(t, 500, c.now)
	odd := wire.Status{V: 1, ID: "pi-odd", Epoch: 3, Seq: 1, Hostname: `<b>"odd" & \ é`, AgentVersion: "v1\u2028",
		Labels: []string{"<lab>", "ünï"}, Addresses: []wire.Address{{Address: "192.0.2.1", Prefix: 24, Interface: "eth<0>"}}}
	apply(t, f, wire.StatusTopic("pi-odd"), odd) // a status and never a state
	apply(t, f, wire.StateTopic("pi-nostatus"), wire.State{V: 1, State: wire.StateOnline, Epoch: 1})
	s := &api.Server{Fleet: f, Engine: chat.New(f, c.now)}
	ts := serve(t, s)

	check := func(what string) {
		t.Helper()
		a := do(t, "GET", ts.URL+"/api/devices", nil)
		devs := f.List()
		lines := strings.Split(strings.TrimSuffix(string(a.body), "\n"), "\n")
		if len(lines) != len(devs)+2 || lines[0] != "[" || lines[len(lines)-1] != "]" {
			t.Fatalf("%s: %d lines for %d devices: %.200s", what, len(lines), len(devs), a.body)
		}
		for i := range devs {
			want, err := json.Marshal(api.FromFleet(&devs[i]))
			if err != nil {
				t.Fatal(err)
			}
			got := strings.TrimSuffix(lines[i+1], ",")
			if got != string(want) {
				t.Errorf("%s: device %s:\ngot  %s\nwant %s", what, devs[i].ID, got, want)
			}
		}
		var all []api.Device
		wantJSON(t, what, a, 200, &all) // and it is one valid JSON array
	}
	check("first answer")
	check("from the cache")

	// New reports, a new state, a forgotten device: the next answer shows them.
	c.set(t0.Add(time.Hour))
	odd.Seq, odd.Hostname, odd.Health.Problems = 2, "renamed", []wire.Problem{wire.ProblemHot}
	apply(t, f, wire.StatusTopic("pi-odd"), odd)
	apply(t, f, wire.StateTopic("pi-00001"), wire.State{V: 1, State: wire.StateLost, Epoch: 1795568144352 + 1})
	if err := f.Apply(wire.StateTopic("pi-00002"), nil); err != nil {
		t.Fatal(err)
	}
	check("after changes")
	var d api.Device
	a := do(t, "GET", ts.URL+"/api/devices?limit=1&after=pi-nostatus", nil)
	var page []api.Device
	wantJSON(t, "pi-odd", a, 200, &page)
	if d = page[0]; d.ID != "pi-odd" || d.Hostname != "renamed" || len(d.Problems) != 1 {
		t.Errorf("pi-odd after a new report: %+v", d)
	}
}

// TestDevicesConcurrentWithIngest: answers streamed while statuses keep
// arriving stay valid JSON (run with -race: no data race between the
// encoder's cache and the fleet).
func TestDevicesConcurrentWithIngest(t *testing.T) {
	c := &clock{t: t0}
	f := bigFleet(t, 300, c.now)
	ts := serve(t, &api.Server{Fleet: f, Engine: chat.New(f, c.now)})
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for seq := uint64(2); ; seq++ {
			select {
			case <-done:
				return
			default:
			}
			id := fmt.Sprintf("pi-%05d", seq%300)
			b, _ := json.Marshal(wire.Status{V: 1, ID: id, Epoch: 1795568144352 + seq%300, Seq: seq, Hostname: fmt.Sprint("h", seq)})
			_ = f.Apply(wire.StatusTopic(id), b)
		}
	}()
	for range 20 {
		var devs []api.Device
		wantJSON(t, "during ingest", do(t, "GET", ts.URL+"/api/devices", nil), 200, &devs)
		if len(devs) != 300 {
			t.Errorf("%d devices, want 300", len(devs))
		}
		wantJSON(t, "page during ingest", do(t, "GET", ts.URL+"/api/devices?limit=50&after=pi-00100", nil), 200, &devs)
	}
	close(done)
	wg.Wait()
}

// blockingWriter is a ResponseWriter whose writes wait until release is
// closed, like a client that stops reading: started is closed at the first
// write.
type blockingWriter struct {
	header  http.Header
	started chan struct{}
	release chan struct{}
	once    sync.Once
	buf     bytes.Buffer
}

func (w *blockingWriter) Header() http.Header { return w.header }
func (w *blockingWriter) WriteHeader(int)     {}
func (w *blockingWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.started) })
	<-w.release
	return w.buf.Write(p)
}

// TestDevicesDoNotHoldTheFleet: while an answer is stuck writing to a slow
// client, the fleet keeps taking messages (the handler holds no fleet lock
// while it encodes and writes).
func TestDevicesDoNotHoldTheFleet(t *testing.T) {
	f := bigFleet(t, 2000, nil)
	h := (&api.Server{Fleet: f, Engine: chat.New(f, nil)}).Handler()
	for _, path := range []string{"/api/devices", "/api/devices?limit=1000", "/api/devices?filter=problems"} {
		w := &blockingWriter{header: http.Header{}, started: make(chan struct{}), release: make(chan struct{})}
		served := make(chan struct{})
		go func() {
			defer close(served)
			h.ServeHTTP(w, httptest.NewRequest("GET", "http://127.0.0.1"+path, nil))
		}()
		select {
		case <-w.started:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: nothing written", path)
		}
		applied := make(chan error, 1)
		go func() {
			b, _ := json.Marshal(wire.State{V: 1, State: wire.StateOnline, Epoch: 1})
			applied <- f.Apply(wire.StateTopic("pi-new"), b)
		}()
		select {
		case err := <-applied:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%s: Apply waited for an answer stuck on its client: the fleet is locked while writing", path)
		}
		close(w.release)
		<-served
		var devs []api.Device
		if err := json.Unmarshal(w.buf.Bytes(), &devs); err != nil || len(devs) == 0 {
			t.Errorf("%s: %d devices, %v", path, len(devs), err)
		}
		_ = f.Apply(wire.StateTopic("pi-new"), nil)
	}
}

func TestSummaryEndpoint(t *testing.T) {
	ts, _ := engineServer(t)
	var got map[string]any
	wantJSON(t, "GET /api/summary", do(t, "GET", ts.URL+"/api/summary", nil), 200, &got)
	want := map[string]any{
		"total": 2.0, "online": 1.0, "with_problems": 0.0, "unconfirmed": 0.0,
		"states":         map[string]any{"online": 1.0, "offline": 0.0, "lost": 1.0, "unknown": 0.0},
		"problems":       map[string]any{},
		"models":         map[string]any{"unknown": 2.0},
		"agent_versions": map[string]any{"1.2.3": 1.0, "unknown": 1.0},
		"labels":         map[string]any{"lab": 1.0},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("summary:\ngot  %v\nwant %v", got, want)
	}
	var s fleet.Summary
	wantJSON(t, "summary online", do(t, "GET", ts.URL+"/api/summary?filter=online", nil), 200, &s)
	if s.Total != 1 || s.Online != 1 || s.States["lost"] != 0 {
		t.Errorf("summary?filter=online: %+v", s)
	}
	wantError(t, "summary bogus filter", do(t, "GET", ts.URL+"/api/summary?filter=bogus", nil), 400, 400, `unknown filter "bogus"`)
	wantError(t, "POST summary", do(t, "POST", ts.URL+"/api/summary", nil), 404, 405, "")
}

// The big fleet's summary over HTTP agrees with the devices it lists.
func TestSummaryBigFleet(t *testing.T) {
	ts, _ := bigServer(t, 1000)
	var s fleet.Summary
	wantJSON(t, "summary", do(t, "GET", ts.URL+"/api/summary", nil), 200, &s)
	var devs []api.Device
	wantJSON(t, "devices", do(t, "GET", ts.URL+"/api/devices", nil), 200, &devs)
	states, problems, models := map[string]int{}, 0, map[string]int{}
	for _, d := range devs {
		states[d.State]++
		if len(d.Problems) > 0 {
			problems++
		}
		m := "unknown"
		if d.Health != nil && d.Health.Model != "" {
			m = d.Health.Model
		}
		models[m]++
	}
	if s.Total != 1000 || s.WithProblems != problems || s.Online != states["online"] || s.States["lost"] != states["lost"] ||
		s.States["offline"] != states["offline"] || !reflect.DeepEqual(map[string]int(s.Models), models) {
		t.Errorf("summary %+v\nfrom the list: states %v, %d with problems, models %v", s, states, problems, models)
	}
	// bigFleet: every 20th and every 50th has problems (60 of 1000), every
	// 50th is hot, every 33rd is lost, every 97th offline.
	if s.WithProblems != 60 || s.States["offline"] != 10 || s.States["lost"] != 30 || s.Problems["hot"] != 20 || s.Labels["lab"] != 998 {
		t.Errorf("summary %+v", s)
	}
}
