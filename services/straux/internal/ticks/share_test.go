package ticks_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/exchange"
	"cryptopill.dev/jobs/libs/jobs"
	"cryptopill.dev/jobs/libs/simex"
	"cryptopill.dev/jobs/services/straux/internal/marketjobs"
	"cryptopill.dev/jobs/services/straux/internal/store"
	"cryptopill.dev/jobs/services/straux/internal/ticks"
)

// jobsLoad makes the calls straux's market jobs make (fetch_klines and fetch_orderbook over
// the whole universe), as fast as the limiter lets them, until ctx ends. refused counts calls
// the limiter turned away because the jobs' part of the window was spent.
func jobsLoad(ctx context.Context, client *exchange.Client, symbols []string, refused *atomic.Int64) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ctx.Err() == nil; i += 8 {
				sym := symbols[i%len(symbols)]
				// A short deadline: a call that would wait for the next window fails at once.
				cctx, cancel := context.WithTimeout(exchange.WithClass(ctx, exchange.ClassJobs), 2*time.Second)
				var err error
				if i%2 == 0 {
					_, err = client.Klines(cctx, exchange.KlinesRequest{Symbol: sym, Interval: "1h", Limit: 1000})
				} else {
					_, err = client.Depth(cctx, sym, 100)
				}
				cancel()
				if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
					refused.Add(1)
					// Pacing for the load generator only: the budget is spent until the window rolls.
					select {
					case <-ctx.Done():
					case <-time.After(20 * time.Millisecond):
					}
				}
			}
		}()
	}
	return &wg
}

// At the real 6,000 weight limit with 500 symbols, market jobs that spend every weight they
// are let have do not take the ticks' share: each tick samples what its plan promised, no call
// gets a 429, and coverage is reported from what was sampled.
func TestTicksShareHoldsAgainstMarketJobs(t *testing.T) {
	t.Parallel()
	syms := simex.GeneratedSymbols(500)
	b := setup(t, syms, syms)
	require.NoError(t, b.client.Limiter().SetTickReserve(70))
	reg := prometheus.NewRegistry()
	b.startReplica(t, replicaOpts{cfg: ticks.Config{WeightSharePct: 70, Registerer: reg}})

	// The market jobs as the seeder enqueues them, worked by straux's job engine: a fetch_klines
	// per symbol and window and a universe-wide fetch_orderbook.
	engine, err := jobs.New(b.db.Pool, jobs.Config{Workers: 8, PollInterval: 200 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, marketjobs.New(store.New(b.db.Pool), b.client, staticUniverse(syms), marketjobs.Config{}).Register(engine))
	var seeded []jobs.NewJob
	for _, sym := range syms {
		for _, w := range []string{"30m", "1h", "4h"} {
			seeded = append(seeded, jobs.NewJob{Kind: jobs.KindFetchKlines, Key: jobs.Key(sym, w),
				Payload: map[string]string{"symbol": sym, "window": w}})
		}
	}
	seeded = append(seeded, jobs.NewJob{Kind: jobs.KindFetchOrderbook})
	_, err = jobs.EnqueueMany(context.Background(), b.db.Pool, seeded)
	require.NoError(t, err)
	require.NoError(t, engine.Start(context.Background()))
	defer func() {
		// Jobs waiting on the limiter for the next window are not waited for.
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = engine.Stop(sctx)
	}()

	ctx, stop := context.WithCancel(context.Background())
	var refused atomic.Int64
	load := jobsLoad(ctx, b.client, syms, &refused)
	defer func() { stop(); load.Wait() }()

	for k := range 3 {
		p := b.p.Add(time.Duration(k) * interval)
		b.setNow(p.Add(time.Second))
		// The tick starts once the jobs have spent all they may of this window.
		refused.Store(0)
		require.Eventually(t, func() bool { return refused.Load() > 0 }, 30*time.Second, 10*time.Millisecond,
			"the jobs never reached their share")
		b.publishTick(t, p, "")
		b.waitStatus(t, p, store.StatusDone)
		planned := b.count(t, `SELECT planned_symbols FROM str_aux.tick_periods WHERE period_start = $1`, p)
		require.Greater(t, planned, 300, "tick %d: the plan covers what 70%% of the budget pays for", k)
		sampled := b.count(t, `SELECT count(*) FROM str_aux.tick_claims WHERE period_start = $1 AND outcome = 'sampled'`, p)
		require.Equal(t, planned, sampled, "tick %d sampled what its plan promised", k)
		st := b.client.Limiter().Stats()
		t.Logf("tick %d: planned %d, sampled %d of 500; window used %d of %d, jobs %d of %d", k, planned, sampled,
			st.Used, st.Budget, st.JobsUsed, st.JobsBudget)
		require.Equal(t, float64(sampled), gauge(t, reg, "cp_straux_sampled_symbols"))
		require.InDelta(t, float64(sampled)/500, gauge(t, reg, "cp_straux_sampled_coverage_ratio"), 1e-9)
		require.Equal(t, 1.0, gauge(t, reg, "cp_straux_plan_kept_ratio"))
	}
	require.Zero(t, b.simex.Stats().Statuses[429], "no 429")
	done := b.count(t, `SELECT count(*) FROM ingest.jobs WHERE kind = 'fetch_klines' AND status = 'succeeded'`)
	require.Positive(t, done, "the seeded market jobs ran alongside the ticks")
	t.Logf("fetch_klines jobs succeeded: %d of 1500", done)
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not exported", name)
	return 0
}

// A tick whose calls fail closes with its failures, and the coverage gauges say what was
// sampled while the plan's gauge still says what was promised.
func TestCoverageIsWhatWasSampled(t *testing.T) {
	t.Parallel()
	syms := simex.GeneratedSymbols(10)
	b := setup(t, syms, syms)
	reg := prometheus.NewRegistry()
	b.startReplica(t, replicaOpts{cfg: ticks.Config{Registerer: reg}})
	b.publishTick(t, b.p, "")
	b.waitStatus(t, b.p, store.StatusDone)
	require.Equal(t, 10.0, gauge(t, reg, "cp_straux_sampled_symbols"))
	require.Equal(t, 1.0, gauge(t, reg, "cp_straux_sampled_coverage_ratio"))
	require.Equal(t, 1.0, gauge(t, reg, "cp_straux_plan_kept_ratio"))

	// Every call of the next tick fails.
	require.NoError(t, b.simex.SetFaults(simex.Faults{ErrorRate: 1}))
	p := b.p.Add(interval)
	b.setNow(p.Add(time.Second))
	b.publishTick(t, p, "")
	b.waitStatus(t, p, store.StatusDone)
	require.Equal(t, 1.0, gauge(t, reg, "cp_straux_coverage_ratio"), "the plan covered everything")
	require.Zero(t, gauge(t, reg, "cp_straux_sampled_symbols"))
	require.Zero(t, gauge(t, reg, "cp_straux_sampled_coverage_ratio"))
	require.Zero(t, gauge(t, reg, "cp_straux_plan_kept_ratio"))
}

type staticUniverse []string

func (u staticUniverse) Current(context.Context) ([]string, error) { return u, nil }
