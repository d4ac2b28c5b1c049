package runner_test

// Tests against the real Docker Engine. They are named TestDocker* so the
// ARMv7 qemu run can leave them out with -skip 'TestDocker|BenchmarkDocker'.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/pifleet/pifleet/agent/internal/runner"
	"github.com/pifleet/pifleet/internal/policy"
	"github.com/pifleet/pifleet/internal/runnertest"
	"github.com/pifleet/pifleet/internal/shellwords"
	"github.com/pifleet/pifleet/internal/testenv"
	"github.com/pifleet/pifleet/internal/wire"
)

var instanceSeq struct {
	sync.Mutex
	n int
}

// newRunner returns a runner whose containers carry a label unique to the
// test, and checks at the end that none of them is left.
func newRunner(t testing.TB, o runner.Options) *runner.Runner {
	t.Helper()
	if o.Engine == nil {
		o.Engine = runnertest.RequireDocker(t)
	}
	if o.Instance == "" {
		instanceSeq.Lock()
		instanceSeq.n++
		o.Instance = fmt.Sprintf("test-%d-%d", os.Getpid(), instanceSeq.n)
		instanceSeq.Unlock()
	}
	if o.Network == "" {
		o.Network = "none"
	}
	o.Logger = slog.New(slog.DiscardHandler)
	r, err := runner.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ids, err := r.Containers(context.Background())
		if err != nil {
			t.Errorf("list containers: %v", err)
		}
		if len(ids) != 0 {
			t.Errorf("containers left behind: %v", ids)
			r.Sweep(context.Background())
		}
	})
	return r
}

func shTool(t testing.TB) policy.Tool {
	return policy.Tool{Image: runnertest.Busybox(t), Entrypoint: []string{"sh", "-c"}}
}

type output struct {
	mu   sync.Mutex
	recs []string
}

func (o *output) emit(s wire.Stream, d string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, l := range strings.SplitAfter(d, "\n") {
		if l != "" {
			o.recs = append(o.recs, string(s)+":"+strings.TrimSuffix(l, "\n"))
		}
	}
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.Join(o.recs, "|")
}

func TestDockerOutputInOrderAndExitCode(t *testing.T) {
	t.Parallel()
	r := newRunner(t, runner.Options{})
	var out output
	res := r.Run(context.Background(), runner.Job{ID: "c1", Tool: shTool(t), Argv: []string{
		"echo out1; sleep 0.3; echo err1 >&2; sleep 0.3; echo out2; echo out3; sleep 0.3; echo err2 >&2; exit 3"}}, out.emit)
	if res.Outcome != wire.OutcomeExited || res.ExitCode != 3 || res.Err != nil {
		t.Fatalf("got outcome %q exit %d err %v, want exited 3", res.Outcome, res.ExitCode, res.Err)
	}
	if got, want := out.String(), "stdout:out1|stderr:err1|stdout:out2|stdout:out3|stderr:err2"; got != want {
		t.Errorf("streamed %q, want %q", got, want)
	}
	if res.Output != "out1\nerr1\nout2\nout3\nerr2\n" || res.Bytes != 25 || res.Truncated {
		t.Errorf("result output %q bytes %d truncated %v", res.Output, res.Bytes, res.Truncated)
	}
	res = r.Run(context.Background(), runner.Job{ID: "c2", Tool: shTool(t), Argv: []string{"true"}}, nil)
	if res.Outcome != wire.OutcomeExited || res.ExitCode != 0 {
		t.Errorf("true: got %q %d, want exited 0", res.Outcome, res.ExitCode)
	}
}

func TestDockerMetacharactersAreLiteralArgv(t *testing.T) {
	t.Parallel()
	r := newRunner(t, runner.Options{})
	argv := []string{"; rm -rf /", "$(id)", "`id`", "a b", "'q'", "*", "$HOME", "&& echo pwned", "|", ">x"}
	tool := policy.Tool{Image: runnertest.Busybox(t), Entrypoint: []string{"printf", "[%s]\n"}}
	res := r.Run(context.Background(), runner.Job{ID: "m", Tool: tool, Argv: argv}, nil)
	var want strings.Builder
	for _, a := range argv {
		fmt.Fprintf(&want, "[%s]\n", a)
	}
	if res.ExitCode != 0 || res.Output != want.String() {
		t.Errorf("got exit %d output\n%s\nwant\n%s", res.ExitCode, res.Output, want.String())
	}
}

