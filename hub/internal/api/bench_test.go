package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/api"
	"github.com/pifleet/pifleet/hub/internal/chat"
	"github.com/pifleet/pifleet/hub/internal/fleet"
	"github.com/pifleet/pifleet/internal/wire"
)

// Shapes the big fleet is made of (a mixed fleet of real models, two agent
// versions, a few sites).
var (
	bigModels   = []string{"Raspberry Pi 3 Model B Rev 1.2", "Raspberry Pi 3 Model B Plus Rev 1.3", "Raspberry Pi 4 Model B Rev 1.4", "Raspberry Pi Zero 2 W Rev 1.0"}
	bigVersions = []string{"v0.1.0", "v0.1.0", "v0.1.0", "v0.2.0"}
)

// bigFleet builds a fleet of n devices through the fleet's normal Apply
// path, from real wire JSON: each Pi's status is internal/wire's
// testdata/status.json with its own id, addresses, model, agent version
// and labels. Every 20th Pi has problems (under-voltage and throttled, as
// in the testdata), every 50th is also hot; every 33rd Pi is lost and
// every 97th shut down cleanly; every 400th never sent a status.
func bigFleet(tb testing.TB, n int, now func() time.Time) *fleet.Fleet {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "internal", "wire", "testdata", "status.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var tmpl wire.Status
	if err := json.Unmarshal(raw, &tmpl); err != nil {
		tb.Fatal(err)
	}
	f := fleet.New(now)
	must := func(topic string, b []byte) {
		if err := f.Apply(topic, b); err != nil {
			tb.Fatalf("Apply %s: %v", topic, err)
		}
	}
	for i := range n {
		id := fmt.Sprintf("pi-%05d", i)
		epoch := uint64(1795568144352 + i)
		state, _ := json.Marshal(wire.State{V: 1, State: wire.StateOnline, Epoch: epoch, Time: tmpl.Time})
		must(wire.StateTopic(id), state)
		if i%400 != 399 {
			st := tmpl
			st.ID, st.Hostname, st.Epoch = id, id, epoch
			st.AgentVersion = bigVersions[i%len(bigVersions)]
			st.Labels = []string{"lab", fmt.Sprintf("site-%d", i%8)}
			st.Addresses = append([]wire.Address(nil), tmpl.Addresses...)
			st.Addresses[1].Address = fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255)
			st.Addresses[2].Address = fmt.Sprintf("2001:db8::%x", i)
			st.Addresses[3].Address = fmt.Sprintf("fe80::%x", i)
			st.Addresses[4].Address = fmt.Sprintf("198.51.%d.%d", (i>>8)&255, i&255)
			h := &st.Health
			h.Model = bigModels[i%len(bigModels)]
			temp := 40 + float64(i%30)
			h.TempC = &temp
			switch {
			case i%50 == 0:
				hot := 83.5
				h.TempC = &hot
				h.Problems = []wire.Problem{wire.ProblemUnderVoltage, wire.ProblemThrottled, wire.ProblemHot}
			case i%20 == 0:
				// the testdata's problems
			default:
				thr := wire.DecodeThrottle(0)
				thr.Source = "vcgencmd"
				h.Throttle = &thr
				h.Problems = nil
			}
			b, err := json.Marshal(st)
			if err != nil {
				tb.Fatal(err)
			}
			must(wire.StatusTopic(id), b)
		}
		switch {
		case i%33 == 32:
			lost, _ := json.Marshal(wire.State{V: 1, State: wire.StateLost, Epoch: epoch})
			must(wire.StateTopic(id), lost)
		case i%97 == 96:
			off, _ := json.Marshal(wire.State{V: 1, State: wire.StateOffline, Epoch: epoch})
			must(wire.StateTopic(id), off)
		}
	}
	return f
}

