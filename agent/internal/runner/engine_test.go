package runner_test

// The runner's own logic against enginetest's scripted engine: no Docker,
// so these run under qemu too (none is named TestDocker*). docker_test.go
// runs the same paths against the real engine.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"

	"github.com/pifleet/pifleet/agent/internal/runner"
	"github.com/pifleet/pifleet/agent/internal/runner/enginetest"
	"github.com/pifleet/pifleet/internal/policy"
	"github.com/pifleet/pifleet/internal/wire"
)

const fakeImage = "example/tool:1"

var fakeTool = policy.Tool{Image: fakeImage, Entrypoint: []string{"tool"}}

// fakeRunner returns a runner on f and checks at the end that f holds no
// container (every path removes its own).
func fakeRunner(t *testing.T, f *enginetest.Fake, o runner.Options) *runner.Runner {
	t.Helper()
	o.Engine = f
	o.Logger = slog.New(slog.DiscardHandler)
	if o.APITimeout == 0 {
		o.APITimeout = 5 * time.Second
	}
	r, err := runner.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if left := f.Containers(); len(left) != 0 {
			t.Errorf("containers left behind: %+v", left)
		}
	})
	return r
}

func TestRunExitCodeAndOrder(t *testing.T) {
	f := enginetest.New(fakeImage)
	f.Queue(enginetest.Script{Exit: 3, Output: []enginetest.Chunk{
		enginetest.Out("out1\n"), enginetest.Err("err1\n"), enginetest.Out("out2\nou"), enginetest.Out("t3\n"), enginetest.Err("err2"),
	}})
	r := fakeRunner(t, f, runner.Options{})
	var out output
	res := r.Run(context.Background(), runner.Job{ID: "c1", Tool: fakeTool, Argv: []string{"x"}}, out.emit)
	if res.Outcome != wire.OutcomeExited || res.ExitCode != 3 || res.Err != nil {
		t.Fatalf("got outcome %q exit %d err %v, want exited 3", res.Outcome, res.ExitCode, res.Err)
	}
	if got, want := out.String(), "stdout:out1|stderr:err1|stdout:out2|stdout:out3|stderr:err2"; got != want {
		t.Errorf("streamed %q, want %q", got, want)
	}
	if res.Output != "out1\nerr1\nout2\nout3\nerr2" || res.Bytes != 24 || res.Truncated {
		t.Errorf("result: got output %q, %d bytes, truncated %v; want the output in order, 24, false", res.Output, res.Bytes, res.Truncated)
	}
}

// TestContainerConfig checks the hardening and the argv/env plumbing of
// the container the runner asks for.
func TestContainerConfig(t *testing.T) {
	dir := t.TempDir()
	envFile := filepath.Join(dir, "aws.env")
	if err := os.WriteFile(envFile, []byte("AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\nNOT_ALLOWED=x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := enginetest.New(fakeImage)
	r := fakeRunner(t, f, runner.Options{Instance: "inst", Network: "none"})
	tool := fakeTool
	tool.EnvFile, tool.Env = envFile, []string{"AWS_ACCESS_KEY_ID"}
	tool.SetEnv = map[string]string{"AWS_PAGER": ""}
	tool.CredDir, tool.CredMount = dir, "/aws"
	argv := []string{"; rm -rf /", "$(id)", "a b"}
	if res := r.Run(context.Background(), runner.Job{ID: "cfg", Tool: tool, Argv: argv}, nil); res.Err != nil {
		t.Fatal(res.Err)
	}
	made := f.Created()
	if len(made) != 1 {
		t.Fatalf("got %d containers made, want 1", len(made))
	}
	cfg, hc := made[0].Config, made[0].HostConfig
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"image (the id checked, not the tag)", cfg.Image, "sha256:" + fakeImage},
		{"entrypoint", []string(cfg.Entrypoint), []string{"tool"}},
		{"cmd (argv, no shell)", []string(cfg.Cmd), argv},
		{"env (sorted, allowed only)", cfg.Env, []string{"AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE", "AWS_CONFIG_FILE=/aws/config", "AWS_PAGER=", "AWS_SHARED_CREDENTIALS_FILE=/aws/credentials"}},
		{"user", cfg.User, "65534:65534"},
		{"labels", cfg.Labels, map[string]string{runner.LabelKey: "inst", runner.LabelKey + ".cmd": "cfg"}},
		{"network disabled", cfg.NetworkDisabled, true},
		{"network mode", hc.NetworkMode, container.NetworkMode("none")},
		{"cap drop", []string(hc.CapDrop), []string{"ALL"}},
		{"security opt", hc.SecurityOpt, []string{"no-new-privileges"}},
		{"read-only root", hc.ReadonlyRootfs, true},
		{"tmpfs", hc.Tmpfs, map[string]string{"/tmp": "rw,nosuid,nodev,mode=1777,size=64m"}},
		{"log driver", hc.LogConfig.Type, "none"},
		{"memory, swap", [2]int64{hc.Memory, hc.MemorySwap}, [2]int64{256 << 20, 256 << 20}},
		{"pids", *hc.PidsLimit, int64(128)},
		{"cpus", hc.NanoCPUs, int64(1e9)},
		{"mounts", hc.Mounts, []mount.Mount{{Type: mount.TypeBind, Source: dir, Target: "/aws", ReadOnly: true}}},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: got %#v, want %#v", c.what, c.got, c.want)
		}
	}
}