func TestDockerTimeoutKillsAndRemoves(t *testing.T) {
	t.Parallel()
	// 3 s: long enough for a busy dockerd to start the container and the
	// shell to print, far shorter than the sleep.
	r := newRunner(t, runner.Options{Timeout: 3 * time.Second})
	res := r.Run(context.Background(), runner.Job{ID: "slow", Tool: shTool(t), Argv: []string{"echo started; sleep 60"}}, nil)
	if res.Outcome != wire.OutcomeTimeout || res.ExitCode != -1 {
		t.Fatalf("got %q exit %d (%v), want timeout", res.Outcome, res.ExitCode, res.Err)
	}
	if res.Output != "started\n" {
		t.Errorf("output before the timeout = %q, want %q", res.Output, "started\n")
	}
	if res.Duration > 30*time.Second {
		t.Errorf("took %v: the kill did not end it", res.Duration)
	}
	// newRunner's cleanup asserts the container is gone.
}

func TestDockerCancelRemoves(t *testing.T) {
	t.Parallel()
	r := newRunner(t, runner.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan runner.Result)
	tool := shTool(t)
	go func() { done <- r.Run(ctx, runner.Job{ID: "c", Tool: tool, Argv: []string{"sleep 60"}}, nil) }()
	testenv.Eventually(t, 20*time.Second, func() string {
		if ids, _ := r.Containers(context.Background()); len(ids) == 0 {
			return "container not started"
		}
		return ""
	})
	cancel()
	if res := <-done; res.Outcome != wire.OutcomeError {
		t.Errorf("got %q, want error after cancel", res.Outcome)
	}
}

func TestDockerOutputCap(t *testing.T) {
	t.Parallel()
	r := newRunner(t, runner.Options{OutputCap: 1000})
	res := r.Run(context.Background(), runner.Job{ID: "big", Tool: shTool(t), Argv: []string{"yes | head -c 200000"}}, nil)
	if res.ExitCode != 0 || len(res.Output) != 1000 || !res.Truncated || res.Bytes != 200000 {
		t.Errorf("got exit %d, %d bytes kept, truncated %v, %d counted; want 0, 1000, true, 200000", res.ExitCode, len(res.Output), res.Truncated, res.Bytes)
	}
}

func TestDockerHardening(t *testing.T) {
	t.Parallel()
	r := newRunner(t, runner.Options{})
	res := r.Run(context.Background(), runner.Job{ID: "h", Tool: shTool(t), Argv: []string{
		`grep -E '^(CapEff|CapPrm|NoNewPrivs)' /proc/self/status; id -u; touch /x 2>/dev/null && echo rootfs-writable; touch /tmp/x && echo tmp-writable; ls -ld /tmp; cat /sys/fs/cgroup/pids.max /sys/fs/cgroup/pids/pids.max 2>/dev/null`}}, nil)
	want := []string{"CapPrm:\t0000000000000000", "CapEff:\t0000000000000000", "NoNewPrivs:\t1", "65534", "tmp-writable", "128"}
	for _, w := range want {
		if !strings.Contains(res.Output, w+"\n") {
			t.Errorf("output lacks %q:\n%s", w, res.Output)
		}
	}
	if strings.Contains(res.Output, "rootfs-writable") {
		t.Errorf("root filesystem is writable:\n%s", res.Output)
	}
}

func TestDockerCredentialsAndRedaction(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	envFile := filepath.Join(dir, "aws.env")
	os.WriteFile(envFile, []byte("AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\nAWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\nNOT_ALLOWED=should-not-pass\n"), 0o600)
	r := newRunner(t, runner.Options{})
	tool := shTool(t)
	tool.EnvFile = envFile
	tool.Env = []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
	var out output
	res := r.Run(context.Background(), runner.Job{ID: "s", Tool: tool, Argv: []string{
		`echo "id=$AWS_ACCESS_KEY_ID"; echo "plain $AWS_SECRET_ACCESS_KEY"; echo "aws_secret_access_key = $AWS_SECRET_ACCESS_KEY" >&2; echo "other=${NOT_ALLOWED:-unset}"; echo ASIAY34FZKBOKMUTVV7A`}}, out.emit)
	for _, secret := range []string{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI", "ASIAY34FZKBOKMUTVV7A"} {
		if strings.Contains(res.Output, secret) || strings.Contains(out.String(), secret) {
			t.Errorf("secret %q leaked:\n%s", secret, res.Output)
		}
	}
	if !strings.Contains(res.Output, "other=unset") {
		t.Errorf("a variable not allowed by the tool reached the container:\n%s", res.Output)
	}
	if !strings.Contains(res.Output, "plain [REDACTED]") {
		t.Errorf("the secret was not passed (or not redacted):\n%s", res.Output)
	}
}

