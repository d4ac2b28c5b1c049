package dispatch

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pifleet/pifleet/hub/internal/chat"
	"github.com/pifleet/pifleet/internal/policy"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/wire"
)

type staticFleet map[string]bool // id → online

func (f staticFleet) Resolve(target string) ([]string, error) {
	if target == "all" {
		var ids []string
		for id := range f {
			ids = append(ids, id)
		}
		return ids, nil
	}
	var out []string
	for _, id := range strings.Split(target, ",") {
		if _, ok := f[id]; !ok {
			return nil, fmt.Errorf("no device %q", id)
		}
		out = append(out, id)
	}
	return out, nil
}

func (f staticFleet) Online(id string) bool { return f[id] }

// pub records publishes and lets a test answer commands like an agent.
type pub struct {
	mu      sync.Mutex
	msgs    []msg
	onCmd   func(c wire.Command)
	failFor string
}

type msg struct {
	topic    string
	retained bool
	payload  []byte
}

func (p *pub) Publish(topic string, qos byte, retained bool, payload []byte) error {
	if p.failFor != "" && strings.Contains(topic, p.failFor) {
		return errors.New("broker gone")
	}
	p.mu.Lock()
	p.msgs = append(p.msgs, msg{topic, retained, payload})
	on := p.onCmd
	p.mu.Unlock()
	if strings.HasSuffix(topic, "/cmd") && on != nil {
		c, err := wire.DecodeCommand(payload)
		if err != nil {
			panic(err)
		}
		go on(c)
	}
	return nil
}

func (p *pub) commands() []wire.Command {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []wire.Command
	for _, m := range p.msgs {
		if strings.HasSuffix(m.topic, "/cmd") {
			c, _ := wire.DecodeCommand(m.payload)
			out = append(out, c)
		}
	}
	return out
}

