package cmdexec

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pifleet/pifleet/agent/internal/runner"
	"github.com/pifleet/pifleet/internal/policy"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/wire"
)

// sink records result records like the MQTT link would publish them.
type sink struct {
	mu       sync.Mutex
	chunks   []wire.Chunk
	finals   []wire.Final
	retained []bool // per final: published retained
	notices  []wire.Notice
	hubs     []string
}

func (s *sink) PublishChunk(hub, id string, c wire.Chunk) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.chunks = append(s.chunks, c)
	return nil
}

func (s *sink) PublishFinal(hub, id string, f wire.Final, retain bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.finals = append(s.finals, f)
	s.retained = append(s.retained, retain)
	s.hubs = append(s.hubs, hub)
	return nil
}

func (s *sink) PublishNotice(hub, id string, n wire.Notice) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notices = append(s.notices, n)
	s.hubs = append(s.hubs, hub)
	return nil
}

// noticesSnapshot returns the notices published so far with the reason.
func (s *sink) noticesSnapshot(reason wire.NoticeReason) []wire.Notice {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ns []wire.Notice
	for _, n := range s.notices {
		if n.Reason == reason {
			ns = append(ns, n)
		}
	}
	return ns
}

func (s *sink) snapshot() ([]wire.Chunk, []wire.Final) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]wire.Chunk(nil), s.chunks...), append([]wire.Final(nil), s.finals...)
}

// countingRunner stands in for the container runner in the checks that
// must stop before anything runs; the Docker tests use the real one.
type countingRunner struct {
	mu   sync.Mutex
	jobs []runner.Job
}

func (r *countingRunner) Run(ctx context.Context, job runner.Job, emit runner.Emit) runner.Result {
	r.mu.Lock()
	r.jobs = append(r.jobs, job)
	r.mu.Unlock()
	emit(wire.Stdout, "ran "+strings.Join(job.Argv, " ")+"\n")
	return runner.Result{Outcome: wire.OutcomeExited, Output: "ran\n", Bytes: 4, ImageID: "sha256:feedface"}
}

func (r *countingRunner) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.jobs)
}

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

type fixture struct {
	key    ed25519.PrivateKey
	pub    ed25519.PublicKey
	dbPath string
	store  *Store
	run    *countingRunner
	h      *Handler
}

func newFixture(t *testing.T, r Runner) *fixture {
	t.Helper()
	pub, key, _ := ed25519.GenerateKey(nil)
	f := &fixture{key: key, pub: pub, dbPath: filepath.Join(t.TempDir(), "commands.db")}
	if r == nil {
		f.run = &countingRunner{}
		r = f.run
	}
	f.open(t, r)
	return f
}

