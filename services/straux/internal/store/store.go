// Package store is straux's Postgres access: the tick coordination tables (plans, claims with
// leases), the samples and their history, the window statistics and vectors, tickers, and the
// kline backfill. Every write is a batched, set-based statement (unnest arrays) and an upsert on
// the natural key, so a redelivered tick or job rewrites rows instead of adding them. The SQL
// lives in sql/*.sql next to this file.
package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"cryptopill.dev/jobs/libs/exchange"
)

//go:embed sql/*.sql
var sqlFiles embed.FS

func mustSQL(name string) string {
	b, err := sqlFiles.ReadFile("sql/" + name + ".sql")
	if err != nil {
		panic(fmt.Sprintf("store: embedded sql/%s.sql: %v", name, err)) // a build bug
	}
	return string(b)
}

var (
	sqlUniverseSettings = mustSQL("universe_settings")
	sqlWindows          = mustSQL("windows")
	sqlPeriodStatus     = mustSQL("period_status")
	sqlPlanPeriod       = mustSQL("plan_period")
	sqlPlanClaims       = mustSQL("plan_claims")
	sqlSkipPeriod       = mustSQL("skip_period")
	sqlSkipSamples      = mustSQL("skip_samples")
	sqlClaim            = mustSQL("claim")
	sqlSampledBySource  = mustSQL("sampled_by_source")
	sqlRenew            = mustSQL("renew")
	sqlRelease          = mustSQL("release")
	sqlFinish           = mustSQL("finish")
	sqlOpenClaims       = mustSQL("open_claims")
	sqlCompletePeriod   = mustSQL("complete_period")
	sqlPrune            = mustSQL("prune")
	sqlHistory          = mustSQL("history")
	sqlLastGood         = mustSQL("last_good")
	sqlPrevStats        = mustSQL("prev_stats")
	sqlUpsertSamples    = mustSQL("upsert_samples")
	sqlInsertBackfill   = mustSQL("insert_backfill")
	sqlBackfillDue      = mustSQL("backfill_due")
	sqlRecordBackfill   = mustSQL("record_backfill")
	sqlUnpricedSymbols  = mustSQL("unpriced_symbols")
	sqlUpsertTickers    = mustSQL("upsert_tickers")
	sqlUpsertStats      = mustSQL("upsert_window_stats")
	sqlUpsertVectors    = mustSQL("upsert_window_vectors")
)

// Querier is what the read and write helpers need: a pool, a connection or a transaction.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// Store reads and writes straux's tables.
type Store struct {
	pool *pgxpool.Pool
}

// New returns a Store on pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Pool is the store's pool.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// SettingsUniverse is the enabled universe from settings.coin_universe, sorted.
func (s *Store) SettingsUniverse(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, sqlUniverseSettings)
	if err != nil {
		return nil, fmt.Errorf("read settings.coin_universe: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read settings.coin_universe: %w", err)
	}
	return out, nil
}

// Window is an enabled window of settings.windows.
type Window struct {
	Label    string
	Duration time.Duration
}

// Windows are the enabled windows, shortest first.
func (s *Store) Windows(ctx context.Context) ([]Window, error) {
	rows, err := s.pool.Query(ctx, sqlWindows)
	if err != nil {
		return nil, fmt.Errorf("read settings.windows: %w", err)
	}
	var out []Window
	var label string
	var secs float64
	_, err = pgx.ForEachRow(rows, []any{&label, &secs}, func() error {
		out = append(out, Window{Label: label, Duration: time.Duration(secs * float64(time.Second))})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read settings.windows: %w", err)
	}
	return out, nil
}

// Period statuses.
const (
	StatusPlanned = "planned"
	StatusDone    = "done"
	StatusSkipped = "skipped"
)

// PeriodStatus is the status of a period, "" if it has no row.
func (s *Store) PeriodStatus(ctx context.Context, period time.Time) (string, error) {
	var st string
	err := s.pool.QueryRow(ctx, sqlPeriodStatus, period).Scan(&st)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("period %s status: %w", period.Format(time.RFC3339), err)
	}
	return st, nil
}

// PeriodPlan is what PlanPeriod records.
type PeriodPlan struct {
	Start        time.Time
	Interval     time.Duration
	UniverseSize int
	Symbols      []string
	Offset       int
	Rounds       int
	Weight       int
	TickBudget   int
	Replica      string
}

// PlanPeriod records a period's plan and its claims in one transaction unless the period already
// has a row (another replica planned it, or it was skipped). created says whether this call
// planned it.
func (s *Store) PlanPeriod(ctx context.Context, p PeriodPlan) (created bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var start time.Time
		err := tx.QueryRow(ctx, sqlPlanPeriod, p.Start, p.Interval.Microseconds(), p.UniverseSize,
			len(p.Symbols), p.Offset, p.Rounds, p.Weight, p.TickBudget, p.Replica).Scan(&start)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		created = true
		_, err = tx.Exec(ctx, sqlPlanClaims, p.Start, p.Symbols)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("plan period %s: %w", p.Start.Format(time.RFC3339), err)
	}
	return created, nil
}