func (p *pub) clears() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, m := range p.msgs {
		if m.retained && len(m.payload) == 0 {
			out = append(out, m.topic)
		}
	}
	return out
}

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func newTestDispatcher(t *testing.T, p *pub, fl Fleet, mod func(*Options)) (*Dispatcher, ed25519.PublicKey) {
	t.Helper()
	pk, key, _ := ed25519.GenerateKey(nil)
	pol, err := policy.New(policy.Config{
		Roles: map[string][]string{"ops": {"aws ec2 start-instances"}},
		Users: map[string][]string{"U1": {"ops"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Hub: "hub1", Key: key, Fleet: fl, Publisher: p, Policy: pol, Wait: 10 * time.Second, Now: func() time.Time { return t0 }}
	if mod != nil {
		mod(&o)
	}
	d, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return d, pk
}

func send(d *Dispatcher, dev, id string, recs ...any) {
	for _, r := range recs {
		b, _ := json.Marshal(r)
		d.HandleResult(wire.ResultTopic(dev, "hub1", id), b)
	}
}

func chunk(dev, id string, seq uint64, data string) wire.Chunk {
	return wire.Chunk{V: 1, Kind: wire.KindChunk, ID: id, Device: dev, Seq: seq, Stream: wire.Stdout, Data: data}
}

func final(dev, id string, seq uint64, exit int, out string) wire.Final {
	return wire.Final{V: 1, Kind: wire.KindFinal, ID: id, Device: dev, Seq: seq, Outcome: wire.OutcomeExited, ExitCode: exit, DurationMS: 1200, Output: out}
}

func TestHandleSignsSendsAndAggregates(t *testing.T) {
	p := &pub{}
	d, pk := newTestDispatcher(t, p, staticFleet{"pi1": true, "pi2": true, "pi3": false}, nil)
	p.onCmd = func(c wire.Command) {
		// chunks out of order; the final's output differs to show chunks win
		if c.Device == "pi1" {
			send(d, c.Device, c.ID, chunk("pi1", c.ID, 2, "line2\n"), chunk("pi1", c.ID, 1, "line1\n"), final("pi1", c.ID, 3, 0, "x"))
		} else {
			out := strings.Repeat("row\n", 20)
			send(d, c.Device, c.ID, final(c.Device, c.ID, 2, 254, out)) // chunk 1 lost: the final's copy is used
		}
	}
	r := d.Handle(context.Background(), chat.Request{User: "U2", Text: "aws all instances"}, []string{"all", "instances"})
	cmds := p.commands()
	if len(cmds) != 2 {
		t.Fatalf("%d commands sent, want 2 (pi3 is offline)", len(cmds))
	}
	for _, c := range cmds {
		if !c.Verify([]ed25519.PublicKey{pk}) {
			t.Errorf("command to %s is not signed by the hub key", c.Device)
		}
		if c.Hub != "hub1" || c.ReplyTo != "hub1" || c.Tool != "aws" || strings.Join(c.Argv, " ") != "ec2 describe-instances" ||
			!c.Created.Equal(t0) || !c.Expires.Equal(t0.Add(60*time.Second)) || c.Role != "" {
			t.Errorf("command = %+v", c)
		}
	}
	for _, want := range []string{"pi1: ✅ exit 0", "line1\n", "line2", "pi2: ❌ exit 254", "pi3: ⚠ offline: not sent", "1 of 3 Pis succeeded"} {
		if !strings.Contains(r.Text, want) {
			t.Errorf("reply lacks %q:\n%s", want, r.Text)
		}
	}
	if len(r.Sections) != 3 || len(r.Files) != 1 || r.Files[0].Name != "pi2-ec2-describe-instances.txt" || r.Files[0].Content != strings.Repeat("row\n", 20) {
		t.Errorf("sections %d, files %+v; want 3 sections and pi2's whole output as a file", len(r.Sections), r.Files)
	}
	if !r.Problem {
		t.Error("a reply with failures is not marked as a problem")
	}
	waitClears(t, p, 2)
	if len(d.Pending()) != 0 {
		t.Errorf("pending after all finals: %v", d.Pending())
	}
}

// waitClears waits until p has cleared n retained results.
func waitClears(t *testing.T, p *pub, n int) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, func() string {
		if c := p.clears(); len(c) != n {
			return fmt.Sprintf("retained results cleared: %q, want %d", c, n)
		}
		return ""
	})
}

func TestHandleRefusals(t *testing.T) {
	p := &pub{}
	d, _ := newTestDispatcher(t, p, staticFleet{"pi1": true, "pi9": false}, nil)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"pi1"}, "Usage"},
		{[]string{"nope", "s3", "ls"}, `o device "nope"`},
		{[]string{"pi1", "iam", "list-users"}, "never allowed"},
		{[]string{"pi1", "s3", "cp", "s3://a/b", "/etc/x"}, "local path"},
		{[]string{"pi1", "ec2", "terminate-instances"}, "needs a role"},
		{[]string{"pi1", "ec2", "describe-instances", "--profile", "x"}, "--profile"},
		{[]string{"pi9", "s3", "ls"}, "offline"},
	} {
		r := d.Handle(context.Background(), chat.Request{User: "U2"}, tt.args)
		if !r.Problem || !strings.Contains(r.Text, tt.want) {
			t.Errorf("Handle(%q) = %q (problem %v), want a problem mentioning %q", tt.args, r.Text, r.Problem, tt.want)
		}
	}
	if n := len(p.commands()); n != 0 {
		t.Errorf("%d commands sent for refused requests", n)
	}
}

