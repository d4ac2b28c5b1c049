// Package enginetest is a scripted fake of runner.Engine, so that the
// runner's own logic (timeouts, output caps, redaction, removal, the
// leftover sweep, error reporting) is tested without Docker, also under
// qemu. Each container plays a Script: output chunks, then an exit code, a
// hang until killed, or an engine error at create, attach, start or wait.
//
// It is not internal/runnertest: that package provides the real Docker
// Engine and its test images; this one replaces the engine.
package enginetest

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pifleet/pifleet/agent/internal/runner"
	"github.com/pifleet/pifleet/internal/wire"
)

var _ runner.Engine = (*Fake)(nil)

// Chunk is one write of a container to one of its streams. Each chunk
// reaches the runner as one write, so a test decides where the runner sees
// the boundaries.
type Chunk struct {
	Stream wire.Stream // wire.Stdout or wire.Stderr
	Data   string
}

// Out makes a stdout chunk.
func Out(s string) Chunk { return Chunk{wire.Stdout, s} }

// Err makes a stderr chunk.
func Err(s string) Chunk { return Chunk{wire.Stderr, s} }

// Script is what one container does. The zero Script exits 0 silently.
type Script struct {
	Output []Chunk
	Exit   int64
	// Hang keeps the container running after its output until it is
	// killed (exit 137) or removed.
	Hang bool
	// WaitMessage is the error the engine reports in the wait response
	// (the container's exit could not be waited for).
	WaitMessage string
	// WaitErr is sent on ContainerWait's error channel instead of an exit.
	WaitErr error
	// CreateErr fails ContainerCreate; with CreateLeaves the engine made
	// the container anyway (a request cut half-way).
	CreateErr    error
	CreateLeaves bool
	AttachErr    error
	StartErr     error
	// RemoveFailures is how many removals fail (a conflict: "removal
	// already in progress") before one succeeds.
	RemoveFailures int
}

// Container is the fake engine's record of one container.
type Container struct {
	ID, Name   string
	Labels     map[string]string
	Config     *container.Config
	HostConfig *container.HostConfig
	Started    bool
	Killed     bool // a signal was sent while it ran
	Exited     bool
}

// Fake implements runner.Engine. Set its exported fields before use; the
// methods are safe for concurrent use.
type Fake struct {
	// PingErr fails Ping (an engine that is not there).
	PingErr error
	// ListErr fails ContainerList.
	ListErr error
	// InspectErr fails ImageInspect with something other than not-found.
	InspectErr error
	// PullProgress is the JSON progress stream ImagePull returns;
	// PullErr fails ImagePull.
	PullProgress string
	PullErr      error

	mu      sync.Mutex
	images  map[string]bool
	ids     map[string]string // Retag: the image id a reference now names
	scripts []Script
	ctrs    map[string]*ctr // by id
	all     []*ctr          // every container ever made
	seq     int
	calls   []string
}

type ctr struct {
	Container
	script   Script
	removes  int
	engine   net.Conn      // the engine's end of the attach stream
	attached chan struct{} // closed when attached
	exit     chan struct{} // closed when the container stops
	code     int64
}

// New returns an engine holding the given images.
func New(images ...string) *Fake {
	f := &Fake{images: map[string]bool{}, ctrs: map[string]*ctr{}}
	for _, i := range images {
		f.images[i] = true
	}
	return f
}

// Queue adds scripts for the next containers created, in order; once they
// are used up a container plays the zero Script.
func (f *Fake) Queue(s ...Script) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scripts = append(f.scripts, s...)
}

// Leave records a container that nobody will remove (what a crashed agent
// leaves behind) and returns its id.
func (f *Fake) Leave(labels map[string]string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.newLocked("", &container.Config{Labels: labels}, nil, Script{})
	c.Exited = true
	close(c.exit)
	return c.ID
}

// Containers returns the containers the engine still holds, oldest first.
func (f *Fake) Containers() []Container {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Container
	for _, c := range f.ctrs {
		out = append(out, c.Container)
	}
	slices.SortFunc(out, func(a, b Container) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Created returns every container ever made, removed or not, oldest first.
func (f *Fake) Created() []Container {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Container, 0, len(f.all))
	for _, c := range f.all {
		out = append(out, c.Container)
	}
	return out
}

// Calls returns the names of the Engine methods called so far, in order.
func (f *Fake) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *Fake) called(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, name)
}

