package console

import (
	"context"
	"strings"
	"testing"

	"github.com/pifleet/pifleet/internal/testenv"
)

// TestSystemctlArgv runs echo and false in systemctl's place: the argv
// reaches the program as separate words (no shell), and a failure names
// what was run.
func TestSystemctlArgv(t *testing.T) {
	echo := testenv.RequireCommand(t, "echo", "coreutils")
	got, err := Systemctl{Path: echo}.ActiveState(context.Background(), "serial-getty@ttyS0.service")
	if want := "show --property=ActiveState --value -- serial-getty@ttyS0.service"; err != nil || got != want {
		t.Errorf("got %q, %v; want %q", got, err, want)
	}
	fail := testenv.RequireCommand(t, "false", "coreutils")
	err = Systemctl{Path: fail}.Restart(context.Background(), "serial-getty@ttyS0.service; reboot")
	if err == nil || !strings.Contains(err.Error(), "systemctl restart -- serial-getty@ttyS0.service; reboot") {
		t.Errorf("got %v, want an error naming the command", err)
	}
	for state, active := range map[string]bool{"active": true, "reloading": true, "activating": true, "inactive": false, "failed": false, "deactivating": false} {
		if IsActive(state) != active {
			t.Errorf("IsActive(%q): got %v, want %v", state, !active, active)
		}
	}
}
