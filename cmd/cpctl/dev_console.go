package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"cryptopill.dev/jobs/libs/pgcluster"
)

// startDevConsole runs `cpctl console -actions` as one of the dev stack's children (restarted if
// it dies, logs in .data/logs/console.log), on loopback port CP_DEV_CONSOLE_PORT (default 8095),
// and prints its URL.
func (s *devStack) startDevConsole(ctx context.Context, self string, env []string) error {
	port := envInt("CP_DEV_CONSOLE_PORT", 8095)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := s.start(ctx, "console", self, []string{"console", "-addr", addr, "-actions"}, env); err != nil {
		return fmt.Errorf("console: %w", err)
	}
	if err := pgcluster.WaitReady(addr, 15*time.Second); err != nil {
		return fmt.Errorf("console: not ready on %s (is the port in use? set CP_DEV_CONSOLE_PORT): %w", addr, err)
	}
	fmt.Fprintf(os.Stderr, "  console            http://%s/   (cpctl status in a shell shows the same)\n", addr)
	return nil
}
