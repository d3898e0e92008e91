package seeding_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/jobs"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
	"cryptopill.dev/jobs/services/seeder/internal/seeding"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func setup(t *testing.T, cfg seeding.Config) (*pgtest.DB, *seeding.JobSeeder) {
	t.Helper()
	d := pgtest.NewDB(t)
	_, err := d.Pool.Exec(context.Background(), `INSERT INTO settings.coin_universe (symbol, base_asset, quote_asset, enabled) VALUES
		('BTCUSDT', 'BTC', 'USDT', true), ('ETHUSDT', 'ETH', 'USDT', NULL), ('SOLUSDT', 'SOL', 'USDT', false)`)
	require.NoError(t, err)
	s, err := seeding.New(d.Pool, cfg)
	require.NoError(t, err)
	return d, s
}

func counts(rep seeding.Report) map[jobs.Kind][2]int {
	out := map[jobs.Kind][2]int{}
	for _, k := range rep.Kinds {
		out[k.Kind] = [2]int{k.Inserted, k.Present}
	}
	return out
}

func liveJobs(t *testing.T, d *pgtest.DB) map[string]int {
	t.Helper()
	rows, err := d.Pool.Query(context.Background(), `SELECT kind || ':' || dedup_key, count(*) FROM ingest.jobs
		WHERE status IN ('queued', 'running') GROUP BY 1`)
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var k string
		var n int
		require.NoError(t, rows.Scan(&k, &n))
		out[k] = n
	}
	return out
}

func TestSeedOnceTwiceSeedsNothingTwice(t *testing.T) {
	t.Parallel()
	d, s := setup(t, seeding.Config{})
	ctx := context.Background()

	rep, err := s.SeedOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"BTCUSDT", "ETHUSDT"}, rep.Symbols, "enabled, NULL counting as enabled")
	require.Equal(t, []string{"30m", "1h", "4h"}, rep.Windows)
	c := counts(rep)
	require.Equal(t, [2]int{6, 0}, c[jobs.KindFetchKlines])
	for _, k := range seeding.UniverseKinds() {
		require.Equal(t, [2]int{1, 0}, c[k], k)
	}

	rep, err = s.SeedOnce(ctx)
	require.NoError(t, err)
	c = counts(rep)
	require.Equal(t, [2]int{0, 6}, c[jobs.KindFetchKlines])
	for _, k := range seeding.UniverseKinds() {
		require.Equal(t, [2]int{0, 1}, c[k], k)
	}
	live := liveJobs(t, d)
	require.Len(t, live, 11)
	for k, n := range live {
		require.Equal(t, 1, n, k)
	}
	require.Contains(t, live, "fetch_klines:BTCUSDT/4h")
	require.Contains(t, live, "fetch_ticker:")

	var payload string
	require.NoError(t, d.Pool.QueryRow(ctx, `SELECT payload::text FROM ingest.jobs WHERE dedup_key = 'ETHUSDT/1h'`).Scan(&payload))
	require.JSONEq(t, `{"symbol": "ETHUSDT", "window": "1h"}`, payload)

	// Seeded work recurs: klines once per window interval, the universe-wide kinds every minute.
	var klinePeriod, tickerPeriod string
	require.NoError(t, d.Pool.QueryRow(ctx, `SELECT period::text FROM ingest.jobs WHERE dedup_key = 'ETHUSDT/4h'`).Scan(&klinePeriod))
	require.NoError(t, d.Pool.QueryRow(ctx, `SELECT period::text FROM ingest.jobs WHERE kind = 'fetch_ticker'`).Scan(&tickerPeriod))
	require.Equal(t, "04:00:00", klinePeriod)
	require.Equal(t, "00:01:00", tickerPeriod)
}

func TestInvalidWindowsAreRejected(t *testing.T) {
	t.Parallel()
	err := seeding.ValidateWindows([]string{"1h", "3h", "90m"})
	require.ErrorIs(t, err, seeding.ErrInvalidWindow)
	require.Contains(t, err.Error(), `"3h", "90m"`)
	require.NoError(t, seeding.ValidateWindows([]string{"1m", "4h", "1M"}))
	_, err = seeding.New(nil, seeding.Config{Windows: []string{"3h"}})
	require.ErrorIs(t, err, seeding.ErrInvalidWindow)

	// settings.windows cannot hold one either: its check constraint names the rule.
	d := pgtest.NewDB(t)
	_, err = d.Pool.Exec(context.Background(), `INSERT INTO settings.windows (label, cycles) VALUES ('3h', 270)`)
	require.ErrorContains(t, err, "windows_label_binance_interval")
}

