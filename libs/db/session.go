package db

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// SessionStamp describes the process stamping its start in ops.session_log. Host and pid are filled
// in by StampSession.
type SessionStamp struct {
	// Service is the process name: orchestrator, straux, cinimport, seeder, cpctl. Required.
	Service string
	// Version is the build version (git describe); empty is stored as "dev".
	Version string
	// Env is CP_ENV: dev, staging or prod.
	Env string
	// Extra is stored as a JSON object; nil stores {}.
	Extra map[string]any
}

// StampSession records the start of this process in ops.session_log and returns the row's id.
func StampSession(ctx context.Context, pool *pgxpool.Pool, s SessionStamp) (int64, error) {
	if s.Service == "" {
		return 0, fmt.Errorf("stamp session: service is required")
	}
	if s.Version == "" {
		s.Version = "dev"
	}
	extra := s.Extra
	if extra == nil {
		extra = map[string]any{}
	}
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	var id int64
	err = pool.QueryRow(ctx, stampSessionSQL, s.Service, s.Version, host, os.Getpid(), s.Env, extra).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("stamp session %s: %w", s.Service, err)
	}
	return id, nil
}

//go:embed session_stamp.sql
var stampSessionSQL string

//go:embed session_seen.sql
var touchSessionSQL string

//go:embed session_stopped.sql
var stopSessionSQL string

// TouchSession records a heartbeat of session id: last_seen_at = now (Postgres' clock, the one
// started_at uses) and the interval the process beats at, so a reader can tell a lost process (no
// heartbeat for a few intervals, never stopped) from a live one.
func TouchSession(ctx context.Context, pool *pgxpool.Pool, id int64, every time.Duration) error {
	if _, err := pool.Exec(ctx, touchSessionSQL, id, every); err != nil {
		return fmt.Errorf("touch session %d: %w", id, err)
	}
	return nil
}

// StopSession records the clean stop of session id (stopped_at = now).
func StopSession(ctx context.Context, pool *pgxpool.Pool, id int64) error {
	if _, err := pool.Exec(ctx, stopSessionSQL, id); err != nil {
		return fmt.Errorf("stop session %d: %w", id, err)
	}
	return nil
}