// newLocked makes a container record; f.mu is held.
func (f *Fake) newLocked(name string, cfg *container.Config, hc *container.HostConfig, s Script) *ctr {
	f.seq++
	c := &ctr{script: s, attached: make(chan struct{}), exit: make(chan struct{})}
	c.ID = fmt.Sprintf("fake%04d", f.seq)
	c.Name, c.Config, c.HostConfig, c.Labels = name, cfg, hc, cfg.Labels
	f.ctrs[c.ID] = c
	f.all = append(f.all, c)
	return c
}

// findLocked looks a container up by id or name; f.mu is held.
func (f *Fake) findLocked(ref string) (*ctr, error) {
	if c, ok := f.ctrs[ref]; ok {
		return c, nil
	}
	for _, c := range f.ctrs {
		if c.Name != "" && c.Name == ref {
			return c, nil
		}
	}
	return nil, fmt.Errorf("no such container: %s: %w", ref, cerrdefs.ErrNotFound)
}

// ImageInspect implements runner.Engine.
func (f *Fake) ImageInspect(_ context.Context, ref string, _ ...client.ImageInspectOption) (image.InspectResponse, error) {
	f.called("ImageInspect")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.InspectErr != nil {
		return image.InspectResponse{}, f.InspectErr
	}
	if !f.images[ref] {
		return image.InspectResponse{}, fmt.Errorf("no such image: %s: %w", ref, cerrdefs.ErrNotFound)
	}
	if id, ok := f.ids[ref]; ok {
		return image.InspectResponse{ID: id}, nil
	}
	return image.InspectResponse{ID: "sha256:" + ref}, nil
}

// Retag points ref at another image id (what `docker tag` by another user
// of the engine does); until then an image's id is "sha256:" + ref.
func (f *Fake) Retag(ref, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ids == nil {
		f.ids = map[string]string{}
	}
	f.images[ref] = true
	f.ids[ref] = id
}

// ImagePull implements runner.Engine: the image is there afterwards.
func (f *Fake) ImagePull(_ context.Context, ref string, _ image.PullOptions) (io.ReadCloser, error) {
	f.called("ImagePull")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.PullErr != nil {
		return nil, f.PullErr
	}
	f.images[ref] = true
	return io.NopCloser(strings.NewReader(f.PullProgress)), nil
}

// ContainerCreate implements runner.Engine and takes the next Script.
func (f *Fake) ContainerCreate(_ context.Context, cfg *container.Config, hc *container.HostConfig, _ *network.NetworkingConfig, _ *ocispec.Platform, name string) (container.CreateResponse, error) {
	f.called("ContainerCreate")
	f.mu.Lock()
	defer f.mu.Unlock()
	var s Script
	if len(f.scripts) > 0 {
		s, f.scripts = f.scripts[0], f.scripts[1:]
	}
	if s.CreateErr != nil {
		if s.CreateLeaves {
			f.newLocked(name, cfg, hc, s)
		}
		return container.CreateResponse{}, s.CreateErr
	}
	if _, err := f.findLocked(name); name != "" && err == nil {
		return container.CreateResponse{}, fmt.Errorf("name %s in use: %w", name, cerrdefs.ErrConflict)
	}
	return container.CreateResponse{ID: f.newLocked(name, cfg, hc, s).ID}, nil
}

// ContainerAttach implements runner.Engine: the stream is multiplexed as
// the real engine's is (stdcopy frames).
func (f *Fake) ContainerAttach(_ context.Context, id string, _ container.AttachOptions) (types.HijackedResponse, error) {
	f.called("ContainerAttach")
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.findLocked(id)
	if err != nil {
		return types.HijackedResponse{}, err
	}
	if c.script.AttachErr != nil {
		return types.HijackedResponse{}, c.script.AttachErr
	}
	runnerEnd, engineEnd := net.Pipe()
	c.engine = engineEnd
	close(c.attached)
	return types.NewHijackedResponse(runnerEnd, "application/vnd.docker.multiplexed-stream"), nil
}

// ContainerStart implements runner.Engine: the container plays its script.
func (f *Fake) ContainerStart(_ context.Context, id string, _ container.StartOptions) error {
	f.called("ContainerStart")
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.findLocked(id)
	if err != nil {
		return err
	}
	if c.script.StartErr != nil {
		return c.script.StartErr
	}
	if c.Started {
		return fmt.Errorf("container %s already started: %w", id, cerrdefs.ErrConflict)
	}
	c.Started = true
	go f.play(c)
	return nil
}

