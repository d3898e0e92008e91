// Command straux consumes ticks: samples order books, tickers and klines, computes str-aux vectors and works the market job kinds. See README.md and docs/events.md.
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
		config.Exit("straux", err)
	}
	os.Exit(service.Main(service.Options{Name: "straux", Common: cfg.Common}, func(ctx context.Context, p *service.Process) error {
		return run(ctx, p, cfg)
	}))
}

func run(ctx context.Context, p *service.Process, cfg Config) error {
	<-ctx.Done()
	return nil
}