// SkipPeriod marks a period that was never planned as skipped, with a sample row carrying reason
// for every universe symbol that has none. marked is false when the period already had a row.
func (s *Store) SkipPeriod(ctx context.Context, period time.Time, interval time.Duration, universe []string,
	replica, reason string) (marked bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var start time.Time
		err := tx.QueryRow(ctx, sqlSkipPeriod, period, interval.Microseconds(), len(universe), replica, reason).Scan(&start)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		marked = true
		_, err = tx.Exec(ctx, sqlSkipSamples, period, universe, reason)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("skip period %s: %w", period.Format(time.RFC3339), err)
	}
	return marked, nil
}

// Claim is a symbol claimed for a period, with its attempt number (1 on the first claim).
type Claim struct {
	Symbol  string
	Attempt int
}

// Claim takes up to limit open symbols of period for replica, leased for lease.
func (s *Store) Claim(ctx context.Context, period time.Time, replica string, limit int, lease time.Duration) ([]Claim, error) {
	return s.ClaimAmong(ctx, period, replica, limit, lease, nil)
}

// ClaimAmong is Claim restricted to the symbols among (nil: any; empty: none).
func (s *Store) ClaimAmong(ctx context.Context, period time.Time, replica string, limit int, lease time.Duration, among []string) ([]Claim, error) {
	if among != nil && len(among) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, sqlClaim, period, replica, limit, lease.Microseconds(), among)
	if err != nil {
		return nil, fmt.Errorf("claim symbols of %s: %w", period.Format(time.RFC3339), err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Claim])
	if err != nil {
		return nil, fmt.Errorf("claim symbols of %s: %w", period.Format(time.RFC3339), err)
	}
	return out, nil
}

// Renew extends replica's leases on symbols of period.
func (s *Store) Renew(ctx context.Context, period time.Time, symbols []string, replica string, lease time.Duration) error {
	if _, err := s.pool.Exec(ctx, sqlRenew, period, symbols, replica, lease.Microseconds()); err != nil {
		return fmt.Errorf("renew leases of %s: %w", period.Format(time.RFC3339), err)
	}
	return nil
}

// Release hands replica's unfinished claims on symbols back at once.
func (s *Store) Release(ctx context.Context, period time.Time, symbols []string, replica string) error {
	if _, err := s.pool.Exec(ctx, sqlRelease, period, symbols, replica); err != nil {
		return fmt.Errorf("release claims of %s: %w", period.Format(time.RFC3339), err)
	}
	return nil
}

// OpenClaims counts a period's unfinished claims, and those of them under a live lease.
func (s *Store) OpenClaims(ctx context.Context, period time.Time) (open, leased int, err error) {
	if err := s.pool.QueryRow(ctx, sqlOpenClaims, period).Scan(&open, &leased); err != nil {
		return 0, 0, fmt.Errorf("open claims of %s: %w", period.Format(time.RFC3339), err)
	}
	return open, leased, nil
}

// SampledBySource counts a period's good samples by source (stream, rest, other).
func (s *Store) SampledBySource(ctx context.Context, period time.Time) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, sqlSampledBySource, period)
	if err != nil {
		return nil, fmt.Errorf("samples by source of %s: %w", period.Format(time.RFC3339), err)
	}
	out := map[string]int{}
	var (
		src string
		n   int
	)
	_, err = pgx.ForEachRow(rows, []any{&src, &n}, func() error { out[src] = n; return nil })
	if err != nil {
		return nil, fmt.Errorf("samples by source of %s: %w", period.Format(time.RFC3339), err)
	}
	return out, nil
}

// Outcome counts a completed period's claims.
type Outcome struct {
	Sampled, Failed, Abandoned int
	// Universe and Planned are the period plan's universe size and planned symbols.
	Universe, Planned int
}

// CompletePeriod closes a planned period whose claims are all done. closed is false when it is
// not planned any more (closed already) or still has open claims.
func (s *Store) CompletePeriod(ctx context.Context, period time.Time) (o Outcome, closed bool, err error) {
	err = s.pool.QueryRow(ctx, sqlCompletePeriod, period).Scan(&closed, &o.Sampled, &o.Failed, &o.Abandoned, &o.Universe, &o.Planned)
	if err != nil {
		return o, false, fmt.Errorf("complete period %s: %w", period.Format(time.RFC3339), err)
	}
	return o, closed, nil
}

// Prune forgets coordination rows of periods before before.
func (s *Store) Prune(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, sqlPrune, before)
	if err != nil {
		return 0, fmt.Errorf("prune tick periods: %w", err)
	}
	return tag.RowsAffected(), nil
}

// flagsText joins flags for the upsert's string_to_array.
func flagsText(flags []string) string { return strings.Join(flags, ",") }

// WriteTickers upserts 24h tickers at ts.
func (s *Store) WriteTickers(ctx context.Context, ts time.Time, tickers []exchange.Ticker24h) error {
	keep := make(map[string]bool, len(tickers))
	for _, t := range tickers {
		keep[t.Symbol] = true
	}
	args := tickerArgs(ts, tickers, keep)
	if args == nil {
		return nil
	}
	if _, err := s.pool.Exec(ctx, sqlUpsertTickers, args...); err != nil {
		return fmt.Errorf("write %d tickers at %s: %w", len(tickers), ts.Format(time.RFC3339), err)
	}
	return nil
}