// BenchmarkDevices10k serves GET /api/devices over 10,000 devices through
// the real handler (auth middleware included) into a ResponseWriter that
// counts and drops the body, as a socket would take it: the hub's own cost
// of an answer. BenchmarkDevices10kLoopback is what a client waits for.
//
//	go test ./hub/internal/api -run '^$' -bench Devices10k -benchmem -count 5
func BenchmarkDevices10k(b *testing.B) {
	f := bigFleet(b, 10000, nil)
	h := (&api.Server{Fleet: f, Engine: chat.New(f, nil), Token: "tok"}).Handler()
	for _, c := range []struct{ name, path string }{
		{"all", "/api/devices"},
		{"problems", "/api/devices?filter=problems"},
		{"page500", "/api/devices?limit=500&after=pi-05000"},
		{"summary", "/api/summary"},
	} {
		b.Run(c.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", "http://127.0.0.1"+c.path, nil)
			req.Header.Set("Authorization", "Bearer tok")
			b.ReportAllocs()
			var w *discardWriter
			for b.Loop() {
				w = &discardWriter{header: http.Header{}}
				h.ServeHTTP(w, req)
				if w.code != http.StatusOK {
					b.Fatalf("%s: %d", c.path, w.code)
				}
			}
			b.ReportMetric(float64(w.n), "body-bytes")
		})
	}
	// A list while the background pass runs every 5 s at a 30 s
	// heartbeat: the reports of the last pass interval, 1/6 of the Pis,
	// are not encoded yet.
	b.Run("all-sixth-new", func(b *testing.B) {
		srv := &api.Server{Fleet: f, Engine: chat.New(f, nil), WarmEvery: -1}
		h := srv.Handler()
		req := httptest.NewRequest("GET", "http://127.0.0.1/api/devices", nil)
		h.ServeHTTP(&discardWriter{header: http.Header{}}, req)
		devs := f.List()
		next := 0
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			for range len(devs) / 6 {
				d := &devs[next%len(devs)]
				next++
				if d.Status != nil {
					p, _ := json.Marshal(d.Status) // the same report again: a new status in the fleet
					if err := f.Apply(wire.StatusTopic(d.ID), p); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StartTimer()
			w := &discardWriter{header: http.Header{}}
			h.ServeHTTP(w, req)
			if w.code != http.StatusOK {
				b.Fatalf("%d", w.code)
			}
		}
	})
	// A hub that was never asked before (or, without the background pass,
	// asked a heartbeat after the last list, when every Pi has reported
	// again): every device encoded afresh.
	b.Run("all-cold", func(b *testing.B) {
		req := httptest.NewRequest("GET", "http://127.0.0.1/api/devices", nil)
		b.ReportAllocs()
		for b.Loop() {
			w := &discardWriter{header: http.Header{}}
			(&api.Server{Fleet: f, Engine: chat.New(f, nil), WarmEvery: -1}).Handler().ServeHTTP(w, req)
			if w.code != http.StatusOK {
				b.Fatalf("%d", w.code)
			}
		}
	})
}

// BenchmarkDevices10kLoopback is GET /api/devices over 10,000 devices as a
// client sees it: a real HTTP server on loopback, the whole body read.
// "cold" encodes every device afresh, as for the first list after the hub
// started (or any list a heartbeat after the last without the background
// pass, when every Pi has reported again); "warm" finds every device
// encoded, as the background pass keeps them while lists are asked for
// (but for the reports of its last 5 s).
func BenchmarkDevices10kLoopback(b *testing.B) {
	f := bigFleet(b, 10000, nil)
	warm := (&api.Server{Fleet: f, Engine: chat.New(f, nil)}).Handler()
	for _, c := range []struct {
		name string
		h    http.Handler
	}{
		{"cold", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			(&api.Server{Fleet: f, Engine: chat.New(f, nil), WarmEvery: -1}).Handler().ServeHTTP(w, r)
		})},
		{"warm", warm},
	} {
		b.Run(c.name, func(b *testing.B) {
			ts := httptest.NewServer(c.h)
			defer ts.Close()
			b.ReportAllocs()
			var n int64
			for b.Loop() {
				resp, err := http.Get(ts.URL + "/api/devices")
				if err != nil {
					b.Fatal(err)
				}
				n, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					b.Fatalf("%d %v", resp.StatusCode, err)
				}
			}
			b.ReportMetric(float64(n), "body-bytes")
		})
	}
}

// discardWriter is an http.ResponseWriter that keeps only the status and
// the number of bytes written.
type discardWriter struct {
	header http.Header
	code   int
	n      int
}

func (w *discardWriter) Header() http.Header { return w.header }
func (w *discardWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *discardWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.n += len(p)
	return len(p), nil
}
