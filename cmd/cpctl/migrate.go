package main

import (
	"context"
	"fmt"
	"os"
)

// TODO(foundation): replaced by the real implementation.
func runMigrate(ctx context.Context, args []string) int {
	fmt.Fprintln(os.Stderr, "cpctl: not implemented yet")
	return 1
}
