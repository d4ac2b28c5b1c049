package health

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

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

// pingDocker sends GET /_ping over the Docker socket with a short timeout.
func (c *Collector) pingDocker(ctx context.Context) string {
	p := c.path(c.opts.DockerSocket)
	fi, err := os.Stat(p)
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		return DockerAbsent
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", p)
	if err != nil {
		return DockerUnreachable
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	if _, err := conn.Write([]byte("GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")); err != nil {
		return DockerUnreachable
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return DockerUnreachable
	}
	if f := strings.Fields(line); len(f) >= 2 && strings.HasPrefix(f[0], "HTTP/") && f[1] == "200" {
		return DockerReachable
	}
	return DockerUnreachable
}