// play writes c's output and ends it as its script says.
func (f *Fake) play(c *ctr) {
	var conn net.Conn
	select {
	case <-c.attached:
		conn = c.engine
	default: // not attached: the output goes nowhere
	}
	if conn != nil {
		out := stdcopy.NewStdWriter(conn, stdcopy.Stdout)
		errw := stdcopy.NewStdWriter(conn, stdcopy.Stderr)
		for _, ch := range c.script.Output {
			w := out
			if ch.Stream == wire.Stderr {
				w = errw
			}
			if _, err := w.Write([]byte(ch.Data)); err != nil {
				break // the runner closed its end
			}
		}
	}
	if !c.script.Hang {
		f.stop(c, c.script.Exit)
	}
	<-c.exit
	if conn != nil {
		conn.Close()
	}
}

// stop ends a running container with code (once).
func (f *Fake) stop(c *ctr, code int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c.Exited {
		return
	}
	c.Exited, c.code = true, code
	close(c.exit)
}

// ContainerWait implements runner.Engine.
func (f *Fake) ContainerWait(ctx context.Context, id string, _ container.WaitCondition) (<-chan container.WaitResponse, <-chan error) {
	f.called("ContainerWait")
	resC, errC := make(chan container.WaitResponse, 1), make(chan error, 1)
	f.mu.Lock()
	c, err := f.findLocked(id)
	f.mu.Unlock()
	if err != nil {
		errC <- err
		return resC, errC
	}
	if c.script.WaitErr != nil {
		errC <- c.script.WaitErr
		return resC, errC
	}
	go func() {
		select {
		case <-c.exit:
			f.mu.Lock()
			r := container.WaitResponse{StatusCode: c.code}
			f.mu.Unlock()
			if c.script.WaitMessage != "" {
				r.Error = &container.WaitExitError{Message: c.script.WaitMessage}
			}
			resC <- r
		case <-ctx.Done():
			errC <- ctx.Err()
		}
	}()
	return resC, errC
}

// ContainerKill implements runner.Engine: a running container exits 137.
func (f *Fake) ContainerKill(_ context.Context, id, _ string) error {
	f.called("ContainerKill")
	f.mu.Lock()
	c, err := f.findLocked(id)
	if err == nil && (!c.Started || c.Exited) {
		err = fmt.Errorf("container %s is not running: %w", id, cerrdefs.ErrConflict)
	}
	if err == nil {
		c.Killed = true
	}
	f.mu.Unlock()
	if err != nil {
		return err
	}
	f.stop(c, 137)
	return nil
}

// ContainerRemove implements runner.Engine (always as with Force: a
// running container is killed first).
func (f *Fake) ContainerRemove(_ context.Context, id string, _ container.RemoveOptions) error {
	f.called("ContainerRemove")
	f.mu.Lock()
	c, err := f.findLocked(id)
	if err == nil && c.removes < c.script.RemoveFailures {
		c.removes++
		err = fmt.Errorf("removal of container %s is already in progress: %w", id, cerrdefs.ErrConflict)
	}
	if err == nil {
		delete(f.ctrs, c.ID)
	}
	f.mu.Unlock()
	if err != nil {
		return err
	}
	f.stop(c, 137)
	return nil
}

// ContainerList implements runner.Engine, honouring "label" filters
// ("key" or "key=value"); every container is listed, running or not.
func (f *Fake) ContainerList(_ context.Context, opts container.ListOptions) ([]container.Summary, error) {
	f.called("ContainerList")
	if f.ListErr != nil {
		return nil, f.ListErr
	}
	var out []container.Summary
	for _, c := range f.Containers() {
		if matchLabels(c.Labels, opts.Filters.Get("label")) {
			out = append(out, container.Summary{ID: c.ID, Names: []string{"/" + c.Name}, Labels: c.Labels})
		}
	}
	return out, nil
}

func matchLabels(labels map[string]string, want []string) bool {
	for _, w := range want {
		k, v, hasValue := strings.Cut(w, "=")
		got, ok := labels[k]
		if !ok || (hasValue && got != v) {
			return false
		}
	}
	return true
}

// Ping implements runner.Engine.
func (f *Fake) Ping(context.Context) (types.Ping, error) {
	f.called("Ping")
	if f.PingErr != nil {
		return types.Ping{}, f.PingErr
	}
	return types.Ping{APIVersion: "1.47", OSType: "linux"}, nil
}

// NegotiateAPIVersionPing implements runner.Engine.
func (f *Fake) NegotiateAPIVersionPing(types.Ping) { f.called("NegotiateAPIVersionPing") }

// Close implements runner.Engine.
func (f *Fake) Close() error {
	f.called("Close")
	return nil
}