func TestRunTimeoutKills(t *testing.T) {
	f := enginetest.New(fakeImage)
	f.Queue(enginetest.Script{Hang: true, Output: []enginetest.Chunk{enginetest.Out("started\n")}})
	r := fakeRunner(t, f, runner.Options{Timeout: time.Hour})
	// The job's own, shorter timeout wins over Options.Timeout.
	res := r.Run(context.Background(), runner.Job{ID: "slow", Tool: fakeTool, Timeout: 50 * time.Millisecond}, nil)
	if res.Outcome != wire.OutcomeTimeout || res.ExitCode != -1 || !strings.Contains(fmt.Sprint(res.Err), "timed out after 50ms") {
		t.Fatalf("got %q exit %d (%v), want timeout after 50ms", res.Outcome, res.ExitCode, res.Err)
	}
	if res.Output != "started\n" {
		t.Errorf("output before the timeout: got %q, want %q", res.Output, "started\n")
	}
	if made := f.Created(); len(made) != 1 || !made[0].Killed {
		t.Errorf("got containers %+v, want one, killed", made)
	}
}

func TestRunCancelKills(t *testing.T) {
	f := enginetest.New(fakeImage)
	f.Queue(enginetest.Script{Hang: true, Output: []enginetest.Chunk{enginetest.Out("started\n")}})
	r := fakeRunner(t, f, runner.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Cancelled once the container has written: it is surely running.
	res := r.Run(ctx, runner.Job{ID: "c", Tool: fakeTool}, func(wire.Stream, string) { cancel() })
	if res.Outcome != wire.OutcomeError || !errors.Is(res.Err, context.Canceled) {
		t.Errorf("got %q %v, want error wrapping context.Canceled", res.Outcome, res.Err)
	}
	if made := f.Created(); len(made) != 1 || !made[0].Killed {
		t.Errorf("got containers %+v, want one, killed", made)
	}
}

func TestRunOutputCap(t *testing.T) {
	f := enginetest.New(fakeImage)
	var chunks []enginetest.Chunk
	for range 100 {
		chunks = append(chunks, enginetest.Out(strings.Repeat("y\n", 1000)))
	}
	f.Queue(enginetest.Script{Output: chunks})
	r := fakeRunner(t, f, runner.Options{OutputCap: 1000})
	emitted := 0
	res := r.Run(context.Background(), runner.Job{ID: "big", Tool: fakeTool}, func(_ wire.Stream, d string) { emitted += len(d) })
	if res.ExitCode != 0 || len(res.Output) != 1000 || !res.Truncated || res.Bytes != 200000 || emitted != 1000 {
		t.Errorf("got exit %d, %d bytes kept, %d emitted, truncated %v, %d counted; want 0, 1000, 1000, true, 200000",
			res.ExitCode, len(res.Output), emitted, res.Truncated, res.Bytes)
	}
}

// TestRunRedaction splits secrets across the engine's chunks (as a slow
// pipe does): redaction works on whole lines, so they are still found, in
// the streamed records and in the result.
func TestRunRedaction(t *testing.T) {
	envFile := filepath.Join(t.TempDir(), "aws.env")
	secret := "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	if err := os.WriteFile(envFile, []byte("AWS_SECRET_ACCESS_KEY="+secret+"\nAWS_DEFAULT_REGION=eu-west-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := enginetest.New(fakeImage)
	f.Queue(enginetest.Script{Output: []enginetest.Chunk{
		enginetest.Out("plain " + secret[:10]), enginetest.Out(secret[10:] + " end\n"),
		enginetest.Err("key AKIAIOSF"), enginetest.Err("ODNN7EXAMPLE\naws_secret_access_key = "), enginetest.Err("abcdefghijklmnopqrstuvwxyz\n"),
		enginetest.Out("region eu-west-1\n"),
	}})
	r := fakeRunner(t, f, runner.Options{})
	tool := fakeTool
	tool.EnvFile, tool.Env = envFile, []string{"AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"}
	var out output
	res := r.Run(context.Background(), runner.Job{ID: "s", Tool: tool}, out.emit)
	want := "plain [REDACTED] end\nkey AKIA[REDACTED]\naws_secret_access_key = [REDACTED]\nregion eu-west-1\n"
	if res.Output != want {
		t.Errorf("result: got %q, want %q", res.Output, want)
	}
	if got, want := out.String(), "stdout:plain [REDACTED] end|stderr:key AKIA[REDACTED]|stderr:aws_secret_access_key = [REDACTED]|stdout:region eu-west-1"; got != want {
		t.Errorf("streamed: got %q, want %q", got, want)
	}
}

// TestRunEngineErrors is the table of engine failures: each is reported
// as an error wrapping ErrEngine that says which call failed, and none
// leaves a container behind.
func TestRunEngineErrors(t *testing.T) {
	refused := fmt.Errorf("dial unix /var/run/docker.sock: %w", syscall.ECONNREFUSED)
	for _, tc := range []struct {
		name    string
		script  enginetest.Script
		outcome wire.Outcome
		exit    int
		want    string // in the error
	}{
		{"create refused", enginetest.Script{CreateErr: refused}, wire.OutcomeError, -1, "docker engine unreachable (create container)"},
		{"create fails after making it", enginetest.Script{CreateErr: errors.New("request cut"), CreateLeaves: true}, wire.OutcomeError, -1, "docker engine: create container: request cut"},
		{"attach fails", enginetest.Script{AttachErr: errors.New("no stream")}, wire.OutcomeError, -1, "docker engine: attach: no stream"},
		{"start fails", enginetest.Script{StartErr: errors.New("exec: no such file")}, wire.OutcomeError, -1, "start example/tool:1 tool: docker engine: start: exec: no such file"},
		{"wait reports an error", enginetest.Script{Exit: 1, WaitMessage: "container vanished"}, wire.OutcomeError, 1, "docker engine: wait: container vanished"},
		{"wait fails", enginetest.Script{WaitErr: refused}, wire.OutcomeError, -1, "docker engine unreachable (wait)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := enginetest.New(fakeImage)
			f.Queue(tc.script)
			r := fakeRunner(t, f, runner.Options{})
			res := r.Run(context.Background(), runner.Job{ID: "e", Tool: fakeTool}, nil)
			if res.Outcome != tc.outcome || res.ExitCode != tc.exit || !errors.Is(res.Err, runner.ErrEngine) || !strings.Contains(fmt.Sprint(res.Err), tc.want) {
				t.Errorf("got %q exit %d err %v; want %q exit %d, an ErrEngine saying %q", res.Outcome, res.ExitCode, res.Err, tc.outcome, tc.exit, tc.want)
			}
		})
	}
}

