//go:build pifleet_dbus

// The D-Bus implementation needs github.com/godbus/dbus/v5, which
// go-systemd's dbus package imports and go.mod does not list yet. To use
// it: `go get github.com/godbus/dbus/v5@v5.1.0` and delete the build
// constraint above. Until then the agent uses Systemctl.

package console

import (
	"context"
	"fmt"
	"strings"
	"sync"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
)

// DBus implements Systemd over systemd's D-Bus API (no process per call).
// The connection is opened on first use and reopened after an error.
type DBus struct {
	mu   sync.Mutex
	conn *sddbus.Conn
}

func (d *DBus) get(ctx context.Context) (*sddbus.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn != nil && d.conn.Connected() {
		return d.conn, nil
	}
	c, err := sddbus.NewSystemConnectionContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to systemd over D-Bus: %w", err)
	}
	d.conn = c
	return c, nil
}

// ActiveState implements Systemd.
func (d *DBus) ActiveState(ctx context.Context, unit string) (string, error) {
	c, err := d.get(ctx)
	if err != nil {
		return "", err
	}
	p, err := c.GetUnitPropertyContext(ctx, unit, "ActiveState")
	if err != nil {
		return "", fmt.Errorf("ActiveState of %s: %w", unit, err)
	}
	return strings.Trim(p.Value.String(), `"`), nil
}

// Restart implements Systemd: a "replace" restart job, waited for.
func (d *DBus) Restart(ctx context.Context, unit string) error {
	c, err := d.get(ctx)
	if err != nil {
		return err
	}
	done := make(chan string, 1)
	if _, err := c.RestartUnitContext(ctx, unit, "replace", done); err != nil {
		return fmt.Errorf("restart %s: %w", unit, err)
	}
	select {
	case res := <-done:
		if res != "done" {
			return fmt.Errorf("restart %s: job %s", unit, res)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("restart %s: %w", unit, ctx.Err())
	}
}

// Close closes the D-Bus connection.
func (d *DBus) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn != nil {
		d.conn.Close()
		d.conn = nil
	}
}