func (f *fixture) open(t *testing.T, r Runner) {
	t.Helper()
	st, err := OpenStore(f.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f.store = st
	p, err := policy.New(policy.Config{Roles: map[string][]string{"ops": {"aws ec2 start-instances"}}})
	if err != nil {
		t.Fatal(err)
	}
	f.h, err = New(Options{Device: "pi1", Keys: []ed25519.PublicKey{f.pub}, Store: st, Policy: p, Runner: r,
		Now: func() time.Time { return now }, FlushEvery: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) command(id string, argv ...string) wire.Command {
	return wire.Command{V: 1, ID: id, Hub: "hub1", Device: "pi1", ReplyTo: "hub1",
		Created: now.Add(-time.Second), Expires: now.Add(59 * time.Second), Tool: "aws", Argv: argv}
}

func (f *fixture) payload(c wire.Command, sign bool) []byte {
	if sign {
		c.Sign(f.key)
	}
	b, _ := jsonMarshal(c)
	return b
}

func (f *fixture) deliver(t *testing.T, s *sink, payload []byte) {
	t.Helper()
	f.h.HandleCommand(context.Background(), payload, s)
	f.h.Wait()
}

func TestRejections(t *testing.T) {
	_, otherKey, _ := ed25519.GenerateKey(nil)
	tests := []struct {
		name   string
		mutate func(f *fixture, c *wire.Command) []byte
		want   string
	}{
		{"unsigned", func(f *fixture, c *wire.Command) []byte { return f.payload(*c, false) }, "bad signature"},
		{"signed by another key", func(f *fixture, c *wire.Command) []byte { c.Sign(otherKey); return f.payload(*c, false) }, "bad signature"},
		{"argv changed after signing", func(f *fixture, c *wire.Command) []byte {
			c.Sign(f.key)
			c.Argv = []string{"ec2", "terminate-instances"}
			return f.payload(*c, false)
		}, "bad signature"},
		{"role added after signing", func(f *fixture, c *wire.Command) []byte {
			c.Sign(f.key)
			c.Role = "ops"
			return f.payload(*c, false)
		}, "bad signature"},
		{"expired", func(f *fixture, c *wire.Command) []byte {
			c.Created, c.Expires = now.Add(-2*time.Minute), now.Add(-time.Minute)
			return f.payload(*c, true)
		}, "expired at"},
		{"expires exactly now", func(f *fixture, c *wire.Command) []byte {
			c.Created, c.Expires = now.Add(-time.Minute), now
			return f.payload(*c, true)
		}, "expired at"},
		{"not yet valid", func(f *fixture, c *wire.Command) []byte {
			c.Created, c.Expires = now.Add(time.Hour), now.Add(time.Hour+time.Minute)
			return f.payload(*c, true)
		}, "clock synchronised"},
		{"ttl too long", func(f *fixture, c *wire.Command) []byte {
			c.Expires = now.Add(48 * time.Hour)
			return f.payload(*c, true)
		}, "time to live"},
		{"for another device", func(f *fixture, c *wire.Command) []byte { c.Device = "pi2"; return f.payload(*c, true) }, `for device "pi2"`},
		{"denied verb", func(f *fixture, c *wire.Command) []byte {
			c.Argv = []string{"iam", "list-users"}
			return f.payload(*c, true)
		}, "never allowed"},
		{"denied flag", func(f *fixture, c *wire.Command) []byte {
			c.Argv = []string{"ec2", "describe-instances", "--profile", "admin"}
			return f.payload(*c, true)
		}, "--profile"},
		{"mutating without role", func(f *fixture, c *wire.Command) []byte {
			c.Argv = []string{"ec2", "start-instances", "--instance-ids", "i-1"}
			return f.payload(*c, true)
		}, "needs a role"},
		{"role that does not grant it", func(f *fixture, c *wire.Command) []byte {
			c.Argv = []string{"ec2", "terminate-instances"}
			c.Role = "ops"
			return f.payload(*c, true)
		}, "none of the roles"},
		{"unknown tool", func(f *fixture, c *wire.Command) []byte { c.Tool = "gcloud"; return f.payload(*c, true) }, "unknown tool"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			c := f.command("c1", "ec2", "describe-instances")
			var s sink
			f.deliver(t, &s, tt.mutate(f, &c))
			chunks, finals := s.snapshot()
			if f.run.count() != 0 || len(chunks) != 0 {
				t.Fatalf("the command ran (%d runs, %d chunks)", f.run.count(), len(chunks))
			}
			if len(finals) != 1 || finals[0].Outcome != wire.OutcomeRejected || !strings.Contains(finals[0].Error, tt.want) {
				t.Fatalf("got finals %+v, want one rejected final mentioning %q", finals, tt.want)
			}
			if fin := finals[0]; fin.ID != "c1" || fin.Device != "pi1" || fin.Seq != 1 || fin.Kind != wire.KindFinal || fin.V != wire.ProtocolVersion {
				t.Errorf("final header = %+v", fin)
			}
			// Only a command that verifies may leave a retained record.
			s.mu.Lock()
			retained := s.retained[0]
			s.mu.Unlock()
			unverified := tt.want == "bad signature" || strings.HasPrefix(tt.want, "for device")
			if retained == unverified {
				t.Errorf("rejection retained = %v, want %v (unverified: %v)", retained, !unverified, unverified)
			}
		})
	}
}

func TestAcceptsAllowedCommands(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(c *wire.Command)
	}{
		{"read verb", func(c *wire.Command) {}},
		{"alias", func(c *wire.Command) { c.Argv = []string{"instances"} }},
		{"mutating with role", func(c *wire.Command) { c.Argv = []string{"ec2", "start-instances"}; c.Role = "ops" }},
		{"hub clock ahead within skew", func(c *wire.Command) { c.Created = now.Add(20 * time.Second); c.Expires = now.Add(80 * time.Second) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			c := f.command("ok1", "ec2", "describe-instances")
			tt.edit(&c)
			var s sink
			f.deliver(t, &s, f.payload(c, true))
			chunks, finals := s.snapshot()
			if f.run.count() != 1 || len(finals) != 1 || finals[0].Outcome != wire.OutcomeExited {
				t.Fatalf("runs %d, finals %+v; want one run and an exited final", f.run.count(), finals)
			}
			if len(chunks) != 1 || chunks[0].Seq != 1 || finals[0].Seq != 2 || chunks[0].ID != "ok1" || chunks[0].Device != "pi1" {
				t.Errorf("chunks %+v final seq %d; want chunk 1 then final 2", chunks, finals[0].Seq)
			}
			if finals[0].ImageID != "sha256:feedface" {
				t.Errorf("final image_id %q, want the runner's image", finals[0].ImageID)
			}
		})
	}
}

func TestMalformedIsDroppedAndCounted(t *testing.T) {
	f := newFixture(t, nil)
	var s sink
	for _, p := range []string{"", "{", `{"v":1}`, `{"v":99,"id":"a","hub":"h","device":"pi1","argv":["x"]}`, `{"v":1,"id":"a/b","hub":"h","device":"pi1","argv":["x"]}`, strings.Repeat("x", wire.MaxPayload+1)} {
		f.deliver(t, &s, []byte(p))
	}
	if _, finals := s.snapshot(); len(finals) != 0 || f.run.count() != 0 {
		t.Errorf("got %d finals, %d runs; want none", len(finals), f.run.count())
	}
	if got := f.h.Stats.Malformed.Load(); got != 6 {
		t.Errorf("Malformed = %d, want 6", got)
	}
}

func TestRedeliveredRunsOnceAcrossRestart(t *testing.T) {
	f := newFixture(t, nil)
	p := f.payload(f.command("once", "ec2", "describe-instances"), true)
	var s sink
	// QoS 1 redelivery, some of it concurrent.
	for i := 0; i < 5; i++ {
		f.h.HandleCommand(context.Background(), p, &s)
	}
	f.h.Wait()
	f.deliver(t, &s, p)
	if got := f.run.count(); got != 1 {
		t.Fatalf("ran %d times, want 1", got)
	}
	if _, finals := s.snapshot(); len(finals) != 1 {
		t.Fatalf("%d finals, want 1 (a redelivery must not overwrite the retained final)", len(finals))
	}
	// Five redeliveries, one notice: the others fall in its rate limit.
	if n := s.noticesSnapshot(wire.NoticeDuplicate); len(n) != 1 || f.h.Stats.Replayed.Load() != 5 || f.h.Stats.NoticesLimited.Load() != 4 {
		t.Fatalf("notices %+v, Replayed %d, NoticesLimited %d; want 1 notice for 5 redeliveries",
			n, f.h.Stats.Replayed.Load(), f.h.Stats.NoticesLimited.Load())
	}
	// Restart the agent: same store file, new handler.
	f.store.Close()
	f.open(t, f.run)
	f.deliver(t, &s, p)
	if got := f.run.count(); got != 1 {
		t.Fatalf("after restart ran %d times, want 1", got)
	}
	if got := f.h.Stats.Replayed.Load(); got != 1 {
		t.Errorf("Replayed after restart = %d, want 1", got)
	}
	// The restarted agent's rate limit starts afresh: it tells the hub.
	if n := s.noticesSnapshot(wire.NoticeDuplicate); len(n) != 2 || f.h.Stats.Notices.Load() != 1 {
		t.Errorf("after restart: notices %+v, Notices %d; want a second notice", n, f.h.Stats.Notices.Load())
	}
	// A different command still runs.
	f.deliver(t, &s, f.payload(f.command("twice", "ec2", "describe-instances"), true))
	if got := f.run.count(); got != 2 {
		t.Errorf("a new command: ran %d in all, want 2", got)
	}
}

func TestStorePrunesExpired(t *testing.T) {
	st, err := OpenStore(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := 0; i < 10; i++ {
		st.Mark(fmt.Sprint("old", i), now.Add(-2*time.Hour), now.Add(-3*time.Hour))
	}
	if fresh, err := st.Mark("new", now.Add(time.Minute), now.Add(-time.Hour)); !fresh || err != nil {
		t.Fatalf("Mark(new) = %v, %v", fresh, err)
	}
	if n := st.Len(); n != 1 {
		t.Errorf("after pruning %d ids remain, want 1", n)
	}
	if fresh, _ := st.Mark("new", now.Add(time.Minute), now); fresh {
		t.Error("Mark of a known id reported fresh")
	}
	// The file is locked by the open store: a second agent fails fast.
	if _, err := OpenStore(filepath.Join(filepath.Dir(stPath(t, st)), "s.db")); err == nil {
		t.Error("a second OpenStore of the same file succeeded")
	}
}

func stPath(t *testing.T, st *Store) string { return st.db.Path() }

func TestChunker(t *testing.T) {
	var got []wire.Chunk
	c := newChunker(4, time.Hour, func(ch wire.Chunk) { got = append(got, ch) })
	c.add(wire.Stdout, "ab")
	c.add(wire.Stdout, "cdefg")
	c.add(wire.Stderr, "x")
	c.add(wire.Stdout, "é€") // multi-byte runes are not split
	last := c.close()
	want := []wire.Chunk{{Seq: 1, Stream: wire.Stdout, Data: "abcd"}, {Seq: 2, Stream: wire.Stdout, Data: "efg"},
		{Seq: 3, Stream: wire.Stderr, Data: "x"}, {Seq: 4, Stream: wire.Stdout, Data: "é"}, {Seq: 5, Stream: wire.Stdout, Data: "€"}}
	if fmt.Sprint(got) != fmt.Sprint(want) || last != 5 {
		t.Errorf("got %v (last %d), want %v (last 5)", got, last, want)
	}
	// The timer flushes a partial chunk.
	var mu sync.Mutex
	var n int
	c = newChunker(1024, 5*time.Millisecond, func(wire.Chunk) { mu.Lock(); n++; mu.Unlock() })
	c.add(wire.Stdout, "partial")
	testenv.Eventually(t, 10*time.Second, func() string {
		mu.Lock()
		defer mu.Unlock()
		if n != 1 {
			return fmt.Sprintf("%d chunks flushed, want the partial one", n)
		}
		return ""
	})
}

func TestLoadPublicKeys(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(nil)
	pub2, _, _ := ed25519.GenerateKey(nil)
	b64 := base64.StdEncoding.EncodeToString(pub)
	file := filepath.Join(t.TempDir(), "hub.pub")
	os.WriteFile(file, []byte("# hub keys\n"+base64.StdEncoding.EncodeToString(pub2)+"\n\n"), 0o644)
	keys, err := LoadPublicKeys([]string{b64, file})
	if err != nil || len(keys) != 2 || !keys[0].Equal(pub) || !keys[1].Equal(pub2) {
		t.Fatalf("got %d keys, %v", len(keys), err)
	}
	for _, bad := range [][]string{nil, {"nope"}, {base64.StdEncoding.EncodeToString([]byte("short"))}} {
		if _, err := LoadPublicKeys(bad); err == nil {
			t.Errorf("LoadPublicKeys(%q) succeeded", bad)
		}
	}
}

func TestNewNeedsKeysAndDevice(t *testing.T) {
	st, _ := OpenStore(filepath.Join(t.TempDir(), "s.db"))
	defer st.Close()
	pub, _, _ := ed25519.GenerateKey(nil)
	for name, o := range map[string]Options{
		"no keys":   {Device: "pi1", Store: st, Runner: &countingRunner{}},
		"bad id":    {Device: "pi/1", Keys: []ed25519.PublicKey{pub}, Store: st, Runner: &countingRunner{}},
		"no store":  {Device: "pi1", Keys: []ed25519.PublicKey{pub}, Runner: &countingRunner{}},
		"no runner": {Device: "pi1", Keys: []ed25519.PublicKey{pub}, Store: st},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

// flakySink fails the first publishes like a link that is reconnecting.
type flakySink struct {
	sink
	fails int
}

func (s *flakySink) PublishFinal(hub, id string, f wire.Final, retain bool) error {
	s.mu.Lock()
	if s.fails > 0 {
		s.fails--
		s.mu.Unlock()
		return fmt.Errorf("not connected to a broker")
	}
	s.mu.Unlock()
	return s.sink.PublishFinal(hub, id, f, retain)
}

func TestFinalRetriedWhileLinkDown(t *testing.T) {
	f := newFixture(t, nil)
	f.h.o.Now = time.Now // the retry deadline needs a moving clock
	c := f.command("r1", "ec2", "describe-instances")
	c.Created, c.Expires = time.Now(), time.Now().Add(time.Minute)
	s := &flakySink{fails: 2}
	f.h.HandleCommand(context.Background(), f.payload(c, true), s)
	f.h.Wait()
	if _, finals := s.snapshot(); len(finals) != 1 {
		t.Fatalf("%d finals after the link came back, want 1", len(finals))
	}
}

// FuzzHandleCommand: whatever arrives on the command topic, the handler
// never panics and never runs an unsigned command.
func FuzzHandleCommand(f *testing.F) {
	f.Add([]byte(`{"v":1,"id":"a","hub":"h","device":"pi1","argv":["s3","ls"],"tool":"aws"}`))
	f.Add([]byte(`{"v":1,"id":"a","hub":"h","device":"pi1","argv":["x"],"sig":"AAAA"}`))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, payload []byte) {
		fx := newFixture(t, nil)
		var s sink
		fx.deliver(t, &s, payload)
		if fx.run.count() != 0 {
			t.Fatalf("an unsigned payload ran: %q", payload)
		}
	})
}
