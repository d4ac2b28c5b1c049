package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/api"
	"github.com/pifleet/pifleet/hub/internal/chat"
	"github.com/pifleet/pifleet/hub/internal/fleet"
)

// steps reports pi1 running, then done, each after the test says so,
// and answers "done".
type steps struct{ next chan struct{} }

func (s steps) Handle(ctx context.Context, _ chat.Request, _ []string) chat.Reply {
	for _, st := range []chat.PiStatus{{Device: "pi1", State: chat.PiRunning}, {Device: "pi1", State: chat.PiOK, Took: 2700 * time.Millisecond}} {
		chat.Progress(ctx, chat.Status{Pis: []chat.PiStatus{st}})
		select {
		case <-s.next:
		case <-ctx.Done():
			return chat.Reply{Text: "cancelled", Problem: true}
		}
	}
	return chat.Reply{Text: "done"}
}

// A client that accepts NDJSON gets each progress line as it happens,
// then the reply; one that does not gets the reply alone, as before.
func TestAskStreamsProgress(t *testing.T) {
	eng := chat.New(fleet.New(nil), nil)
	st := steps{next: make(chan struct{})}
	eng.Handle("slow", "a slow command", st)
	ts := httptest.NewServer((&api.Server{Fleet: fleet.New(nil), Engine: eng}).Handler())
	t.Cleanup(ts.Close)

	req, _ := http.NewRequest("POST", ts.URL+"/api/ask", strings.NewReader(`{"text":"slow"}`))
	req.Header.Set("Accept", "application/json, "+api.NDJSON+"; q=0.9")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != api.NDJSON {
		t.Fatalf("status %d, Content-Type %q, want 200 and %s", resp.StatusCode, ct, api.NDJSON)
	}
	dec := json.NewDecoder(resp.Body)
	for _, want := range []string{"pi1 ⏳ running", "pi1 ✅ 2.7 s"} {
		var ev api.AskEvent
		if err := dec.Decode(&ev); err != nil || ev.Progress != want || ev.Reply != nil {
			t.Fatalf("event %+v, %v; want progress %q", ev, err, want)
		}
		st.next <- struct{}{} // the handler goes on only once the line arrived
	}
	var ev api.AskEvent
	if err := dec.Decode(&ev); err != nil || ev.Reply == nil || ev.Reply.Text != "done" || ev.Progress != "" {
		t.Fatalf("last event %+v, %v; want the reply", ev, err)
	}
	if err := dec.Decode(&ev); err == nil {
		t.Errorf("more after the reply: %+v", ev)
	}

	go func() { st.next <- struct{}{}; st.next <- struct{}{} }()
	var r chat.Reply
	wantJSON(t, "ask without streaming", do(t, "POST", ts.URL+"/api/ask", strings.NewReader(`{"text":"slow"}`)), http.StatusOK, &r)
	if r.Text != "done" {
		t.Errorf("reply %+v", r)
	}
}