func TestMutatingNeedsConfirmation(t *testing.T) {
	p := &pub{}
	now := t0
	var mu sync.Mutex
	d, _ := newTestDispatcher(t, p, staticFleet{"pi1": true}, func(o *Options) {
		o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	})
	p.onCmd = func(c wire.Command) { send(d, c.Device, c.ID, final(c.Device, c.ID, 1, 0, "started\n")) }
	args := []string{"pi1", "ec2", "start-instances", "--instance-ids", "i-1"}
	// U2 has no role.
	if r := d.Handle(context.Background(), chat.Request{User: "U2"}, args); !r.Problem || !strings.Contains(r.Text, "needs a role") {
		t.Errorf("without role: %q", r.Text)
	}
	r := d.Handle(context.Background(), chat.Request{User: "U1"}, args)
	if r.Confirm == nil || r.Confirm.Token == "" || !strings.Contains(r.Confirm.Summary, "ec2 start-instances --instance-ids i-1 on pi1 (role ops)") {
		t.Fatalf("got %+v, want a confirmation", r)
	}
	if len(p.commands()) != 0 {
		t.Fatal("sent before confirmation")
	}
	if r2 := d.Confirm(context.Background(), "U2", r.Confirm.Token); !r2.Problem || !strings.Contains(r2.Text, "Only the person") {
		t.Errorf("someone else confirming: %q", r2.Text)
	}
	r3 := d.Confirm(context.Background(), "U1", r.Confirm.Token)
	if r3.Problem || !strings.Contains(r3.Text, "started") {
		t.Fatalf("confirmed: %q", r3.Text)
	}
	cmds := p.commands()
	if len(cmds) != 1 || cmds[0].Role != "ops" {
		t.Fatalf("commands %+v, want one with role ops", cmds)
	}
	if r4 := d.Confirm(context.Background(), "U1", r.Confirm.Token); !r4.Problem || !strings.Contains(r4.Text, "used already") {
		t.Errorf("second use: %q", r4.Text)
	}
	// Expired confirmation.
	r = d.Handle(context.Background(), chat.Request{User: "U1"}, args)
	mu.Lock()
	now = now.Add(6 * time.Minute)
	mu.Unlock()
	if r5 := d.Confirm(context.Background(), "U1", r.Confirm.Token); !r5.Problem || !strings.Contains(r5.Text, "expired") {
		t.Errorf("expired token: %q", r5.Text)
	}
	if len(p.commands()) != 1 {
		t.Error("an expired confirmation sent a command")
	}
}

func TestNoAnswerAndLateResultAcrossRestart(t *testing.T) {
	state := filepath.Join(t.TempDir(), "dispatch.json")
	p := &pub{}
	fl := staticFleet{"pi1": true}
	d, _ := newTestDispatcher(t, p, fl, func(o *Options) { o.Wait = 50 * time.Millisecond; o.StateFile = state })
	r := d.Handle(context.Background(), chat.Request{User: "U2", Channel: "C1", Text: "aws pi1 s3 ls", Source: "slack", Thread: "1700000001.000100"}, []string{"pi1", "s3", "ls"})
	if !r.Problem || !strings.Contains(r.Text, "no result within") {
		t.Fatalf("got %q, want no result yet", r.Text)
	}
	id := p.commands()[0].ID
	// The hub restarts: a new dispatcher with the same state file.
	var late []Result
	var mu sync.Mutex
	d2, _ := newTestDispatcher(t, p, fl, func(o *Options) {
		o.StateFile = state
		o.OnLateResult = func(r Result) { mu.Lock(); late = append(late, r); mu.Unlock() }
	})
	if got := d2.Pending(); len(got) != 1 || got[0] != id {
		t.Fatalf("pending after restart = %v, want [%s]", got, id)
	}
	send(d2, "pi1", id, chunk("pi1", id, 1, "bucket-a\n"), final("pi1", id, 2, 0, "bucket-a\n"))
	mu.Lock()
	defer mu.Unlock()
	want := Request{User: "U2", Channel: "C1", Source: "slack", Text: "aws pi1 s3 ls", Thread: "1700000001.000100"}
	if len(late) != 1 || late[0].Request != want || late[0].Output != "bucket-a\n" {
		t.Fatalf("late results %+v", late)
	}
	if len(d2.Pending()) != 0 {
		t.Error("still pending after the final")
	}
	b, _ := os.ReadFile(state)
	if strings.TrimSpace(string(b)) != "[]" {
		t.Errorf("state file after the final = %s", b)
	}
}

