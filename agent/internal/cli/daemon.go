package cli

import (
	"context"
	"fmt"
)

// runDaemon parses the agent's flags and runs the daemon (filled in by the
// walking skeleton).
func runDaemon(ctx context.Context, env Env, args []string) error {
	return fmt.Errorf("daemon not wired yet")
}
