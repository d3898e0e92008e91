package main

import (
	"time"

	"cryptopill.dev/jobs/libs/config"
)

// Config is the orchestrator's configuration, read from the environment.
type Config struct {
	config.Common
	// StrauxInterval is the seed's rule: max(5000, STR_AUX_RUNNER_INTERVAL_MS ?? 40000) ms.
	StrauxInterval time.Duration
	// RunnerSessionID is STR_AUX_RUNNER_SESSION_ID, default "str-aux-runner", carried in ticks.
	RunnerSessionID string
	// CinImportInterval is the cinimport sweep period, CIN_IMPORT_INTERVAL_MS, floored at 60 s.
	CinImportInterval time.Duration
	// CDCSlot and CDCPublication name the logical replication slot and publication of the relay.
	CDCSlot        string
	CDCPublication string
	// CDCTables are the tables the relay publishes changes of, CDC_TABLES (schema.table, comma-separated).
	CDCTables []string
}

// Interval floors: an interval below its floor is raised to it, as the seed did.
const (
	strauxFloor    = 5 * time.Second
	cinImportFloor = time.Minute
)

// LoadConfig reads the orchestrator's configuration.
func LoadConfig(lookup func(string) (string, bool)) (Config, error) {
	l := config.NewLoader(lookup)
	cfg := Config{
		Common:            l.LoadCommon("127.0.0.1:9101"),
		StrauxInterval:    max(strauxFloor, l.Millis("STR_AUX_RUNNER_INTERVAL_MS", 40*time.Second)),
		RunnerSessionID:   l.String("STR_AUX_RUNNER_SESSION_ID", "str-aux-runner"),
		CinImportInterval: max(cinImportFloor, l.Millis("CIN_IMPORT_INTERVAL_MS", config.Pick(l, 15*time.Minute, 15*time.Minute, 5*time.Minute))),
		CDCSlot:           l.String("CDC_SLOT", "cp_relay"),
		CDCPublication:    l.String("CDC_PUBLICATION", "cp_cdc"),
		CDCTables:         l.List("CDC_TABLES", []string{"settings.coin_universe", "cin_aux.rt_session", "market.account_trades"}),
	}
	return cfg, l.Err()
}
