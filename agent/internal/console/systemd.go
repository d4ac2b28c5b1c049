package console

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// Systemd is what the console watcher needs from systemd. The agent uses
// Systemctl (one systemctl process per call, a few per minute at most:
// no D-Bus connection to keep); tests use
// systemdtest.Fake, because systemd is not PID 1 on test machines.
type Systemd interface {
	// ActiveState returns the unit's ActiveState: active, reloading,
	// inactive, failed, activating, deactivating.
	ActiveState(ctx context.Context, unit string) (string, error)
	// Restart restarts the unit (and starts it when it is not running).
	Restart(ctx context.Context, unit string) error
}

// GettyUnit returns the systemd unit that runs the login prompt on tty.
func GettyUnit(tty string) string { return "serial-getty@" + tty + ".service" }

// IsActive reports whether an ActiveState counts as running.
func IsActive(state string) bool {
	return state == "active" || state == "reloading" || state == "activating"
}

// Systemctl implements Systemd by running systemctl (argv, never a shell).
type Systemctl struct {
	Path    string        // default "systemctl" from PATH
	Timeout time.Duration // per call, default 10s
}

func (s Systemctl) run(ctx context.Context, args ...string) (string, error) {
	path := s.Path
	if path == "" {
		path = "systemctl"
	}
	timeout := s.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("systemctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// ActiveState implements Systemd.
func (s Systemctl) ActiveState(ctx context.Context, unit string) (string, error) {
	return s.run(ctx, "show", "--property=ActiveState", "--value", "--", unit)
}

// Restart implements Systemd.
func (s Systemctl) Restart(ctx context.Context, unit string) error {
	_, err := s.run(ctx, "restart", "--", unit)
	return err
}