// TestRunRemoveRetries: the engine refuses the first removals (removal in
// progress); the runner retries until the container is gone.
func TestRunRemoveRetries(t *testing.T) {
	f := enginetest.New(fakeImage)
	f.Queue(enginetest.Script{RemoveFailures: 3})
	r := fakeRunner(t, f, runner.Options{})
	if res := r.Run(context.Background(), runner.Job{ID: "r", Tool: fakeTool}, nil); res.Err != nil || res.ExitCode != 0 {
		t.Fatalf("got exit %d, %v; want 0", res.ExitCode, res.Err)
	}
	removes := 0
	for _, c := range f.Calls() {
		if c == "ContainerRemove" {
			removes++
		}
	}
	if removes != 4 {
		t.Errorf("got %d removals, want 4 (3 refused, then done)", removes)
	}
}

func TestRunImages(t *testing.T) {
	t.Run("missing, pulls not allowed", func(t *testing.T) {
		f := enginetest.New()
		r := fakeRunner(t, f, runner.Options{})
		res := r.Run(context.Background(), runner.Job{ID: "x", Tool: fakeTool}, nil)
		if res.Outcome != wire.OutcomeError || !strings.Contains(fmt.Sprint(res.Err), "image example/tool:1 is not on this Pi") {
			t.Errorf("got %q %v, want a clear missing-image error", res.Outcome, res.Err)
		}
		if len(f.Created()) != 0 {
			t.Errorf("a container was made for a missing image")
		}
	})
	t.Run("missing, pulled with progress", func(t *testing.T) {
		f := enginetest.New()
		f.PullProgress = `{"status":"Pulling from tool","id":"1"}` + "\n" + `{"status":"Pull complete","id":"abc"}`
		r := fakeRunner(t, f, runner.Options{AllowPull: true})
		var out output
		res := r.Run(context.Background(), runner.Job{ID: "p", Tool: fakeTool}, out.emit)
		if res.Err != nil || res.ExitCode != 0 {
			t.Fatalf("got exit %d, %v; want 0", res.ExitCode, res.Err)
		}
		if got, want := out.String(), "stderr:pulling example/tool:1 …|stderr:1 Pulling from tool|stderr:abc Pull complete"; got != want {
			t.Errorf("streamed %q, want %q", got, want)
		}
	})
	t.Run("pull refused by the registry", func(t *testing.T) {
		f := enginetest.New()
		f.PullProgress = `{"error":"pull access denied"}`
		r := fakeRunner(t, f, runner.Options{AllowPull: true})
		res := r.Run(context.Background(), runner.Job{ID: "p", Tool: fakeTool}, nil)
		if res.Outcome != wire.OutcomeError || fmt.Sprint(res.Err) != "pull example/tool:1: pull access denied" {
			t.Errorf("got %q %v, want the registry's refusal", res.Outcome, res.Err)
		}
	})
	t.Run("inspect fails", func(t *testing.T) {
		f := enginetest.New(fakeImage)
		f.InspectErr = errors.New("disk on fire")
		r := fakeRunner(t, f, runner.Options{AllowPull: true})
		res := r.Run(context.Background(), runner.Job{ID: "i", Tool: fakeTool}, nil)
		if !errors.Is(res.Err, runner.ErrEngine) || !strings.Contains(res.Err.Error(), "inspect image example/tool:1: disk on fire") {
			t.Errorf("got %v, want an engine error naming the inspect", res.Err)
		}
	})
}

