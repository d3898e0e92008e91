package seeding

import (
	_ "embed"

	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"cryptopill.dev/jobs/libs/exchange"
	"cryptopill.dev/jobs/libs/jobs"
)

var (
	//go:embed sql/enabled_symbols.sql
	enabledSymbolsSQL string
	//go:embed sql/enabled_windows.sql
	enabledWindowsSQL string
	//go:embed sql/live_kline_keys.sql
	liveKlineKeysSQL string
)

// UniverseKinds are the kinds seeded once for the whole universe, key "".
func UniverseKinds() []jobs.Kind {
	return []jobs.Kind{jobs.KindFetchTicker, jobs.KindFetchOrderbook, jobs.KindComputeStrVectors,
		jobs.KindComputeMatrices, jobs.KindComputeMEA}
}

// ErrInvalidWindow is wrapped by the error for a window that is not a Binance kline interval.
var ErrInvalidWindow = errors.New("not a Binance kline interval")

// ValidateWindows returns an error naming every window that is not a Binance kline interval.
func ValidateWindows(windows []string) error {
	var bad []string
	for _, w := range windows {
		if !exchange.ValidInterval(w) {
			bad = append(bad, fmt.Sprintf("%q", w))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("windows %s: %w (valid: 1s 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w 1M)",
			strings.Join(bad, ", "), ErrInvalidWindow)
	}
	return nil
}

// Config configures a JobSeeder.
type Config struct {
	// Windows overrides settings.windows: the kline windows seeded per symbol. Empty: the
	// enabled rows of settings.windows.
	Windows []string
	// Period is how often the universe-wide kinds (fetch_ticker, fetch_orderbook,
	// compute_str_vectors, compute_matrices, compute_mea) run; the job engine reschedules them
	// after each success. A fetch_klines job runs once per its window's interval, when a new
	// candle has closed. Zero: one minute.
	Period time.Duration
}

// JobSeeder seeds and cancels jobs.
type JobSeeder struct {
	pool *pgxpool.Pool
	cfg  Config
}

// New returns a seeder; it rejects invalid configured windows.
func New(pool *pgxpool.Pool, cfg Config) (*JobSeeder, error) {
	if err := ValidateWindows(cfg.Windows); err != nil {
		return nil, err
	}
	if cfg.Period <= 0 {
		cfg.Period = time.Minute
	}
	return &JobSeeder{pool: pool, cfg: cfg}, nil
}

// KindCount is what a seed did for one kind.
type KindCount struct {
	Kind jobs.Kind
	// Inserted counts new jobs; Present counts jobs already queued or running.
	Inserted, Present int
}

// Report is what a seed or convergence did.
type Report struct {
	// Kinds has one entry per kind, in jobs.Kinds() order.
	Kinds []KindCount
	// Symbols and Windows are what was seeded.
	Symbols, Windows []string
	// Cancelled counts the live jobs cancelled (convergence only), CancelledSymbols their symbols.
	Cancelled        int64
	CancelledSymbols []string
}

// Inserted is the total of new jobs.
func (r Report) Inserted() (n int) {
	for _, k := range r.Kinds {
		n += k.Inserted
	}
	return n
}

// SeedOnce seeds the enabled universe: `seeder once`. Re-running it inserts nothing new while the
// jobs are still queued or running.
func (s *JobSeeder) SeedOnce(ctx context.Context) (Report, error) {
	var rep Report
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		rep, err = s.seed(ctx, tx)
		return err
	})
	return rep, err
}

// Converge brings ingest.jobs in line with the enabled universe and windows: seeds what is
// missing and cancels the live fetch_klines jobs of symbols no longer enabled and of windows no
// longer configured.
func (s *JobSeeder) Converge(ctx context.Context) (Report, error) {
	var rep Report
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		if rep, err = s.seed(ctx, tx); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, liveKlineKeysSQL)
		if err != nil {
			return fmt.Errorf("live kline jobs: %w", err)
		}
		live, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("live kline jobs: %w", err)
		}
		wanted := map[string]bool{}
		for _, sym := range rep.Symbols {
			for _, w := range rep.Windows {
				wanted[jobs.Key(sym, w)] = true
			}
		}
		var stale []string
		for _, key := range live {
			if wanted[key] {
				continue
			}
			stale = append(stale, key)
			if sym, _, _ := strings.Cut(key, "/"); !slices.Contains(rep.Symbols, sym) && !slices.Contains(rep.CancelledSymbols, sym) {
				rep.CancelledSymbols = append(rep.CancelledSymbols, sym)
			}
		}
		if len(stale) == 0 {
			return nil
		}
		slices.Sort(rep.CancelledSymbols)
		rep.Cancelled, err = jobs.CancelMatching(ctx, tx, jobs.CancelFilter{Kinds: []jobs.Kind{jobs.KindFetchKlines}, Keys: stale})
		return err
	})
	return rep, err
}

func (s *JobSeeder) seed(ctx context.Context, tx pgx.Tx) (Report, error) {
	var rep Report
	rows, err := tx.Query(ctx, enabledSymbolsSQL)
	if err != nil {
		return rep, fmt.Errorf("enabled symbols: %w", err)
	}
	if rep.Symbols, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return rep, fmt.Errorf("enabled symbols: %w", err)
	}
	rep.Windows = s.cfg.Windows
	if len(rep.Windows) == 0 {
		rows, err := tx.Query(ctx, enabledWindowsSQL)
		if err != nil {
			return rep, fmt.Errorf("enabled windows: %w", err)
		}
		if rep.Windows, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return rep, fmt.Errorf("enabled windows: %w", err)
		}
	}
	if err := ValidateWindows(rep.Windows); err != nil {
		return rep, fmt.Errorf("settings.windows: %w", err)
	}

	var seeds []jobs.NewJob
	for _, sym := range rep.Symbols {
		for _, w := range rep.Windows {
			every, _ := exchange.IntervalDuration(w) // validated above
			seeds = append(seeds, jobs.NewJob{Kind: jobs.KindFetchKlines, Key: jobs.Key(sym, w),
				Payload: map[string]string{"symbol": sym, "window": w}, Period: every})
		}
	}
	for _, k := range UniverseKinds() {
		seeds = append(seeds, jobs.NewJob{Kind: k, Period: s.cfg.Period})
	}
	res, err := jobs.EnqueueMany(ctx, tx, seeds)
	if err != nil {
		return rep, fmt.Errorf("seed %d jobs: %w", len(seeds), err)
	}
	counts := map[jobs.Kind]*KindCount{}
	for _, k := range jobs.Kinds() {
		rep.Kinds = append(rep.Kinds, KindCount{Kind: k})
	}
	for i := range rep.Kinds {
		counts[rep.Kinds[i].Kind] = &rep.Kinds[i]
	}
	for i, j := range seeds {
		if res.IDs[i] != 0 {
			counts[j.Kind].Inserted++
		} else {
			counts[j.Kind].Present++
		}
	}
	return rep, nil
}