func TestHandleResultIgnoresBadRecords(t *testing.T) {
	p := &pub{}
	d, _ := newTestDispatcher(t, p, staticFleet{}, nil)
	var late int
	d.o.OnLateResult = func(Result) { late++ }
	d.HandleResult("pifleet/v1/devices/pi1/result/otherhub/c1", []byte(`{"v":1,"kind":"final","id":"c1","device":"pi1"}`))
	d.HandleResult("garbage", []byte("x"))
	d.HandleResult(wire.ResultTopic("pi1", "hub1", "c1"), []byte("{"))
	d.HandleResult(wire.ResultTopic("pi1", "hub1", "c1"), nil) // our own clear
	// a final whose body names another device than its topic
	send(d, "pi1", "c1", final("pi2", "c1", 1, 0, ""))
	if late != 0 {
		t.Errorf("%d bad records delivered", late)
	}
	// Wrong hub, bad topic, bad JSON: counted (the clear and the
	// mismatched final are not malformed records).
	if st := d.Stats(); st.BadRecords != 3 {
		t.Errorf("BadRecords = %d, want 3", st.BadRecords)
	}
}

func TestPublishFailure(t *testing.T) {
	p := &pub{failFor: "/cmd"}
	d, _ := newTestDispatcher(t, p, staticFleet{"pi1": true}, nil)
	r := d.Handle(context.Background(), chat.Request{}, []string{"pi1", "s3", "ls"})
	if !r.Problem || !strings.Contains(r.Text, "broker gone") || len(d.Pending()) != 0 {
		t.Errorf("got %q, pending %v", r.Text, d.Pending())
	}
}

func TestKeys(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys", "hub.key")
	k, created, err := LoadOrCreateKey(path)
	if err != nil || !created {
		t.Fatalf("LoadOrCreateKey: %v, created %v", err, created)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", st.Mode().Perm())
	}
	pub, _ := os.ReadFile(path + ".pub")
	if strings.TrimSpace(string(pub)) != PublicKeyString(k) {
		t.Errorf("public key file %q, want %q", pub, PublicKeyString(k))
	}
	k2, created, err := LoadOrCreateKey(path)
	if err != nil || created || !k2.Equal(k) {
		t.Fatalf("reload: %v, created %v, same %v", err, created, k2.Equal(k))
	}
	if _, err := GenerateKey(path); err == nil {
		t.Error("GenerateKey overwrote an existing key")
	}
	os.Chmod(path, 0o640) // root:pifleet as provisioned: the hub's group may read it
	if _, err := LoadKey(path); err != nil {
		t.Errorf("group-readable key (0640): %v", err)
	}
	os.Chmod(path, 0o644)
	if _, err := LoadKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable key: got %v", err)
	}
	os.WriteFile(path, []byte("not a key"), 0o600)
	if _, err := LoadKey(path); err == nil {
		t.Error("garbage key loaded")
	}
}

// A confirmed action's answer goes to the thread of the buttons (Slack
// passes it with chat.WithThread); a late result must follow it there.
func TestConfirmedLateResultFollowsTheButtonsThread(t *testing.T) {
	p := &pub{}
	var mu sync.Mutex
	var late []Result
	d, _ := newTestDispatcher(t, p, staticFleet{"pi1": true}, func(o *Options) {
		o.Wait = 50 * time.Millisecond // no answer in time: the Pi replies below
		o.OnLateResult = func(r Result) { mu.Lock(); late = append(late, r); mu.Unlock() }
	})
	args := []string{"pi1", "ec2", "start-instances", "--instance-ids", "i-1"}
	// A slash command: no thread when asked.
	r := d.Handle(context.Background(), chat.Request{User: "U1", Channel: "C1", Source: "slack"}, args)
	if r.Confirm == nil {
		t.Fatalf("got %+v, want a confirmation", r)
	}
	r = d.Confirm(chat.WithThread(context.Background(), "1700000000.000200"), "U1", r.Confirm.Token)
	if !strings.Contains(r.Text, "posted in this thread") {
		t.Errorf("answer without the result = %q, want it to say the result comes to this thread", r.Text)
	}
	cmds := p.commands()
	if len(cmds) != 1 {
		t.Fatalf("commands %+v, want one", cmds)
	}
	send(d, "pi1", cmds[0].ID, final("pi1", cmds[0].ID, 1, 0, "started\n"))
	mu.Lock()
	defer mu.Unlock()
	if len(late) != 1 || late[0].Request.Thread != "1700000000.000200" || late[0].Request.Channel != "C1" {
		t.Errorf("late results %+v, want one for C1 in the buttons' thread", late)
	}
}
