package runner_test

import (
	"context"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pifleet/pifleet/agent/internal/runner"
	"github.com/pifleet/pifleet/internal/policy"
	"github.com/pifleet/pifleet/internal/runnertest"
)

// TestDockerToolImage checks the image scripts/build-tool-image.sh makes
// from Debian's packages (the awscli test image is built by it) the way
// the agent uses it: its configuration matches agent/Dockerfile.awscli's,
// and through the runner, with the built-in aws tool and no network, aws
// answers, fails without credentials with its own message, and gets its
// argv verbatim with no shell in between.
func TestDockerToolImage(t *testing.T) {
	t.Parallel()
	img := runnertest.AWSCLI(t)
	c := runnertest.RequireDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	info, err := c.ImageInspect(ctx, img)
	cancel()
	if err != nil {
		t.Fatalf("inspect %s: %v", img, err)
	}
	cfg := info.Config
	if got := []string(cfg.Entrypoint); !slices.Equal(got, []string{"aws"}) {
		t.Errorf("entrypoint: got %q, want [\"aws\"] in exec form (a shell form would run /bin/sh -c)", got)
	}
	if len(cfg.Cmd) != 0 {
		t.Errorf("cmd: got %q, want none: the argv is the command's alone", cfg.Cmd)
	}
	for _, tc := range []struct{ what, got, want string }{
		{"user", cfg.User, "65534:65534"},
		{"workdir", cfg.WorkingDir, "/tmp"},
		{"os", info.Os, "linux"},
		{"architecture", info.Architecture, runtime.GOARCH},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.what, tc.got, tc.want)
		}
	}
	for _, e := range []string{"HOME=/tmp", "AWS_PAGER=", "LANG=C.UTF-8"} {
		if !slices.Contains(cfg.Env, e) {
			t.Errorf("env %q missing: got %q", e, cfg.Env)
		}
	}

	p, err := policy.New(policy.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tool, ok := p.Tool("aws")
	if !ok {
		t.Fatal("no built-in aws tool")
	}
	tool.Image = img
	r := newRunner(t, runner.Options{Timeout: 60 * time.Second}) // network none
	run := func(tool policy.Tool, argv ...string) runner.Result {
		t.Helper()
		res := r.Run(context.Background(), runner.Job{ID: "ti-" + strings.Join(argv, "-"), Tool: tool, Argv: argv}, nil)
		if res.Err != nil && res.ExitCode == 0 {
			t.Fatalf("aws %q: %v", argv, res.Err)
		}
		if strings.Contains(res.Output, "Traceback") {
			t.Errorf("aws %q crashed instead of answering:\n%s", argv, res.Output)
		}
		return res
	}

	if res := run(tool, "--version"); res.ExitCode != 0 || !strings.HasPrefix(res.Output, "aws-cli/") {
		t.Errorf("aws --version: exit %d, output %q; want aws-cli/…", res.ExitCode, res.Output)
	}

	res := run(tool, "sts", "get-caller-identity")
	if res.ExitCode == 0 || !strings.Contains(res.Output, "Unable to locate credentials") {
		t.Errorf("aws sts get-caller-identity without credentials: exit %d, output %q; want aws's own \"Unable to locate credentials\"", res.ExitCode, res.Output)
	}

	// Shell metacharacters reach aws as one literal argument: it names
	// the region back as given, and nothing ran them.
	odd := "$(id);`id`|id>/tmp/x"
	res = run(tool, "sts", "get-caller-identity", "--region", odd)
	if res.ExitCode == 0 || !strings.Contains(res.Output, "'"+odd+"'") || strings.Contains(res.Output, "uid=") {
		t.Errorf("aws --region %q: exit %d, output %q; want aws to reject the literal region", odd, res.ExitCode, res.Output)
	}

	// aws itself is Python, not a shell script around it.
	head := tool
	head.Entrypoint = []string{"head", "-n", "1", "/usr/bin/aws"}
	if res := run(head); res.ExitCode != 0 || !strings.HasPrefix(res.Output, "#!/usr/bin/python3") {
		t.Errorf("/usr/bin/aws starts with %q (exit %d), want #!/usr/bin/python3", res.Output, res.ExitCode)
	}
}