func TestDockerCredDirMountedReadOnly(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "credentials"), []byte("[default]\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"), 0o644)
	os.Chmod(dir, 0o755)
	r := newRunner(t, runner.Options{})
	tool := shTool(t)
	tool.CredDir, tool.CredMount = dir, "/aws"
	res := r.Run(context.Background(), runner.Job{ID: "d", Tool: tool, Argv: []string{
		`cat "$AWS_SHARED_CREDENTIALS_FILE"; touch /aws/x 2>/dev/null && echo writable`}}, nil)
	if !strings.Contains(res.Output, "aws_secret_access_key = [REDACTED]") || strings.Contains(res.Output, "writable") {
		t.Errorf("got:\n%s\nwant the redacted file and no write", res.Output)
	}
}

func TestDockerMissingImage(t *testing.T) {
	t.Parallel()
	r := newRunner(t, runner.Options{})
	res := r.Run(context.Background(), runner.Job{ID: "x", Tool: policy.Tool{Image: "pifleet-test/absent:nope", Entrypoint: []string{"x"}}, Argv: []string{"y"}}, nil)
	if res.Outcome != wire.OutcomeError || res.Err == nil || !strings.Contains(res.Err.Error(), "not on this Pi") {
		t.Errorf("got %q %v, want a clear missing-image error", res.Outcome, res.Err)
	}
}

func TestDockerBadEntrypointRemoves(t *testing.T) {
	t.Parallel()
	r := newRunner(t, runner.Options{})
	res := r.Run(context.Background(), runner.Job{ID: "e", Tool: policy.Tool{Image: runnertest.Busybox(t), Entrypoint: []string{"/no/such/program"}}, Argv: []string{"y"}}, nil)
	if res.Outcome != wire.OutcomeError || res.Err == nil {
		t.Errorf("got %q %v, want an error", res.Outcome, res.Err)
	}
}

func TestDockerConcurrencyLimit(t *testing.T) {
	t.Parallel()
	r := newRunner(t, runner.Options{MaxConcurrent: 1, QueueWait: 200 * time.Millisecond})
	done := make(chan runner.Result)
	tool := shTool(t)
	go func() {
		done <- r.Run(context.Background(), runner.Job{ID: "a", Tool: tool, Argv: []string{"sleep 3"}}, nil)
	}()
	testenv.Eventually(t, 20*time.Second, func() string {
		if ids, _ := r.Containers(context.Background()); len(ids) == 0 {
			return "first container not created"
		}
		return ""
	})
	res := r.Run(context.Background(), runner.Job{ID: "b", Tool: shTool(t), Argv: []string{"true"}}, nil)
	if res.Outcome != wire.OutcomeError || !strings.Contains(fmt.Sprint(res.Err), "busy") {
		t.Errorf("second command: got %q %v, want busy", res.Outcome, res.Err)
	}
	if first := <-done; first.ExitCode != 0 {
		t.Errorf("first command: %q %d %v", first.Outcome, first.ExitCode, first.Err)
	}
}

