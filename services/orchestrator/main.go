// Command orchestrator is the gate of the background platform (RUN_JOBS), the tick publisher, the
// universe watcher and the Postgres change relay. See README.md and docs/events.md.
package main

import (
	"context"
	"log/slog"
	"os"

	"cryptopill.dev/jobs/libs/config"
	"cryptopill.dev/jobs/libs/service"
)

func main() {
	logger := service.NewLogger(os.Getenv("LOG_LEVEL")).With("service", "orchestrator")
	if !runJobsEnabled(os.LookupEnv) {
		// The seed's behaviour, kept: no background traffic unless explicitly enabled, and no
		// connection to Postgres or NATS either.
		logger.Info("background workers disabled: RUN_JOBS is not 1; set RUN_JOBS=1 to enable them",
			"RUN_JOBS", os.Getenv("RUN_JOBS"))
		os.Exit(0)
	}
	cfg, err := LoadConfig(os.LookupEnv)
	if err != nil {
		config.Exit("orchestrator", err)
	}
	os.Exit(service.Main(service.Options{Name: "orchestrator", Common: cfg.Common, Logger: logger}, func(ctx context.Context, p *service.Process) error {
		return run(ctx, p, cfg)
	}))
}

// runJobsEnabled is the gate: exactly "1" enables the orchestrator, as operators know it.
func runJobsEnabled(lookup func(string) (string, bool)) bool {
	v, _ := lookup("RUN_JOBS")
	return v == "1"
}

func run(ctx context.Context, p *service.Process, cfg Config) error {
	p.Logger.Info("orchestrator running",
		slog.Duration("straux_interval", cfg.StrauxInterval),
		slog.String("runner_session_id", cfg.RunnerSessionID))
	<-ctx.Done()
	return nil
}
