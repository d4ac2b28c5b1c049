package cmdexec

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pifleet/pifleet/agent/internal/runner"
	"github.com/pifleet/pifleet/internal/policy"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/wire"
)

// gateRunner blocks every run until release is closed, saying on started
// which job began.
type gateRunner struct {
	countingRunner
	started chan string
	release chan struct{}
}

func (r *gateRunner) Run(ctx context.Context, job runner.Job, emit runner.Emit) runner.Result {
	r.started <- job.ID
	<-r.release
	return r.countingRunner.Run(ctx, job, emit)
}

// logBuffer collects log records (all levels).
type logBuffer struct {
	mu   sync.Mutex
	msgs []string
}

func (b *logBuffer) Enabled(context.Context, slog.Level) bool { return true }
func (b *logBuffer) Handle(_ context.Context, r slog.Record) error {
	b.mu.Lock()
	b.msgs = append(b.msgs, r.Level.String()+" "+r.Message)
	b.mu.Unlock()
	return nil
}
func (b *logBuffer) WithAttrs([]slog.Attr) slog.Handler { return b }
func (b *logBuffer) WithGroup(string) slog.Handler      { return b }
func (b *logBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.msgs...)
}

// newIntakeFixture is newFixture with intake bounds and a logger that
// keeps every record.
func newIntakeFixture(t *testing.T, r Runner, in IntakeOptions) (*fixture, *logBuffer) {
	t.Helper()
	f := newFixture(t, nil)
	if r == nil {
		r = f.run
	}
	logs := &logBuffer{}
	p, err := policy.New(policy.Config{})
	if err != nil {
		t.Fatal(err)
	}
	f.h, err = New(Options{Device: "pi1", Keys: []ed25519.PublicKey{f.pub}, Store: f.store, Policy: p, Runner: r,
		Now: func() time.Time { return now }, FlushEvery: 10 * time.Millisecond, Intake: in, Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	return f, logs
}

// forged returns n payloads that look like commands for pi1 from hub1,
// each with its own id, signed by a key pi1 does not trust.
func forged(f *fixture, prefix string, n int) [][]byte {
	_, stranger, _ := ed25519.GenerateKey(nil)
	out := make([][]byte, n)
	for i := range out {
		c := f.command(fmt.Sprintf("%s%d", prefix, i), "ec2", "describe-instances")
		c.Sign(stranger)
		out[i] = f.payload(c, false)
	}
	return out
}

// waitDone fails the test unless fn returns within d.
func waitDone(t *testing.T, d time.Duration, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { fn(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
	}
}

// With the verifiers stuck, HandleCommand neither blocks nor starts
// goroutines: the queue holds QueueLen payloads and the rest are dropped
// and counted. Wait waits for the queued ones and the runs; nothing
// queued is lost.
func TestIntakeQueueBoundWhilePoolStuck(t *testing.T) {
	gr := &gateRunner{started: make(chan string, 4), release: make(chan struct{})}
	f, _ := newIntakeFixture(t, gr, IntakeOptions{QueueLen: 4, Verifiers: 1, MaxActive: 1})
	var s sink
	ctx := context.Background()
	stuck(t, f, gr, &s)
	flood := forged(f, "forged", 1004)
	goroutines := runtime.NumGoroutine()
	waitDone(t, 10*time.Second, "HandleCommand with the verifiers stuck", func() {
		for _, p := range flood {
			f.h.HandleCommand(ctx, p, &s)
		}
	})
	if grew := runtime.NumGoroutine() - goroutines; grew > 5 {
		t.Errorf("1004 payloads with the verifiers stuck started %d goroutines; want none", grew)
	}
	if q, d := len(f.h.in.queue), f.h.Stats.Dropped.Load(); q != 4 || d != 1000 {
		t.Fatalf("queued %d, dropped %d; want 4 queued (QueueLen) and 1000 dropped", q, d)
	}
	if got := f.h.in.bytes.Load(); got != int64(4*len(flood[0])) {
		t.Errorf("queued bytes %d, want %d", got, 4*len(flood[0]))
	}

	waited := make(chan struct{})
	go func() { f.h.Wait(); close(waited) }()
	select {
	case <-waited:
		t.Fatal("Wait returned while a command was running and payloads were queued")
	case <-time.After(100 * time.Millisecond):
	}
	close(gr.release)
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return after the runs were released")
	}
	st := &f.h.Stats
	if st.Received.Load() != 1006 || st.Ran.Load() != 2 || st.Rejected.Load() != 4 || st.Dropped.Load() != 1000 || st.Malformed.Load() != 0 {
		t.Errorf("Received %d Ran %d Rejected %d Dropped %d Malformed %d; want 1006 2 4 1000 0",
			st.Received.Load(), st.Ran.Load(), st.Rejected.Load(), st.Dropped.Load(), st.Malformed.Load())
	}
	_, finals := s.snapshot()
	byOutcome := map[wire.Outcome]int{}
	for _, fin := range finals {
		byOutcome[fin.Outcome]++
	}
	if byOutcome[wire.OutcomeExited] != 2 || byOutcome[wire.OutcomeRejected] != 4 {
		t.Errorf("finals by outcome %v; want 2 exited (the signed ones) and 4 rejected (the queued forged ones)", byOutcome)
	}
	if f.h.in.bytes.Load() != 0 {
		t.Errorf("queued bytes %d after Wait, want 0", f.h.in.bytes.Load())
	}
	testenv.Eventually(t, 10*time.Second, func() string {
		if n := f.h.in.workers.Load(); n != 0 {
			return fmt.Sprintf("%d verifiers still running with the queue empty", n)
		}
		return ""
	})
}

// QueueBytes bounds the queue as well as QueueLen: large payloads are
// dropped once their total would exceed it.
func TestIntakeQueueBytes(t *testing.T) {
	gr := &gateRunner{started: make(chan string, 2), release: make(chan struct{})}
	f, _ := newIntakeFixture(t, gr, IntakeOptions{QueueLen: 100, QueueBytes: 1, Verifiers: 1, MaxActive: 1})
	if f.h.o.Intake.QueueBytes != wire.MaxPayload {
		t.Fatalf("QueueBytes %d, want raised to wire.MaxPayload", f.h.o.Intake.QueueBytes)
	}
	var s sink
	stuck(t, f, gr, &s)
	c := f.command("big", "ec2", "describe-instances", strings.Repeat("x", wire.MaxPayload/3))
	big := f.payload(c, false)
	for range 5 {
		f.h.HandleCommand(context.Background(), big, &s)
	}
	if q, d := len(f.h.in.queue), f.h.Stats.Dropped.Load(); q != 2 || d != 3 {
		t.Errorf("%d-byte payloads: queued %d, dropped %d; want 2 and 3 (QueueBytes %d)", len(big), q, d, wire.MaxPayload)
	}
	close(gr.release)
	waitDone(t, 30*time.Second, "Wait", f.h.Wait)
}

// A signed command amid a flood of forged ones runs, the forged ones are
// rejected, only a few of those rejections are published (not retained),
// and the logs stay short: every log line a flood reaches is limited.
func TestIntakeSignedAmidForgedFloodRuns(t *testing.T) {
	f, logs := newIntakeFixture(t, nil, IntakeOptions{QueueLen: 1000})
	var s sink
	ctx := context.Background()
	flood := forged(f, "forged", 600)
	for _, p := range flood[:300] {
		f.h.HandleCommand(ctx, p, &s)
	}
	f.h.HandleCommand(ctx, f.payload(f.command("real", "ec2", "describe-instances"), true), &s)
	for _, p := range flood[300:] {
		f.h.HandleCommand(ctx, p, &s)
	}
	waitDone(t, 30*time.Second, "Wait", f.h.Wait)
	if f.run.count() != 1 || f.run.jobs[0].ID != "real" {
		t.Fatalf("runs %+v; want the signed command alone", f.run.jobs)
	}
	st := &f.h.Stats
	if st.Rejected.Load() != 600 || st.Dropped.Load() != 0 || st.RejectionsLimited.Load() != 600-20 {
		t.Errorf("Rejected %d Dropped %d RejectionsLimited %d; want 600 0 580", st.Rejected.Load(), st.Dropped.Load(), st.RejectionsLimited.Load())
	}
	_, finals := s.snapshot()
	var rejected, real int
	s.mu.Lock()
	for i, fin := range finals {
		switch {
		case fin.ID == "real" && fin.Outcome == wire.OutcomeExited && s.retained[i]:
			real++
		case fin.Outcome == wire.OutcomeRejected && !s.retained[i] && strings.Contains(fin.Error, "bad signature"):
			rejected++
		default:
			t.Errorf("unexpected final %+v (retained %v)", fin, s.retained[i])
		}
	}
	s.mu.Unlock()
	if real != 1 || rejected != 20 {
		t.Errorf("%d finals of the signed command, %d rejections published; want 1 and 20 (the rate limit)", real, rejected)
	}
	if n := len(logs.lines()); n > 12 {
		t.Errorf("%d log records for 600 forged commands and one real one, want at most 12:\n%s", n, strings.Join(logs.lines(), "\n"))
	}
}

// Garbage, forged copies of a handled command, replays of a signed one and
// drops: each kind logs a few lines, then goes quiet (Stats count them).
func TestIntakeFloodLogsAreLimited(t *testing.T) {
	f, logs := newIntakeFixture(t, nil, IntakeOptions{QueueLen: 2000})
	var s sink
	ctx := context.Background()
	signed := f.payload(f.command("known", "ec2", "describe-instances"), true)
	f.h.HandleCommand(ctx, signed, &s)
	f.h.Wait()
	base := len(logs.lines()) // running, finished
	c := f.command("known", "ec2", "describe-instances")
	forgedCopy := f.payload(c, false) // unsigned copy of a handled id
	for i := range 300 {
		f.h.HandleCommand(ctx, []byte("garbage"), &s)                              // fails the precheck
		f.h.HandleCommand(ctx, []byte(fmt.Sprintf(`{"v":1,"id":"g%d"}`, i)), &s)   // fails decoding
		f.h.HandleCommand(ctx, forgedCopy, &s)                                     // known id, does not verify
		f.h.HandleCommand(ctx, signed, &s)                                         // replay of a signed command
		f.h.HandleCommand(ctx, []byte(strings.Repeat(" ", wire.MaxPayload+1)), &s) // too large
	}
	waitDone(t, 60*time.Second, "Wait", f.h.Wait)
	st := &f.h.Stats
	if st.Malformed.Load() != 900 || st.Replayed.Load() != 600 || st.Notices.Load() != 1 || st.NoticesLimited.Load() != 299 || f.run.count() != 1 {
		t.Errorf("Malformed %d Replayed %d Notices %d NoticesLimited %d runs %d; want 900 600 1 299 1",
			st.Malformed.Load(), st.Replayed.Load(), st.Notices.Load(), st.NoticesLimited.Load(), f.run.count())
	}
	// malformed 5 + replays 5 + one "telling the hub".
	if got := logs.lines()[base:]; len(got) > 11 {
		t.Errorf("%d log records for 1,500 bad payloads, want at most 11:\n%s", len(got), strings.Join(got, "\n"))
	}
	// Drops are limited too.
	gr := &gateRunner{started: make(chan string, 2), release: make(chan struct{})}
	f2, logs2 := newIntakeFixture(t, gr, IntakeOptions{QueueLen: 1, Verifiers: 1, MaxActive: 1})
	stuck(t, f2, gr, &s)
	base = len(logs2.lines())
	for _, p := range forged(f2, "x", 500) {
		f2.h.HandleCommand(ctx, p, &s)
	}
	if d := f2.h.Stats.Dropped.Load(); d != 499 {
		t.Errorf("Dropped %d, want 499 of 500 (one queued)", d)
	}
	if got := logs2.lines()[base:]; len(got) > 3 {
		t.Errorf("%d log records for 499 drops, want at most 3:\n%s", len(got), strings.Join(got, "\n"))
	}
	close(gr.release)
	waitDone(t, 30*time.Second, "Wait", f2.h.Wait)
}

// stuck makes f's only verifier wait: one signed command runs (held by
// gr) and a second one, verified, waits for the only active slot.
func stuck(t *testing.T, f *fixture, gr *gateRunner, s ResultSink) {
	t.Helper()
	f.h.HandleCommand(context.Background(), f.payload(f.command("real-a", "ec2", "describe-instances"), true), s)
	select {
	case id := <-gr.started:
		if id != "real-a" {
			t.Fatalf("started %q", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the first signed command never started")
	}
	f.h.HandleCommand(context.Background(), f.payload(f.command("real-b", "ec2", "describe-instances"), true), s)
	testenv.Eventually(t, 10*time.Second, func() string {
		if n := len(f.h.in.queue); n != 0 {
			return fmt.Sprintf("%d payloads queued, want the verifier to hold real-b", n)
		}
		return ""
	})
}

func TestPrecheck(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"", false}, {"{", false}, {"[]", false}, {"null", false}, {`"x"`, false},
		{"{}", true}, {" \n{\"v\":1}\t", true}, {"{" + strings.Repeat(" ", wire.MaxPayload-2) + "}", true},
		{"{" + strings.Repeat(" ", wire.MaxPayload-1) + "}", false},
	} {
		err := precheck([]byte(tt.in))
		if (err == nil) != tt.want {
			t.Errorf("precheck(%.20q… %d bytes) = %v, want ok %v", tt.in, len(tt.in), err, tt.want)
		}
		if len(tt.in) > wire.MaxPayload && !errors.Is(err, wire.ErrTooLarge) {
			t.Errorf("%d bytes: %v, want ErrTooLarge", len(tt.in), err)
		}
	}
}

// BenchmarkScreenForged is what one verifier spends on one forged command
// (decode, signature check, store lookup): its inverse times
// Intake.Verifiers is the flood rate the intake keeps up with.
func BenchmarkScreenForged(b *testing.B) {
	pub, _, _ := ed25519.GenerateKey(nil)
	_, stranger, _ := ed25519.GenerateKey(nil)
	st, err := OpenStore(b.TempDir() + "/c.db")
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	h, err := New(Options{Device: "pi1", Keys: []ed25519.PublicKey{pub}, Store: st, Runner: &countingRunner{}, Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	payloads := make([][]byte, 1024)
	for i := range payloads {
		c := wire.Command{V: 1, ID: fmt.Sprintf("forged-%08d", i), Hub: "hub1", Device: "pi1", ReplyTo: "hub1",
			Created: now, Expires: now.Add(time.Minute), Tool: "aws", Argv: []string{"ec2", "describe-instances"}}
		c.Sign(stranger)
		payloads[i], _ = jsonMarshal(c)
	}
	var s sink
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.wg.Add(1)
		h.screen(queued{ctx: context.Background(), payload: payloads[i%len(payloads)], out: &s})
	}
	b.StopTimer()
	h.Wait()
}
