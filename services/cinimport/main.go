// Command cinimport imports a trader's account trades into per-session moves, driven by row changes and a periodic sweep. See README.md and docs/events.md.
package main

import (
	"context"
	"os"

	"cryptopill.dev/jobs/libs/config"
	"cryptopill.dev/jobs/libs/service"
)

func main() {
	cfg, err := LoadConfig(os.LookupEnv)
	if err != nil {
		config.Exit("cinimport", err)
	}
	os.Exit(service.Main(service.Options{Name: "cinimport", Common: cfg.Common}, func(ctx context.Context, p *service.Process) error {
		return run(ctx, p, cfg)
	}))
}

func run(ctx context.Context, p *service.Process, cfg Config) error {
	<-ctx.Done()
	return nil
}