// TestRunUnreachable: an engine that does not answer its ping fails every
// run clearly and nothing else is asked of it; a reachable one is
// negotiated with once for all runs.
func TestRunUnreachable(t *testing.T) {
	f := enginetest.New(fakeImage)
	f.PingErr = fmt.Errorf("dial unix /nonexistent.sock: %w", syscall.ENOENT)
	r := fakeRunner(t, f, runner.Options{})
	res := r.Run(context.Background(), runner.Job{ID: "u", Tool: fakeTool}, nil)
	if res.Outcome != wire.OutcomeError || !strings.Contains(fmt.Sprint(res.Err), "docker engine unreachable (ping)") {
		t.Errorf("got %q %v, want docker engine unreachable (ping)", res.Outcome, res.Err)
	}
	if got := f.Calls(); !reflect.DeepEqual(got, []string{"Ping"}) {
		t.Errorf("engine calls: got %v, want only Ping", got)
	}

	f = enginetest.New(fakeImage)
	r = fakeRunner(t, f, runner.Options{})
	for range 3 {
		r.Run(context.Background(), runner.Job{ID: "n", Tool: fakeTool}, nil)
	}
	pings := 0
	for _, c := range f.Calls() {
		if c == "Ping" || c == "NegotiateAPIVersionPing" {
			pings++
		}
	}
	if pings != 2 {
		t.Errorf("got %d ping/negotiate calls in 3 runs, want 2 (once)", pings)
	}
}

