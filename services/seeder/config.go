package main

import (
	"strings"
	"time"

	"cryptopill.dev/jobs/libs/config"
	"cryptopill.dev/jobs/services/seeder/internal/seeding"
)

// Config is the seeder's configuration, read from the environment.
type Config struct {
	config.Common
	// Windows overrides settings.windows with the kline windows to seed per symbol,
	// SEEDER_WINDOWS (comma-separated Binance intervals). Empty: the enabled settings.windows.
	Windows []string
	// JobPeriod, SEEDER_JOB_PERIOD, is how often the universe-wide job kinds run (default 1m).
	JobPeriod time.Duration
	// BacklogInterval is how often ingest.jobs is counted for cp_jobs_backlog (0: 30s; tests
	// shorten it).
	BacklogInterval time.Duration
}

// LoadConfig reads the seeder's configuration.
func LoadConfig(lookup func(string) (string, bool)) (Config, error) {
	l := config.NewLoader(lookup)
	cfg := Config{
		Common:    l.LoadCommon("127.0.0.1:9104"),
		Windows:   l.List("SEEDER_WINDOWS", nil),
		JobPeriod: l.Duration("SEEDER_JOB_PERIOD", time.Minute),
	}
	if err := seeding.ValidateWindows(cfg.Windows); err != nil {
		l.Check(false, "SEEDER_WINDOWS", strings.Join(cfg.Windows, ","), "Binance kline intervals: "+err.Error())
	}
	return cfg, l.Err()
}
