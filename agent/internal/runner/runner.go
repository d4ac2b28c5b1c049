package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pifleet/pifleet/internal/policy"
	"github.com/pifleet/pifleet/internal/wire"
)

// Engine is the part of the Docker Engine API the runner uses;
// *client.Client implements it.
type Engine interface {
	ImageInspect(ctx context.Context, ref string, opts ...client.ImageInspectOption) (image.InspectResponse, error)
	ImagePull(ctx context.Context, ref string, opts image.PullOptions) (io.ReadCloser, error)
	ContainerCreate(ctx context.Context, config *container.Config, hostConfig *container.HostConfig, networkingConfig *network.NetworkingConfig, platform *ocispec.Platform, name string) (container.CreateResponse, error)
	ContainerAttach(ctx context.Context, id string, opts container.AttachOptions) (types.HijackedResponse, error)
	ContainerStart(ctx context.Context, id string, opts container.StartOptions) error
	ContainerWait(ctx context.Context, id string, cond container.WaitCondition) (<-chan container.WaitResponse, <-chan error)
	ContainerKill(ctx context.Context, id, signal string) error
	ContainerRemove(ctx context.Context, id string, opts container.RemoveOptions) error
	ContainerList(ctx context.Context, opts container.ListOptions) ([]container.Summary, error)
	Ping(ctx context.Context) (types.Ping, error)
	NegotiateAPIVersionPing(types.Ping)
	Close() error
}

// NewClient returns the agent's Docker Engine client, the one place it is
// made (the runner and the health probe share it): the engine the
// environment names (DOCKER_HOST, DOCKER_API_VERSION, DOCKER_CERT_PATH,
// DOCKER_TLS_VERIFY) or else the default socket, with the API version
// negotiated. extra options are applied after those.
func NewClient(extra ...client.Opt) (*client.Client, error) {
	opts := append([]client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}, extra...)
	c, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return c, nil
}

// LabelKey marks the containers a runner starts; its value is
// Options.Instance, so Sweep removes only its own runner's leftovers.
const LabelKey = "org.pifleet.runner"

// Options configure a Runner. The zero value works (with a Docker engine
// found from the environment: DOCKER_HOST or the default socket).
type Options struct {
	Engine        Engine        // nil: NewClient()
	Instance      string        // label value identifying this runner's containers ("agent")
	Network       string        // container network mode: "bridge" (default), "host", "none"
	User          string        // container user ("65534:65534", nobody)
	Memory        int64         // bytes (256 MiB)
	PidsLimit     int64         // (128)
	NanoCPUs      int64         // 1e9 = one CPU (1e9)
	TmpfsSize     string        // size of /tmp ("64m")
	Timeout       time.Duration // longest run (60 s); a Job may ask for less
	OutputCap     int           // bytes of redacted output kept and streamed (64 KiB)
	MaxConcurrent int           // commands running at once (2)
	QueueWait     time.Duration // how long a command waits for a free slot (10 s)
	APITimeout    time.Duration // bound on each engine call outside the run (10 s)
	AllowPull     bool          // pull a missing image (with progress) instead of failing
	Logger        *slog.Logger
}

