package cmdexec

// Named TestDocker* so the ARMv7 qemu run can leave them out.

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pifleet/pifleet/agent/internal/runner"
	"github.com/pifleet/pifleet/internal/policy"
	"github.com/pifleet/pifleet/internal/runnertest"
	"github.com/pifleet/pifleet/internal/wire"
)

func TestDockerCommandRunsOnceWithLiteralArgv(t *testing.T) {
	img := runnertest.Busybox(t)
	r, err := runner.New(runner.Options{Engine: runnertest.RequireDocker(t), Network: "none", Instance: fmt.Sprintf("cmdexec-%d", time.Now().UnixNano())})
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.New(policy.Config{Tools: map[string]policy.Tool{
		"say": {Image: img, Entrypoint: []string{"printf", "[%s]\n"}, VerbWords: 1, Read: []string{"hello"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	pub, key, _ := ed25519.GenerateKey(nil)
	dbPath := filepath.Join(t.TempDir(), "commands.db")
	open := func() *Handler {
		st, err := OpenStore(dbPath)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		h, err := New(Options{Device: "pi1", Keys: []ed25519.PublicKey{pub}, Store: st, Policy: p, Runner: r})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	h := open()
	argv := []string{"hello", "; rm -rf /", "$(id)", "`id`", "a b"}
	c := wire.Command{V: 1, ID: "lit1", Hub: "hub1", Device: "pi1", ReplyTo: "hub1",
		Created: time.Now(), Expires: time.Now().Add(time.Minute), Tool: "say", Argv: argv}
	c.Sign(key)
	payload, _ := jsonMarshal(c)
	var s sink
	h.HandleCommand(context.Background(), payload, &s)
	h.HandleCommand(context.Background(), payload, &s) // QoS 1 redelivery
	h.Wait()
	chunks, finals := s.snapshot()
	if len(finals) != 1 {
		t.Fatalf("%d finals, want 1: %+v", len(finals), finals)
	}
	want := "[hello]\n[; rm -rf /]\n[$(id)]\n[`id`]\n[a b]\n"
	var streamed strings.Builder
	for i, ch := range chunks {
		if ch.Seq != uint64(i+1) {
			t.Errorf("chunk %d has seq %d", i, ch.Seq)
		}
		streamed.WriteString(ch.Data)
	}
	if f := finals[0]; f.Outcome != wire.OutcomeExited || f.ExitCode != 0 || f.Output != want || streamed.String() != want || f.Seq != uint64(len(chunks)+1) {
		t.Errorf("final %+v, streamed %q; want exit 0 with output %q", f, streamed.String(), want)
	}
	// Restarted agent, same store: the redelivery does not run it again.
	h2 := open2(t, dbPath, pub, p, r, h)
	h2.HandleCommand(context.Background(), payload, &s)
	h2.Wait()
	if _, finals := s.snapshot(); len(finals) != 1 {
		t.Errorf("after restart: %d finals, want still 1", len(finals))
	}
	if ids, _ := r.Containers(context.Background()); len(ids) != 0 {
		t.Errorf("containers left behind: %v", ids)
	}
}

// open2 reopens the store after the first handler's store is closed.
func open2(t *testing.T, dbPath string, pub ed25519.PublicKey, p *policy.Policy, r Runner, old *Handler) *Handler {
	old.o.Store.Close()
	st, err := OpenStore(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h, err := New(Options{Device: "pi1", Keys: []ed25519.PublicKey{pub}, Store: st, Policy: p, Runner: r})
	if err != nil {
		t.Fatal(err)
	}
	return h
}
