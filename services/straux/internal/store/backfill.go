package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// BackfillDue returns the symbols not backfilled within the last every.
func (s *Store) BackfillDue(ctx context.Context, symbols []string, every time.Duration) ([]string, error) {
	rows, err := s.pool.Query(ctx, sqlBackfillDue, symbols, every.Microseconds())
	if err != nil {
		return nil, fmt.Errorf("backfill due: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("backfill due: %w", err)
	}
	return out, nil
}

// BackfillPoint is one reconstructed sample: a period and the mid price it gets.
type BackfillPoint struct {
	PeriodStart time.Time
	Mid         string
}

// WriteBackfill writes a symbol's reconstructed samples into periods without a price (no row, or
// a failed or skipped one) and records the backfill. It returns the periods it wrote.
func (s *Store) WriteBackfill(ctx context.Context, symbol string, from, through time.Time, pts []BackfillPoint) ([]time.Time, error) {
	syms := make([]string, len(pts))
	ts := make([]time.Time, len(pts))
	mids := make([]string, len(pts))
	for i, p := range pts {
		syms[i], ts[i], mids[i] = symbol, p.PeriodStart, p.Mid
	}
	var written []time.Time
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, sqlInsertBackfill, syms, ts, mids)
		if err != nil {
			return err
		}
		if written, err = pgx.CollectRows(rows, pgx.RowTo[time.Time]); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, sqlRecordBackfill, symbol, from, through, len(written))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("backfill %s: %w", symbol, err)
	}
	return written, nil
}

// RepairSamples writes a symbol's kline closes into periods without a price, like WriteBackfill,
// without recording an automatic backfill (str_aux.backfills): an operator's replay of a missed
// period. A period that already has a price is left as it is. It returns the periods written.
func (s *Store) RepairSamples(ctx context.Context, symbol string, pts []BackfillPoint) ([]time.Time, error) {
	syms := make([]string, len(pts))
	ts := make([]time.Time, len(pts))
	mids := make([]string, len(pts))
	for i, p := range pts {
		syms[i], ts[i], mids[i] = symbol, p.PeriodStart, p.Mid
	}
	rows, err := s.pool.Query(ctx, sqlInsertBackfill, syms, ts, mids)
	if err != nil {
		return nil, fmt.Errorf("repair samples %s: %w", symbol, err)
	}
	written, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	if err != nil {
		return nil, fmt.Errorf("repair samples %s: %w", symbol, err)
	}
	return written, nil
}

// UnpricedSymbols returns the symbols of universe without a price in period (no sample, or a
// failed or skipped one).
func (s *Store) UnpricedSymbols(ctx context.Context, period time.Time, universe []string) ([]string, error) {
	rows, err := s.pool.Query(ctx, sqlUnpricedSymbols, period, universe)
	if err != nil {
		return nil, fmt.Errorf("unpriced symbols of %s: %w", period.Format(time.RFC3339), err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("unpriced symbols of %s: %w", period.Format(time.RFC3339), err)
	}
	return out, nil
}