func TestConvergeFollowsTheUniverse(t *testing.T) {
	t.Parallel()
	d, s := setup(t, seeding.Config{Windows: []string{"1h"}})
	ctx := context.Background()
	rep, err := s.Converge(ctx)
	require.NoError(t, err)
	require.Equal(t, 7, rep.Inserted())
	require.Zero(t, rep.Cancelled)

	_, err = d.Pool.Exec(ctx, `UPDATE settings.coin_universe SET enabled = (symbol <> 'BTCUSDT')`)
	require.NoError(t, err)
	rep, err = s.Converge(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"ETHUSDT", "SOLUSDT"}, rep.Symbols)
	require.Equal(t, 1, rep.Inserted(), "SOLUSDT/1h")
	require.Equal(t, int64(1), rep.Cancelled)
	require.Equal(t, []string{"BTCUSDT"}, rep.CancelledSymbols)

	// Again (a redelivered or replayed event): nothing changes.
	rep, err = s.Converge(ctx)
	require.NoError(t, err)
	require.Zero(t, rep.Inserted())
	require.Zero(t, rep.Cancelled)
	live := liveJobs(t, d)
	require.NotContains(t, live, "fetch_klines:BTCUSDT/1h")
	require.Contains(t, live, "fetch_klines:SOLUSDT/1h")
	var cancelled int
	require.NoError(t, d.Pool.QueryRow(ctx, `SELECT count(*) FROM ingest.jobs WHERE status = 'cancelled' AND dedup_key = 'BTCUSDT/1h'`).Scan(&cancelled))
	require.Equal(t, 1, cancelled)
}

func TestConvergeCancelsDisabledWindows(t *testing.T) {
	t.Parallel()
	d, s := setup(t, seeding.Config{})
	ctx := context.Background()
	_, err := s.Converge(ctx)
	require.NoError(t, err)

	_, err = d.Pool.Exec(ctx, `UPDATE settings.windows SET enabled = false WHERE label = '4h'`)
	require.NoError(t, err)
	rep, err := s.Converge(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"30m", "1h"}, rep.Windows)
	require.Equal(t, int64(2), rep.Cancelled, "BTCUSDT/4h and ETHUSDT/4h")
	require.Empty(t, rep.CancelledSymbols, "both symbols are still enabled")
	live := liveJobs(t, d)
	require.NotContains(t, live, "fetch_klines:BTCUSDT/4h")
	require.Contains(t, live, "fetch_klines:BTCUSDT/1h")
}

// A recurring job whose occurrence failed all its attempts (the real engine, the exchange down)
// is queued for its next period already; seeding again changes nothing, not even that job.
func TestSeedAfterAFailedOccurrenceChangesNothing(t *testing.T) {
	t.Parallel()
	d, s := setup(t, seeding.Config{})
	ctx := context.Background()
	_, err := s.SeedOnce(ctx)
	require.NoError(t, err)

	e, err := jobs.New(d.Pool, jobs.Config{BackoffBase: 10 * time.Millisecond, BackoffCap: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))})
	require.NoError(t, err)
	require.NoError(t, e.Register(jobs.KindFetchTicker, jobs.HandlerFunc(func(context.Context, jobs.Job) error {
		return errors.New("exchange: 503")
	})))
	require.NoError(t, e.Start(ctx))
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, d.Pool.QueryRow(ctx, `SELECT count(*) FROM ingest.jobs WHERE kind = 'fetch_ticker'
			AND status = 'queued' AND consecutive_failures = 1`).Scan(&n))
		return n == 1
	}, 20*time.Second, 10*time.Millisecond, "the failed occurrence's next one is never queued")
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, e.Stop(stopCtx))

	snapshot := func() string {
		var rows string
		require.NoError(t, d.Pool.QueryRow(ctx, `SELECT string_agg(format('%s %s %s %s %s %s %s', id, kind, dedup_key, status,
			attempts, scheduled_for, consecutive_failures), E'\n' ORDER BY id) FROM ingest.jobs`).Scan(&rows))
		return rows
	}
	before := snapshot()
	require.Contains(t, before, "fetch_ticker  failed 5", "the failed occurrence is recorded")
	rep, err := s.SeedOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, rep.Inserted())
	require.Equal(t, [2]int{0, 1}, counts(rep)[jobs.KindFetchTicker])
	rep, err = s.Converge(ctx)
	require.NoError(t, err)
	require.Zero(t, rep.Inserted())
	require.Zero(t, rep.Cancelled)
	require.Equal(t, before, snapshot())
	for k, n := range liveJobs(t, d) {
		require.Equal(t, 1, n, k)
	}
}