func (o *Options) ensureDefaults() error {
	if o.Engine == nil {
		c, err := NewClient()
		if err != nil {
			return err
		}
		o.Engine = c
	}
	def := func(p *int64, v int64) {
		if *p == 0 {
			*p = v
		}
	}
	def(&o.Memory, 256<<20)
	def(&o.PidsLimit, 128)
	def(&o.NanoCPUs, 1e9)
	if o.Instance == "" {
		o.Instance = "agent"
	}
	if o.Network == "" {
		o.Network = "bridge"
	}
	if o.User == "" {
		o.User = "65534:65534"
	}
	if o.TmpfsSize == "" {
		o.TmpfsSize = "64m"
	}
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	if o.OutputCap == 0 {
		o.OutputCap = 64 << 10
	}
	if o.MaxConcurrent == 0 {
		o.MaxConcurrent = 2
	}
	if o.QueueWait == 0 {
		o.QueueWait = 10 * time.Second
	}
	if o.APITimeout == 0 {
		o.APITimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Runner runs jobs in containers. It is safe for concurrent use.
type Runner struct {
	o     Options
	slots chan struct{}
	log   *slog.Logger
	pulls sync.Mutex

	negMu      sync.Mutex
	negotiated bool

	imgMu      sync.Mutex
	firstImage map[string]string // tag → the image id it named at its first run (checkImage)
	refusedMu  sync.Mutex
	refused    map[string]bool // tag@id refusals already logged

	// Containers that could not be removed because the engine was
	// unreachable: removeLater retries them until it answers again.
	lostMu  sync.Mutex
	lost    map[string]bool
	closed  chan struct{} // closed by Close: removeLater gives up
	closeMu sync.Once
}

// negotiate settles the API version once, before any other call. The
// docker client's lazy negotiation races with calls that read the version
// (ContainerList's filters), and doing it here also turns an unreachable
// engine into one clear, bounded error.
func (r *Runner) negotiate(ctx context.Context) error {
	r.negMu.Lock()
	defer r.negMu.Unlock()
	if r.negotiated {
		return nil
	}
	actx, cancel := r.apiCtx(ctx)
	defer cancel()
	p, err := r.o.Engine.Ping(actx)
	if err != nil {
		return engineErr("ping", err)
	}
	r.o.Engine.NegotiateAPIVersionPing(p)
	r.negotiated = true
	return nil
}

// New returns a Runner. It does not contact the engine: an unreachable
// engine is reported by each Run.
func New(o Options) (*Runner, error) {
	if err := o.ensureDefaults(); err != nil {
		return nil, err
	}
	return &Runner{o: o, slots: make(chan struct{}, o.MaxConcurrent), log: o.Logger.With("component", "runner"),
		lost: map[string]bool{}, closed: make(chan struct{})}, nil
}

// Close releases the engine client. Containers still waiting to be
// removed (the engine was unreachable) are left to Sweep at the next
// start.
func (r *Runner) Close() error {
	r.closeMu.Do(func() { close(r.closed) })
	return r.o.Engine.Close()
}

// Job is one command to run.
type Job struct {
	ID      string // command id, for labels and logs
	Tool    policy.Tool
	Argv    []string
	Timeout time.Duration // 0 or more than Options.Timeout: Options.Timeout

	imageID string // the image Tool.Image named when it was checked (run)
}

// Result is how a job ended. Output is the redacted output, capped at
// Options.OutputCap (Truncated says so); Bytes counts everything the
// command wrote.
type Result struct {
	Outcome   wire.Outcome
	ExitCode  int
	Duration  time.Duration
	Bytes     int64
	Truncated bool
	Output    string
	ImageID   string // the image the command ran in ("sha256:…"), when it got that far
	Err       error  // why Outcome is error or timeout
}

// Emit receives redacted output in the order the command wrote it.
type Emit func(stream wire.Stream, data string)

// ErrEngine wraps every failure to talk to the Docker engine.
var ErrEngine = errors.New("docker engine")

// Run runs job and returns its result; it never panics on engine errors
// and never hangs on an unreachable engine (every call is bounded).
func (r *Runner) Run(ctx context.Context, job Job, emit Emit) Result {
	start := time.Now()
	res := r.run(ctx, job, emit)
	res.Duration = time.Since(start)
	if res.Err != nil {
		r.log.Warn("command failed", "id", job.ID, "outcome", res.Outcome, "err", res.Err)
	}
	return res
}

func (r *Runner) run(ctx context.Context, job Job, emit Emit) Result {
	if emit == nil {
		emit = func(wire.Stream, string) {}
	}
	fail := func(err error) Result { return Result{Outcome: wire.OutcomeError, ExitCode: -1, Err: err} }
	select {
	case r.slots <- struct{}{}:
		defer func() { <-r.slots }()
	case <-time.After(r.o.QueueWait):
		return fail(fmt.Errorf("busy: %d commands already running", r.o.MaxConcurrent))
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	env, secrets, err := r.environment(job.Tool)
	if err != nil {
		return fail(err)
	}
	red := NewRedactor(secrets)
	if err := r.negotiate(ctx); err != nil {
		return fail(err)
	}
	id, err := r.ensureImage(ctx, job.Tool.Image, emit)
	if err != nil {
		return fail(err)
	}
	if err := r.checkImage(job.Tool, id); err != nil {
		return fail(err)
	}
	// Run the image checked, not whatever the tag names a moment later.
	job.imageID = id
	timeout := r.o.Timeout
	if job.Timeout > 0 && job.Timeout < timeout {
		timeout = job.Timeout
	}
	res := r.runContainer(ctx, job, env, red, emit, timeout)
	res.ImageID = id
	return res
}

// environment returns the container's environment and the values to
// redact: the tool's fixed variables, then the allowed ones from its env
// file.
func (r *Runner) environment(t policy.Tool) ([]string, []string, error) {
	var env []string
	for k, v := range t.SetEnv {
		env = append(env, k+"="+v)
	}
	if t.CredDir != "" && t.CredMount != "" {
		env = append(env, "AWS_CONFIG_FILE="+t.CredMount+"/config", "AWS_SHARED_CREDENTIALS_FILE="+t.CredMount+"/credentials")
	}
	var secrets []string
	if t.EnvFile != "" {
		ef, err := ReadEnvFile(t.EnvFile)
		if err != nil {
			return nil, nil, fmt.Errorf("credentials: %w", err)
		}
		secrets = ef.Secrets()
		for _, k := range t.Env {
			if v, ok := ef[k]; ok {
				env = append(env, k+"="+v)
			}
		}
	}
	sort.Strings(env)
	return env, secrets, nil
}

func (r *Runner) apiCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.o.APITimeout)
}

func engineErr(what string, err error) error {
	if unreachable(err) {
		return fmt.Errorf("%w unreachable (%s): %v", ErrEngine, what, err)
	}
	return fmt.Errorf("%w: %s: %v", ErrEngine, what, err)
}

// unreachable reports whether err says the engine cannot be reached (or
// went away mid-call), as opposed to an answer from it.
func unreachable(err error) bool {
	return client.IsErrConnectionFailed(err) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// ErrImageChanged is returned when a tool's image is not the one the
// policy pins, or not the one the tag named at this agent's first run.
var ErrImageChanged = errors.New("image changed")

// checkImage refuses an image id that is not the tool's pin, or, without
// a pin, not the one its tag named at this agent's first run of it
// (unless the policy allows changes). The first refusal of each new id is
// logged at ERROR; every run it affects is refused with the reason.
func (r *Runner) checkImage(t policy.Tool, id string) error {
	if t.ImageID != "" {
		if id != t.ImageID {
			return r.imageRefused(t.Image, id, fmt.Errorf("%w: image %s is %s, not %s as the policy pins (image_id): refusing to run it with the tool's credentials", ErrImageChanged, t.Image, short(id), short(t.ImageID)))
		}
		return nil
	}
	r.imgMu.Lock()
	defer r.imgMu.Unlock()
	first, seen := r.firstImage[t.Image]
	if !seen || t.AllowImageChange {
		if r.firstImage == nil {
			r.firstImage = map[string]string{}
		}
		r.firstImage[t.Image] = id
		return nil
	}
	if id != first {
		return r.imageRefused(t.Image, id, fmt.Errorf("%w: image %s was %s at this agent's first run and is now %s (re-tagged on this Docker Engine?): refusing to run it with the tool's credentials; pin image_id or set allow_image_change in the policy", ErrImageChanged, t.Image, short(first), short(id)))
	}
	return nil
}

// imageRefused logs err once per (reference, id).
func (r *Runner) imageRefused(ref, id string, err error) error {
	r.refusedMu.Lock()
	defer r.refusedMu.Unlock()
	if r.refused == nil {
		r.refused = map[string]bool{}
	}
	if k := ref + "@" + id; !r.refused[k] {
		r.refused[k] = true
		r.log.Error("refusing a changed image", "err", err)
	}
	return err
}

// short is an image id as docker prints it by default (12 hex digits).
func short(id string) string {
	if h, ok := strings.CutPrefix(id, "sha256:"); ok && len(h) > 12 {
		return h[:12]
	}
	return id
}

// ensureImage checks the image is present, pulling it only when allowed,
// and returns its id.
func (r *Runner) ensureImage(ctx context.Context, ref string, emit Emit) (string, error) {
	actx, cancel := r.apiCtx(ctx)
	defer cancel()
	info, err := r.o.Engine.ImageInspect(actx, ref)
	if err == nil {
		return info.ID, nil
	}
	if !cerrdefs.IsNotFound(err) {
		return "", engineErr("inspect image "+ref, err)
	}
	if !r.o.AllowPull {
		return "", fmt.Errorf("image %s is not on this Pi: build it (the aws image: /usr/share/pifleet-agent/build-tool-image), docker load it, or allow pulls", ref)
	}
	r.pulls.Lock()
	defer r.pulls.Unlock()
	emit(wire.Stderr, fmt.Sprintf("pulling %s …\n", ref))
	pctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	rc, err := r.o.Engine.ImagePull(pctx, ref, image.PullOptions{})
	if err != nil {
		return "", engineErr("pull "+ref, err)
	}
	defer rc.Close()
	if err := pullProgress(rc, func(s string) { emit(wire.Stderr, s+"\n") }); err != nil {
		return "", fmt.Errorf("pull %s: %w", ref, err)
	}
	ictx, cancel := r.apiCtx(ctx)
	defer cancel()
	info, err = r.o.Engine.ImageInspect(ictx, ref)
	if err != nil {
		return "", engineErr("inspect image "+ref, err)
	}
	return info.ID, nil
}

func (r *Runner) containerConfig(job Job, env []string) (*container.Config, *container.HostConfig) {
	t := job.Tool
	img := t.Image
	if job.imageID != "" {
		img = job.imageID
	}
	cfg := &container.Config{
		Image:           img,
		Entrypoint:      t.Entrypoint,
		Cmd:             job.Argv,
		Env:             env,
		User:            r.o.User,
		WorkingDir:      "/tmp",
		AttachStdout:    true,
		AttachStderr:    true,
		NetworkDisabled: r.o.Network == "none",
		Labels:          map[string]string{LabelKey: r.o.Instance, LabelKey + ".cmd": job.ID},
	}
	pids := r.o.PidsLimit
	hc := &container.HostConfig{
		NetworkMode:    container.NetworkMode(r.o.Network),
		CapDrop:        []string{"ALL"},
		SecurityOpt:    []string{"no-new-privileges"},
		ReadonlyRootfs: true,
		Tmpfs:          map[string]string{"/tmp": "rw,nosuid,nodev,mode=1777,size=" + r.o.TmpfsSize},
		LogConfig:      container.LogConfig{Type: "none"},
		Resources: container.Resources{
			Memory:     r.o.Memory,
			MemorySwap: r.o.Memory, // no swap on the SD card
			PidsLimit:  &pids,
			NanoCPUs:   r.o.NanoCPUs,
		},
	}
	if t.CredDir != "" && t.CredMount != "" {
		hc.Mounts = []mount.Mount{{Type: mount.TypeBind, Source: t.CredDir, Target: t.CredMount, ReadOnly: true}}
	}
	return cfg, hc
}

func (r *Runner) runContainer(ctx context.Context, job Job, env []string, red *Redactor, emit Emit, timeout time.Duration) Result {
	fail := func(err error) Result { return Result{Outcome: wire.OutcomeError, ExitCode: -1, Err: err} }
	cfg, hc := r.containerConfig(job, env)
	// Create, attach and start are short and bounded by APITimeout but not
	// cancelled with ctx: a request cancelled half-way can leave a
	// container the engine made but never told us about. A unique name
	// lets us remove it even when create reports an error.
	name := fmt.Sprintf("pifleet-%s-%s", r.o.Instance, randomSuffix())
	bg := context.WithoutCancel(ctx)
	actx, cancel := r.apiCtx(bg)
	created, err := r.o.Engine.ContainerCreate(actx, cfg, hc, nil, nil, name)
	cancel()
	if err != nil {
		r.remove(name)
		return fail(engineErr("create container", err))
	}
	id := created.ID
	defer r.remove(id)

	actx, cancel = r.apiCtx(bg)
	hj, err := r.o.Engine.ContainerAttach(actx, id, container.AttachOptions{Stream: true, Stdout: true, Stderr: true})
	cancel()
	if err != nil {
		return fail(engineErr("attach", err))
	}
	defer hj.Close()

	// The wait must be registered before the start so the exit is not missed.
	waitCtx, stopWait := context.WithCancel(context.Background())
	defer stopWait()
	waitC, waitErrC := r.o.Engine.ContainerWait(waitCtx, id, container.WaitConditionNextExit)

	out := newCollector(red, emit, r.o.OutputCap)
	copied := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(out.writer(wire.Stdout), out.writer(wire.Stderr), hj.Reader)
		copied <- err
	}()

	actx, cancel = r.apiCtx(bg)
	err = r.o.Engine.ContainerStart(actx, id, container.StartOptions{})
	cancel()
	if err != nil {
		return fail(fmt.Errorf("start %s %s: %w", job.Tool.Image, strings.Join(job.Tool.Entrypoint, " "), engineErr("start", err)))
	}

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	res := Result{Outcome: wire.OutcomeExited}
	select {
	case w := <-waitC:
		res.ExitCode = int(w.StatusCode)
		if w.Error != nil && w.Error.Message != "" {
			res.Outcome, res.Err = wire.OutcomeError, fmt.Errorf("%w: wait: %s", ErrEngine, w.Error.Message)
		}
	case err := <-waitErrC:
		res.Outcome, res.ExitCode, res.Err = wire.OutcomeError, -1, engineErr("wait", err)
	case <-timer.C:
		r.kill(id)
		res.Outcome, res.ExitCode, res.Err = wire.OutcomeTimeout, -1, fmt.Errorf("timed out after %v: killed", timeout)
	case <-ctx.Done():
		r.kill(id)
		res.Outcome, res.ExitCode, res.Err = wire.OutcomeError, -1, fmt.Errorf("cancelled: %w", ctx.Err())
	}
	// The attach stream ends when the container's output closes; do not
	// wait long for it (a killed container's stream may linger).
	select {
	case <-copied:
	case <-time.After(5 * time.Second):
		hj.Close()
		<-copied
	}
	out.flush()
	res.Output, res.Bytes, res.Truncated = out.result()
	return res
}

func (r *Runner) kill(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), r.o.APITimeout)
	defer cancel()
	if err := r.o.Engine.ContainerKill(ctx, id, "KILL"); err != nil && !cerrdefs.IsNotFound(err) {
		r.log.Warn("kill container", "container", id, "err", err)
	}
}