func TestDockerSweep(t *testing.T) {
	t.Parallel()
	c := runnertest.RequireDocker(t)
	instance := fmt.Sprintf("test-sweep-%d", os.Getpid())
	r := newRunner(t, runner.Options{Engine: c, Instance: instance})
	// A container that a crashed agent left: same label, never removed.
	_, err := c.ContainerCreate(context.Background(), &container.Config{Image: runnertest.Busybox(t), Cmd: []string{"true"},
		Labels: map[string]string{runner.LabelKey: instance}}, nil, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	n, err := r.Sweep(context.Background())
	if err != nil || n != 1 {
		t.Errorf("Sweep = %d, %v; want 1 removed", n, err)
	}
}

func TestDockerUnreachableIsFastAndClear(t *testing.T) {
	t.Parallel()
	// No engine at all.
	c, err := client.NewClientWithOpts(client.WithHost("unix://"+filepath.Join(t.TempDir(), "none.sock")), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	r, _ := runner.New(runner.Options{Engine: c, APITimeout: 2 * time.Second})
	res := r.Run(context.Background(), runner.Job{ID: "u", Tool: policy.Tool{Image: "x", Entrypoint: []string{"x"}}, Argv: []string{"y"}}, nil)
	if res.Outcome != wire.OutcomeError || !strings.Contains(fmt.Sprint(res.Err), "docker engine unreachable") {
		t.Errorf("no engine: got %q %v, want docker engine unreachable", res.Outcome, res.Err)
	}
	// An engine that accepts and never answers.
	sock := filepath.Join(t.TempDir(), "hung.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go io.Copy(io.Discard, conn)
		}
	}()
	c2, _ := client.NewClientWithOpts(client.WithHost("unix://"+sock), client.WithVersion("1.41"))
	r2, _ := runner.New(runner.Options{Engine: c2, APITimeout: 300 * time.Millisecond})
	res = r2.Run(context.Background(), runner.Job{ID: "h", Tool: policy.Tool{Image: "x", Entrypoint: []string{"x"}}, Argv: []string{"y"}}, nil)
	if res.Outcome != wire.OutcomeError || !strings.Contains(fmt.Sprint(res.Err), "docker engine unreachable") {
		t.Errorf("hung engine: got %q %v, want docker engine unreachable", res.Outcome, res.Err)
	}
}

// fakeSTS answers GetCallerIdentity like AWS's query API and records the
// request's credential scope.
func fakeSTS(t *testing.T) (*httptest.Server, *string) {
	var auth string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		req.ParseForm()
		mu.Lock()
		auth = req.Header.Get("Authorization")
		mu.Unlock()
		if req.Form.Get("Action") != "GetCallerIdentity" {
			http.Error(w, "unsupported", 400)
			return
		}
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprint(w, `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/pi</Arn><UserId>AIDAJQABLZS4A3QDU576Q</UserId><Account>123456789012</Account></GetCallerIdentityResult>
<ResponseMetadata><RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId></ResponseMetadata></GetCallerIdentityResponse>`)
	}))
	t.Cleanup(srv.Close)
	return srv, &auth
}

func TestDockerAWSCLIEndToEnd(t *testing.T) {
	t.Parallel()
	img := runnertest.AWSCLI(t)
	srv, auth := fakeSTS(t)
	dir := t.TempDir()
	envFile := filepath.Join(dir, "aws.env")
	os.WriteFile(envFile, []byte("AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\nAWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\nAWS_DEFAULT_REGION=us-east-1\n"), 0o600)
	p, _ := policy.New(policy.Config{})
	tool, _ := p.Tool("aws")
	tool.Image = img
	tool.EnvFile = envFile
	r := newRunner(t, runner.Options{Network: "host", Timeout: 60 * time.Second})

	res := r.Run(context.Background(), runner.Job{ID: "v", Tool: tool, Argv: []string{"--version"}}, nil)
	if res.ExitCode != 0 || !strings.HasPrefix(res.Output, "aws-cli/") {
		t.Fatalf("aws --version: exit %d %v output %q", res.ExitCode, res.Err, res.Output)
	}

	argv, _ := shellwords.Split("sts get-caller-identity --output json --endpoint-url " + srv.URL)
	if _, err := p.Check("aws", argv, nil); err != nil {
		t.Fatal(err)
	}
	res = r.Run(context.Background(), runner.Job{ID: "sts", Tool: tool, Argv: argv}, nil)
	if res.ExitCode != 0 || !strings.Contains(res.Output, `"Account": "123456789012"`) {
		t.Fatalf("aws sts get-caller-identity: exit %d %v output %q", res.ExitCode, res.Err, res.Output)
	}
	if !strings.Contains(res.Output, `"UserId": "AIDA[REDACTED]"`) {
		t.Errorf("user id not redacted:\n%s", res.Output)
	}
	if !strings.Contains(*auth, "Credential=AKIAIOSFODNN7EXAMPLE/") {
		t.Errorf("the request was not signed with the Pi's env-file key: Authorization %q", *auth)
	}
}

// Benchmarks: the runner against the docker CLI, same image, same network
// (the default bridge), both creating, attaching, starting, waiting and
// removing a container that runs true.
func BenchmarkDockerRunnerTrue(b *testing.B) {
	r := newRunner(b, runner.Options{Network: "bridge"})
	tool := policy.Tool{Image: runnertest.Busybox(b), Entrypoint: []string{"true"}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if res := r.Run(context.Background(), runner.Job{ID: "b", Tool: tool}, nil); res.ExitCode != 0 {
			b.Fatal(res.Err)
		}
	}
}

func BenchmarkDockerCLIRunTrue(b *testing.B) {
	img := runnertest.Busybox(b)
	docker := testenv.RequireCommand(b, "docker", "docker.io")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if out, err := exec.Command(docker, "run", "--rm", img, "true").CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
	}
}

