package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/pifleet/pifleet/hub/internal/api"
	"github.com/pifleet/pifleet/hub/internal/chat"
	"github.com/pifleet/pifleet/hub/internal/fleet"
	"github.com/pifleet/pifleet/internal/shellwords"
	"github.com/pifleet/pifleet/internal/testenv"
)

// TestAskTextKeepsWords: what the shell split stays split the same way
// when the engine splits it again.
func TestAskTextKeepsWords(t *testing.T) {
	for _, args := range [][]string{
		{"where pi1"},
		{"aws", "pi1", "s3", "ls", "s3://a b"},
		{"aws", "pi1", "it's", `back\slash`, `"q"`, ""},
		{"fleet", "online"},
	} {
		got, err := shellwords.Split(askText(args))
		want := args
		if len(args) == 1 {
			want, _ = shellwords.Split(args[0])
		}
		if err != nil || fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
			t.Errorf("askText(%q) splits into %q, %v; want %q", args, got, err, want)
		}
	}
}

// piSteps reports its statuses (default: pi1 running, then done), each
// once the CLI has shown the one before (shown), and answers "done".
type piSteps struct {
	shown    chan struct{}
	statuses []chat.Status
}

func (s piSteps) Handle(ctx context.Context, _ chat.Request, _ []string) chat.Reply {
	statuses := s.statuses
	if statuses == nil {
		statuses = []chat.Status{{Pis: []chat.PiStatus{{Device: "pi1", State: chat.PiRunning}}},
			{Pis: []chat.PiStatus{{Device: "pi1", State: chat.PiOK, Took: 2700 * time.Millisecond}}}}
	}
	for _, st := range statuses {
		chat.Progress(ctx, st)
		select {
		case <-s.shown:
		case <-ctx.Done():
			return chat.Reply{Text: "cancelled", Problem: true}
		}
	}
	return chat.Reply{Text: "done"}
}

// signalling is a buffer that says when something was written to it.
type signalling struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	wrote chan struct{}
}

func (s *signalling) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.buf.Write(p)
	select {
	case s.wrote <- struct{}{}:
	default:
	}
	return n, err
}

func (s *signalling) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// `pifleet ask --progress` shows each progress line on stderr as the hub
// streams it (the real API handler and command engine), and the answer
// on stdout; without the flag (stderr is no terminal here) it asks as
// before and shows none.
func TestAskShowsProgress(t *testing.T) {
	steps := piSteps{shown: make(chan struct{})}
	h := slowHub(steps)
	var accepts []string
	var mu sync.Mutex
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		accepts = append(accepts, r.Header.Get("Accept"))
		mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	stderr := &signalling{wrote: make(chan struct{}, 4)}
	go func() { // each line shown lets the command go on
		for range stderr.wrote {
			steps.shown <- struct{}{}
		}
	}()
	var stdout bytes.Buffer
	err := Run(t.Context(), Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: stderr,
		Getenv: func(k string) string { return map[string]string{"PIFLEET_HUB": ts.URL}[k] }}, []string{"ask", "--progress", "slow"})
	close(stderr.wrote)
	if err != nil || stdout.String() != "done\n" || stderr.String() != "pi1 ⏳ running\npi1 ✅ 2.7 s\n" {
		t.Errorf("ask --progress slow: err %v, stdout %q, stderr %q; want done, and the two progress lines on stderr", err, stdout.String(), stderr.String())
	}

	go func() { steps.shown <- struct{}{}; steps.shown <- struct{}{} }()
	code, out, errOut := pifleet(t, map[string]string{"PIFLEET_HUB": ts.URL}, "ask", "slow")
	if code != 0 || out != "done\n" || errOut != "" {
		t.Errorf("ask slow: exit %d, stdout %q, stderr %q; want done and no progress", code, out, errOut)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(accepts) != 2 || accepts[0] != api.NDJSON || accepts[1] != "" {
		t.Errorf("Accept headers %q, want %s with --progress, none without", accepts, api.NDJSON)
	}
}

// slowHub is the real API handler with the command "slow" answered by
// steps.
func slowHub(steps piSteps) http.Handler {
	eng := chat.New(fleet.New(nil), nil)
	eng.Handle("slow", "a slow command", steps)
	return (&api.Server{Fleet: fleet.New(nil), Engine: eng}).Handler()
}

// On a terminal (a real pty) progress is on by default: one line,
// rewritten in place, cut to the terminal's width, cleared before the
// answer.
func TestAskProgressOnATerminal(t *testing.T) {
	many := chat.Status{}
	for i := range 6 {
		many.Pis = append(many.Pis, chat.PiStatus{Device: fmt.Sprintf("pi-%d", i), State: chat.PiRunning})
	}
	steps := piSteps{shown: make(chan struct{}), statuses: []chat.Status{
		{Pis: []chat.PiStatus{{Device: "pi1", State: chat.PiRunning}}}, many}}
	ts := httptest.NewServer(slowHub(steps))
	t.Cleanup(ts.Close)
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatalf("open a pty: %v", err)
	}
	t.Cleanup(func() { ptmx.Close(); tty.Close() })
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 24, Cols: 40}); err != nil {
		t.Fatal(err)
	}
	var seen signalling
	seen.wrote = make(chan struct{}, 64)
	go func() { _, _ = io.Copy(&seen, ptmx) }()
	// 40 columns: the line is cut to 38 and an ellipsis.
	cut := "\r\033[K" + many.Line()[:len("pi-0 ⏳ running · pi-1 ⏳ running · pi-2")]
	go func() { // each line shown lets the command go on
		for _, want := range []string{"\r\033[Kpi1 ⏳ running", cut + "…"} {
			for !strings.Contains(seen.String(), want) {
				if _, ok := <-seen.wrote; !ok {
					return
				}
			}
			steps.shown <- struct{}{}
		}
	}()
	var stdout bytes.Buffer
	err = Run(t.Context(), Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: tty,
		Getenv: func(k string) string { return map[string]string{"PIFLEET_HUB": ts.URL}[k] }}, []string{"ask", "slow"})
	if err != nil || stdout.String() != "done\n" {
		t.Fatalf("ask slow on a terminal: err %v, stdout %q", err, stdout.String())
	}
	want := "\r\033[Kpi1 ⏳ running" + cut + "…\r\033[K"
	testenv.Eventually(t, 10*time.Second, func() string {
		if got := seen.String(); got != want {
			return fmt.Sprintf("the terminal shows %q, want %q", got, want)
		}
		return ""
	})
}
