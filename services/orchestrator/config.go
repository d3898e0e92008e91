package main

import (
	"fmt"
	"strings"
	"time"

	"cryptopill.dev/jobs/libs/config"
	"cryptopill.dev/jobs/libs/events"
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
	// CinImportRunnerSessionID is carried in cinimport ticks, CIN_IMPORT_RUNNER_SESSION_ID,
	// default "cin-import-runner".
	CinImportRunnerSessionID string
	// FlagsBucket is the JetStream KV bucket of operator flags (freeze), FLAGS_BUCKET, default CP_FLAGS.
	FlagsBucket string
	// CDCEnabled runs the change relay (CDC_ENABLED, default on). Off, the orchestrator only ticks
	// and publishes the universe at start.
	CDCEnabled bool
	// CDCDatabaseURL is the change relay's Postgres URL, CDC_DATABASE_URL or CDC_DATABASE_URL_FILE
	// (default DatabaseURL): a role with REPLICATION (cp_replication, migration 00016), which
	// the orchestrator's own role has no need of. Holds a password: log db.SafeURL.
	CDCDatabaseURL string
	// CDCSlot and CDCPublication name the logical replication slot and publication of the relay.
	CDCSlot        string
	CDCPublication string
	// CDCTables are the tables the relay publishes changes of, CDC_TABLES (schema.table, comma-separated).
	CDCTables []string
	// CDCMaxInFlight bounds relayed events awaiting their PubAck, CDC_MAX_IN_FLIGHT.
	CDCMaxInFlight int
	// CDCDuplicateWindow is the CP_CDC stream's duplicate window, CDC_DUPLICATE_WINDOW (default
	// 5m): how long JetStream drops a replayed change by its id. The orchestrator owns CP_CDC, so
	// this is the window's only source.
	CDCDuplicateWindow time.Duration
	// CDCMaxInFlightBytes bounds their bytes, CDC_MAX_IN_FLIGHT_BYTES (default 64 MiB).
	CDCMaxInFlightBytes int64
	// CDCRecreateLostSlot drops and recreates a slot Postgres invalidated, CDC_RECREATE_LOST_SLOT
	// (default off: an operator decides; the changes in between are gone either way).
	CDCRecreateLostSlot bool
	// CDCStatusInterval is how often the relay reports its confirmed position to Postgres,
	// CDC_STATUS_INTERVAL; it must stay well inside the server's wal_sender_timeout.
	CDCStatusInterval time.Duration
	// ClaimsMaxBytes bounds the claim bucket CP_CLAIMS, which the orchestrator owns: CLAIMS_MAX_MB
	// in MiB (default 8192, -1 no bound).
	ClaimsMaxBytes int64
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
		Common:                   l.LoadCommon("127.0.0.1:9101"),
		StrauxInterval:           max(strauxFloor, l.Millis("STR_AUX_RUNNER_INTERVAL_MS", 40*time.Second)),
		RunnerSessionID:          l.String("STR_AUX_RUNNER_SESSION_ID", "str-aux-runner"),
		CinImportInterval:        max(cinImportFloor, l.Millis("CIN_IMPORT_INTERVAL_MS", config.Pick(l, 15*time.Minute, 30*time.Minute, 5*time.Minute))),
		CinImportRunnerSessionID: l.String("CIN_IMPORT_RUNNER_SESSION_ID", "cin-import-runner"),
		FlagsBucket:              l.String("FLAGS_BUCKET", "CP_FLAGS"),
		CDCEnabled:               l.Bool("CDC_ENABLED", true),
		CDCDatabaseURL:           l.Secret("CDC_DATABASE_URL"),
		CDCSlot:                  l.String("CDC_SLOT", "cp_relay"),
		CDCPublication:           l.String("CDC_PUBLICATION", "cp_cdc"),
		CDCTables:                l.List("CDC_TABLES", []string{"settings.coin_universe", "cin_aux.rt_session", "market.account_trades"}),
		CDCMaxInFlight:           l.Int("CDC_MAX_IN_FLIGHT", 8192, 1, 1<<20),
		CDCMaxInFlightBytes:      int64(l.Int("CDC_MAX_IN_FLIGHT_BYTES", 64<<20, 1<<20, 1<<34)),
		CDCRecreateLostSlot:      l.Bool("CDC_RECREATE_LOST_SLOT", false),
		CDCStatusInterval:        l.Duration("CDC_STATUS_INTERVAL", 2*time.Second),
		CDCDuplicateWindow:       l.Duration("CDC_DUPLICATE_WINDOW", events.CDCDuplicates),
		ClaimsMaxBytes:           claimsMaxBytes(l.Int("CLAIMS_MAX_MB", int(events.DefaultClaimMaxBytes>>20), -1, 1<<24)),
	}
	if cfg.CDCDatabaseURL == "" {
		cfg.CDCDatabaseURL = cfg.DatabaseURL
	}
	// A replay after a crash reaches back to the last confirmed position, up to a status interval
	// old: a window shorter than that could not drop it. JetStream needs it within the max age.
	l.Check(cfg.CDCDuplicateWindow > cfg.CDCStatusInterval && cfg.CDCDuplicateWindow <= events.CDCMaxAge,
		"CDC_DUPLICATE_WINDOW", cfg.CDCDuplicateWindow.String(),
		fmt.Sprintf("a duration longer than CDC_STATUS_INTERVAL (%s) and at most %s (CP_CDC's max age)", cfg.CDCStatusInterval, events.CDCMaxAge))
	l.Check(cfg.CDCStatusInterval <= 20*time.Second, "CDC_STATUS_INTERVAL", cfg.CDCStatusInterval.String(),
		"a duration of at most 20s (well inside wal_sender_timeout)")
	l.Check(validIdent(cfg.CDCSlot), "CDC_SLOT", cfg.CDCSlot, "lower-case letters, digits and underscores")
	l.Check(validIdent(cfg.CDCPublication), "CDC_PUBLICATION", cfg.CDCPublication, "lower-case letters, digits and underscores")
	for _, t := range cfg.CDCTables {
		s, n, ok := strings.Cut(t, ".")
		l.Check(ok && validIdent(s) && validIdent(n), "CDC_TABLES", t, "schema.table names, comma-separated")
	}
	return cfg, l.Err()
}

func validIdent(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

// claimsMaxBytes is CLAIMS_MAX_MB in bytes; -1 (no bound) stays -1.
func claimsMaxBytes(mb int) int64 {
	if mb < 0 {
		return -1
	}
	return int64(mb) << 20
}