// BenchmarkDockerCLIRunHardenedTrue is docker run with the runner's
// hardening, to separate the cost of the hardening from the runner's own.
func BenchmarkDockerCLIRunHardenedTrue(b *testing.B) {
	img := runnertest.Busybox(b)
	docker := testenv.RequireCommand(b, "docker", "docker.io")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out, err := exec.Command(docker, "run", "--rm", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
			"--read-only", "--tmpfs", "/tmp:rw,nosuid,nodev,mode=1777,size=64m", "--memory", "256m", "--memory-swap", "256m",
			"--pids-limit", "128", "--cpus", "1", "--user", "65534:65534", "--log-driver", "none", img, "true").CombinedOutput()
		if err != nil {
			b.Fatalf("%v: %s", err, out)
		}
	}
}

// BenchmarkDockerRunnerVsCLI alternates the two in one loop so that both
// see the same machine load (this machine is shared), and reports the
// mean of each and their ratio (goal: ratio ≤ 1).
func BenchmarkDockerRunnerVsCLI(b *testing.B) {
	r := newRunner(b, runner.Options{Network: "bridge"})
	img := runnertest.Busybox(b)
	docker := testenv.RequireCommand(b, "docker", "docker.io")
	tool := policy.Tool{Image: img, Entrypoint: []string{"true"}}
	var rt, ct time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if res := r.Run(context.Background(), runner.Job{ID: "b", Tool: tool}, nil); res.ExitCode != 0 {
			b.Fatal(res.Err)
		}
		rt += time.Since(start)
		start = time.Now()
		if out, err := exec.Command(docker, "run", "--rm", img, "true").CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
		ct += time.Since(start)
	}
	b.ReportMetric(float64(rt.Milliseconds())/float64(b.N), "runner-ms/op")
	b.ReportMetric(float64(ct.Milliseconds())/float64(b.N), "cli-ms/op")
	b.ReportMetric(float64(rt)/float64(ct), "ratio")
}

// TestDockerRetaggedImageRefused: another user of the same Engine points
// the tool's tag at another image; the agent refuses to run it (the tool
// would get the credentials) and says which image, and runs it once the
// policy allows the change; each result names the image it ran in.
func TestDockerRetaggedImageRefused(t *testing.T) {
	cl := runnertest.RequireDocker(t)
	ctx := context.Background()
	base := runnertest.Busybox(t)
	tag := fmt.Sprintf("pifleet-test/retag:%d", os.Getpid())
	if err := cl.ImageTag(ctx, base, tag); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.ImageRemove(ctx, tag, image.RemoveOptions{}) })
	baseInfo, err := cl.ImageInspect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}

	r := newRunner(t, runner.Options{})
	tool := policy.Tool{Image: tag, Entrypoint: []string{"sh", "-c"}}
	if res := r.Run(ctx, runner.Job{ID: "i1", Tool: tool, Argv: []string{"true"}}, nil); res.Outcome != wire.OutcomeExited || res.ImageID != baseInfo.ID {
		t.Fatalf("first run: %v %v, image %q want %q", res.Outcome, res.Err, res.ImageID, baseInfo.ID)
	}

	// Another image under the same tag: a container of the base committed
	// with a label (no registry needed).
	c, err := cl.ContainerCreate(ctx, &container.Config{Image: base, Cmd: []string{"true"}}, nil, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	defer cl.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
	committed, err := cl.ContainerCommit(ctx, c.ID, container.CommitOptions{Reference: tag, Changes: []string{"LABEL pifleet.test=retag"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.ImageRemove(ctx, committed.ID, image.RemoveOptions{Force: true}) })

	res := r.Run(ctx, runner.Job{ID: "i2", Tool: tool, Argv: []string{"true"}}, nil)
	if !errors.Is(res.Err, runner.ErrImageChanged) || !strings.Contains(res.Err.Error(), strings.TrimPrefix(committed.ID, "sha256:")[:12]) {
		t.Errorf("after the re-tag: %v %v, want refused naming the new image", res.Outcome, res.Err)
	}
	tool.AllowImageChange = true
	if res := r.Run(ctx, runner.Job{ID: "i3", Tool: tool, Argv: []string{"true"}}, nil); res.Outcome != wire.OutcomeExited || res.ImageID != committed.ID {
		t.Errorf("allowed change: %v %v, image %q want %q", res.Outcome, res.Err, res.ImageID, committed.ID)
	}
}
