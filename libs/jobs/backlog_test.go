package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/jobs"
	"cryptopill.dev/jobs/libs/testkit/clocktest"
	"cryptopill.dev/jobs/libs/testkit/metrictest"
)

func TestBacklogCountsPerKindAndStatus(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	due := clocktest.Afternoon
	enqueue(t, b.pool,
		jobs.NewJob{Kind: jobs.KindFetchTicker, Key: "BTCUSDT", ScheduledFor: due},
		jobs.NewJob{Kind: jobs.KindFetchTicker, Key: "ETHUSDT", ScheduledFor: due.Add(time.Minute)},
		jobs.NewJob{Kind: jobs.KindFetchKlines, Key: "BTCUSDT:1m", ScheduledFor: due})
	_, err := b.pool.Exec(ctx, `UPDATE ingest.jobs SET status = 'failed' WHERE kind = 'fetch_klines'`)
	require.NoError(t, err)

	counted := clocktest.Afternoon.Add(time.Hour)
	bl := jobs.NewBacklog(b.pool, jobs.BacklogConfig{Logger: testLogger(t), Now: func() time.Time { return counted }})
	require.Zero(t, promtestutil.CollectAndCount(bl, "cp_jobs_backlog"), "nothing exported before the first count")
	require.NoError(t, bl.Refresh(ctx))

	reg := registry(t, bl)
	require.EqualValues(t, 2, metrictest.Value(t, reg, "cp_jobs_backlog", "kind", "fetch_ticker", "status", "queued"))
	require.EqualValues(t, 1, metrictest.Value(t, reg, "cp_jobs_backlog", "kind", "fetch_klines", "status", "failed"))
	require.EqualValues(t, 0, metrictest.Value(t, reg, "cp_jobs_backlog", "kind", "fetch_klines", "status", "queued"))
	require.Equal(t, len(jobs.Kinds())*5, promtestutil.CollectAndCount(bl, "cp_jobs_backlog"), "every kind and status, 0 when empty")
	require.InDelta(t, float64(due.Unix()), metrictest.Value(t, reg, "cp_jobs_backlog_oldest_due_timestamp_seconds", "kind", "fetch_ticker"), 1e-3)
	require.Equal(t, 1, promtestutil.CollectAndCount(bl, "cp_jobs_backlog_oldest_due_timestamp_seconds"), "only kinds with queued jobs")
	require.InDelta(t, float64(counted.Unix()), metrictest.Value(t, reg, "cp_jobs_backlog_counted_timestamp_seconds"), 1e-3)

	// A failed count is counted and keeps the last good one.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	require.Error(t, bl.Refresh(cctx))
	require.Zero(t, metrictest.Value(t, reg, "cp_jobs_backlog_count_failures_total"), "a shutdown is not a failure")
	b.db.Pool.Close()
	require.Error(t, bl.Refresh(ctx))
	require.EqualValues(t, 1, metrictest.Value(t, reg, "cp_jobs_backlog_count_failures_total"))
	require.EqualValues(t, 2, metrictest.Value(t, reg, "cp_jobs_backlog", "kind", "fetch_ticker", "status", "queued"))
}

func registry(t *testing.T, c prometheus.Collector) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	return reg
}
