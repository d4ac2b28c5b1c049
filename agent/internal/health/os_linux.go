package health

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/docker/docker/client"
	"golang.org/x/sys/unix"

	"github.com/pifleet/pifleet/agent/internal/runner"
	"github.com/pifleet/pifleet/internal/wire"
)

// Docker states, as in Health.Docker.
const (
	DockerReachable   = "reachable"
	DockerUnreachable = "unreachable"
	DockerAbsent      = "absent"
)

func statfs(path string) (FSStat, error) {
	var s unix.Statfs_t
	if err := unix.Statfs(path, &s); err != nil {
		return FSStat{}, err
	}
	bs := uint64(s.Bsize)
	return FSStat{Total: uint64(s.Blocks) * bs, Free: uint64(s.Bfree) * bs, Avail: uint64(s.Bavail) * bs}, nil
}

// adjtimexSynced asks the kernel (adjtimex with no modes: read only)
// whether NTP has synchronised the clock.
func adjtimexSynced() (bool, error) {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return false, fmt.Errorf("adjtimex: %w", err)
	}
	return state != unix.TIME_ERROR && tx.Status&unix.STA_UNSYNC == 0, nil
}

// probeDocker reports whether the Docker daemon answers (reused for
// SlowEvery: the ping costs the daemon too).
func (c *Collector) probeDocker(ctx context.Context, h *wire.Health) error {
	st, _ := c.docker.get(c.opts.Now(), c.opts.SlowEvery, func() (string, error) {
		return c.opts.Docker(ctx), nil
	})
	h.Docker = st
	if st == DockerAbsent {
		return fmt.Errorf("no docker socket: %w", ErrAbsent)
	}
	return nil
}

// pingDocker asks the Docker Engine the agent's commands would use
// (runner.NewClient: DOCKER_HOST, else the default socket) for /_ping, with
// a short timeout. Without DOCKER_HOST, no socket at DockerSocket (under
// Root) means Docker is not installed: absent, not failed. With DOCKER_HOST
// set Docker is meant to be there, so any failure is unreachable.
func (c *Collector) pingDocker(ctx context.Context) string {
	var opts []client.Opt
	if os.Getenv(client.EnvOverrideHost) == "" {
		p := c.path(c.opts.DockerSocket)
		fi, err := os.Stat(p)
		if err != nil || fi.Mode()&os.ModeSocket == 0 {
			return DockerAbsent
		}
		opts = append(opts, client.WithHost("unix://"+p))
	}
	cl, err := c.dockerClient(opts)
	if err != nil {
		c.log.Debug("docker client", "err", err)
		return DockerUnreachable
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := cl.Ping(ctx); err != nil {
		c.log.Debug("docker ping", "host", cl.DaemonHost(), "err", err)
		return DockerUnreachable
	}
	return DockerReachable
}

// dockerClient builds the Docker client on the first ping that needs it
// and keeps it: a Pi without Docker never pays for one, and a Pi with
// Docker does not build a transport every SlowEvery.
func (c *Collector) dockerClient(opts []client.Opt) (*client.Client, error) {
	c.dockerMu.Lock()
	defer c.dockerMu.Unlock()
	if c.dockerCl == nil {
		cl, err := runner.NewClient(opts...)
		if err != nil {
			return nil, err
		}
		c.dockerCl = cl
	}
	return c.dockerCl, nil
}