func TestRunConcurrencyLimit(t *testing.T) {
	f := enginetest.New(fakeImage)
	f.Queue(enginetest.Script{Hang: true, Output: []enginetest.Chunk{enginetest.Out("first\n")}})
	r := fakeRunner(t, f, runner.Options{MaxConcurrent: 1, QueueWait: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	running := make(chan struct{})
	var once sync.Once
	done := make(chan runner.Result)
	go func() {
		done <- r.Run(ctx, runner.Job{ID: "a", Tool: fakeTool}, func(wire.Stream, string) { once.Do(func() { close(running) }) })
	}()
	<-running
	res := r.Run(context.Background(), runner.Job{ID: "b", Tool: fakeTool}, nil)
	if res.Outcome != wire.OutcomeError || !strings.Contains(fmt.Sprint(res.Err), "busy: 1 commands already running") {
		t.Errorf("second command: got %q %v, want busy", res.Outcome, res.Err)
	}
	cancel()
	<-done
	if res := r.Run(context.Background(), runner.Job{ID: "c", Tool: fakeTool}, nil); res.Err != nil {
		t.Errorf("after the first ended: got %v, want the slot free", res.Err)
	}
}

// TestSweep: only this instance's leftovers are removed.
func TestSweep(t *testing.T) {
	f := enginetest.New(fakeImage)
	mine := map[string]string{runner.LabelKey: "agent", runner.LabelKey + ".cmd": "old"}
	f.Leave(mine)
	f.Leave(mine)
	other := f.Leave(map[string]string{runner.LabelKey: "another"})
	unlabelled := f.Leave(nil)
	r, err := runner.New(runner.Options{Engine: f})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := r.Sweep(context.Background()); n != 2 || err != nil {
		t.Errorf("Sweep = %d, %v; want 2 removed", n, err)
	}
	var left []string
	for _, c := range f.Containers() {
		left = append(left, c.ID)
	}
	if want := []string{other, unlabelled}; !reflect.DeepEqual(left, want) {
		t.Errorf("left: got %v, want %v (other runners' and unlabelled containers)", left, want)
	}

	f.ListErr = errors.New("list broke")
	if _, err := r.Sweep(context.Background()); !errors.Is(err, runner.ErrEngine) {
		t.Errorf("Sweep with a failing list: got %v, want an engine error", err)
	}
}

// TestImagePinning: a tag re-tagged to another image on the same Engine
// is refused (it would get the credentials), unless the policy allows the
// change; a pinned image_id is enforced; each result names its image.
func TestImagePinning(t *testing.T) {
	run := func(r *runner.Runner, tool policy.Tool) runner.Result {
		t.Helper()
		var out output
		return r.Run(context.Background(), runner.Job{ID: "img", Tool: tool}, out.emit)
	}
	t.Run("re-tagged", func(t *testing.T) {
		f := enginetest.New(fakeImage)
		r := fakeRunner(t, f, runner.Options{})
		if res := run(r, fakeTool); res.Outcome != wire.OutcomeExited || res.ImageID != "sha256:"+fakeImage {
			t.Fatalf("first run: %v %q %v", res.Outcome, res.ImageID, res.Err)
		}
		f.Retag(fakeImage, "sha256:0123456789abcdef0123456789abcdef")
		res := run(r, fakeTool)
		if res.Outcome != wire.OutcomeError || !errors.Is(res.Err, runner.ErrImageChanged) || !strings.Contains(res.Err.Error(), "0123456789ab") {
			t.Errorf("after a re-tag: %v %v, want refused naming the new image", res.Outcome, res.Err)
		}
		allow := fakeTool
		allow.AllowImageChange = true
		if res := run(r, allow); res.Outcome != wire.OutcomeExited || res.ImageID != "sha256:0123456789abcdef0123456789abcdef" {
			t.Errorf("allow_image_change: %v %q %v, want run in the new image", res.Outcome, res.ImageID, res.Err)
		}
		if n := len(f.Created()); n != 2 {
			t.Errorf("%d containers created, want 2 (the refused run makes none)", n)
		}
	})
	t.Run("pinned", func(t *testing.T) {
		f := enginetest.New(fakeImage)
		r := fakeRunner(t, f, runner.Options{})
		pinned := fakeTool
		pinned.ImageID = "sha256:" + fakeImage
		if res := run(r, pinned); res.Outcome != wire.OutcomeExited {
			t.Fatalf("pinned, same image: %v %v", res.Outcome, res.Err)
		}
		pinned.ImageID = "sha256:feedfacefeedfacefeedface"
		if res := run(r, pinned); !errors.Is(res.Err, runner.ErrImageChanged) || !strings.Contains(res.Err.Error(), "feedfacefeed") {
			t.Errorf("pinned, other image: %v, want refused naming the pin", res.Err)
		}
	})
}