// remove removes the container whatever happened before (a fresh context:
// the caller's may be cancelled already). The engine refuses to remove a
// container that is still starting or already being removed, so it
// retries until the container is gone or APITimeout passes. An engine
// that cannot be reached is not waited for: the container (which may
// still run) goes to removeLater, and the command's result goes out now.
func (r *Runner) remove(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), r.o.APITimeout)
	defer cancel()
	for {
		err := r.o.Engine.ContainerRemove(ctx, id, container.RemoveOptions{Force: true})
		if err == nil || cerrdefs.IsNotFound(err) {
			return
		}
		if unreachable(err) {
			r.removeLater(id, err)
			return
		}
		select {
		case <-ctx.Done():
			r.log.Error("remove container; Sweep will retry at the next start", "container", id, "err", err)
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// removeLater removes the container once the engine answers again,
// trying every second at first, then less often (at most every 30 s),
// until the runner is closed (Sweep removes it at the next start then).
func (r *Runner) removeLater(id string, why error) {
	r.lostMu.Lock()
	defer r.lostMu.Unlock()
	if r.lost[id] {
		return
	}
	r.lost[id] = true
	r.log.Warn("cannot remove a command's container: the docker engine is unreachable; removing it (and stopping it, if it still runs) once the engine answers again",
		"container", id, "err", why)
	go func() {
		wait := time.Second
		for {
			select {
			case <-r.closed:
				return
			case <-time.After(wait):
			}
			ctx, cancel := context.WithTimeout(context.Background(), r.o.APITimeout)
			err := r.o.Engine.ContainerRemove(ctx, id, container.RemoveOptions{Force: true})
			cancel()
			if err == nil || cerrdefs.IsNotFound(err) {
				r.lostMu.Lock()
				delete(r.lost, id)
				r.lostMu.Unlock()
				r.log.Info("removed the container of a command that lost the docker engine", "container", id)
				return
			}
			wait = min(wait*2, 30*time.Second)
		}
	}()
}

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Sweep removes containers this runner instance left behind (an agent
// killed mid-command). The agent calls it at start.
func (r *Runner) Sweep(ctx context.Context) (int, error) {
	if err := r.negotiate(ctx); err != nil {
		return 0, err
	}
	actx, cancel := r.apiCtx(ctx)
	defer cancel()
	list, err := r.o.Engine.ContainerList(actx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", LabelKey+"="+r.o.Instance))})
	if err != nil {
		return 0, engineErr("list containers", err)
	}
	for _, c := range list {
		r.remove(c.ID)
	}
	return len(list), nil
}

// Containers returns the ids of this runner's existing containers (tests
// use it to prove none is left behind).
func (r *Runner) Containers(ctx context.Context) ([]string, error) {
	if err := r.negotiate(ctx); err != nil {
		return nil, err
	}
	actx, cancel := r.apiCtx(ctx)
	defer cancel()
	list, err := r.o.Engine.ContainerList(actx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", LabelKey+"="+r.o.Instance))})
	if err != nil {
		return nil, engineErr("list containers", err)
	}
	var ids []string
	for _, c := range list {
		ids = append(ids, c.ID)
	}
	return ids, nil
}

var _ Engine = (*client.Client)(nil)
