package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/jobs"
	"cryptopill.dev/jobs/libs/startstop"
	"cryptopill.dev/jobs/libs/testkit/logtest"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// bundle is what a test needs: a fresh migrated database and a pool on it.
type bundle struct {
	db   *pgtest.DB
	pool *pgxpool.Pool
}

func setup(t *testing.T) *bundle {
	t.Helper()
	d := pgtest.NewDB(t)
	return &bundle{db: d, pool: d.Pool}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// startEngine registers handlers, starts an engine on pool and stops it when the test ends.
func startEngine(t *testing.T, pool *pgxpool.Pool, cfg jobs.Config, handlers map[jobs.Kind]jobs.Handler) *jobs.Engine {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	e, err := jobs.New(pool, cfg)
	require.NoError(t, err)
	for k, h := range handlers {
		require.NoError(t, e.Register(k, h))
	}
	require.NoError(t, e.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = e.Stop(ctx)
	})
	return e
}

func ticker(key string) jobs.NewJob {
	return jobs.NewJob{Kind: jobs.KindFetchTicker, Key: key, Payload: map[string]string{"symbol": key}}
}

func enqueue(t *testing.T, pool *pgxpool.Pool, js ...jobs.NewJob) []int64 {
	t.Helper()
	res, err := jobs.EnqueueMany(context.Background(), pool, js)
	require.NoError(t, err)
	require.Equal(t, len(js), res.Inserted)
	return res.IDs
}

type row struct {
	Status    string
	Attempts  int
	Error     *string
	LockedBy  *string
	Scheduled time.Time
}

func jobRow(t *testing.T, pool *pgxpool.Pool, id int64) row {
	t.Helper()
	var r row
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT status, attempts, error, locked_by, scheduled_for FROM ingest.jobs WHERE id = $1`, id).
		Scan(&r.Status, &r.Attempts, &r.Error, &r.LockedBy, &r.Scheduled))
	return r
}

func countStatus(t *testing.T, pool *pgxpool.Pool, status jobs.Status) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT count(*) FROM ingest.jobs WHERE status = $1`, string(status)).Scan(&n))
	return n
}

func waitStatus(t *testing.T, pool *pgxpool.Pool, id int64, status jobs.Status) row {
	t.Helper()
	require.Eventually(t, func() bool { return jobRow(t, pool, id).Status == string(status) },
		20*time.Second, 10*time.Millisecond, "job %d never became %s", id, status)
	return jobRow(t, pool, id)
}

// runCounter is a handler that counts runs per job id.
type runCounter struct {
	mu   sync.Mutex
	runs map[int64]int
}

func newRunCounter() *runCounter { return &runCounter{runs: map[int64]int{}} }

func (c *runCounter) Work(_ context.Context, j jobs.Job) error {
	c.mu.Lock()
	c.runs[j.ID]++
	c.mu.Unlock()
	return nil
}

func (c *runCounter) count(id int64) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runs[id]
}

func TestEnqueueSkipsLiveDuplicates(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	res, err := jobs.EnqueueMany(ctx, b.pool, []jobs.NewJob{ticker("BTCUSDT"), ticker("ETHUSDT"), ticker("BTCUSDT")})
	require.NoError(t, err)
	require.Equal(t, 2, res.Inserted, "a duplicate within one call is inserted once")
	require.Equal(t, 1, res.Existing)
	require.Len(t, res.IDs, 3)
	require.NotZero(t, res.IDs[0])
	require.NotZero(t, res.IDs[1])
	require.Zero(t, res.IDs[2], "the repeat is the one skipped")

	res, err = jobs.EnqueueMany(ctx, b.pool, []jobs.NewJob{ticker("BTCUSDT"), ticker("ETHUSDT")})
	require.NoError(t, err)
	require.Zero(t, res.Inserted, "re-seeding inserts nothing")
	require.Equal(t, []int64{0, 0}, res.IDs)
	require.Equal(t, 2, res.Existing)

	id, inserted, err := jobs.Enqueue(ctx, b.pool, ticker("BTCUSDT"))
	require.NoError(t, err)
	require.False(t, inserted)
	require.Equal(t, res0(t, b, "BTCUSDT"), id, "Enqueue returns the live job's id")
	require.Equal(t, 2, countStatus(t, b.pool, jobs.StatusQueued))

	// A running job holds its key too.
	_, err = b.pool.Exec(ctx, `UPDATE ingest.jobs SET status = 'running', locked_by = 'w', lease_expires_at = now() + interval '1 minute' WHERE id = $1`, id)
	require.NoError(t, err)
	_, inserted, err = jobs.Enqueue(ctx, b.pool, ticker("BTCUSDT"))
	require.NoError(t, err)
	require.False(t, inserted)

	// Finished work can be asked for again.
	_, err = b.pool.Exec(ctx, `UPDATE ingest.jobs SET status = 'succeeded', locked_by = NULL, lease_expires_at = NULL WHERE id = $1`, id)
	require.NoError(t, err)
	newID, inserted, err := jobs.Enqueue(ctx, b.pool, ticker("BTCUSDT"))
	require.NoError(t, err)
	require.True(t, inserted)
	require.NotEqual(t, id, newID)

	// The same key in another kind is other work.
	_, inserted, err = jobs.Enqueue(ctx, b.pool, jobs.NewJob{Kind: jobs.KindFetchOrderbook, Key: "BTCUSDT"})
	require.NoError(t, err)
	require.True(t, inserted)

	_, err = jobs.EnqueueMany(ctx, b.pool, []jobs.NewJob{{Kind: "fetch_everything", Key: "x"}})
	require.ErrorIs(t, err, jobs.ErrInvalidJob)
	_, err = jobs.EnqueueMany(ctx, b.pool, []jobs.NewJob{{Kind: jobs.KindFetchTicker, Payload: []byte("{not json")}})
	require.ErrorIs(t, err, jobs.ErrInvalidJob)
}

func res0(t *testing.T, b *bundle, key string) int64 {
	t.Helper()
	var id int64
	require.NoError(t, b.pool.QueryRow(context.Background(),
		`SELECT id FROM ingest.jobs WHERE kind = 'fetch_ticker' AND dedup_key = $1 AND status = 'queued'`, key).Scan(&id))
	return id
}

func TestEnqueueManyConcurrentlyInsertsEachJobOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const keys, callers = 400, 8
	var inserted atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			batch := make([]jobs.NewJob, 0, keys)
			for k := range keys {
				batch = append(batch, jobs.NewJob{Kind: jobs.KindFetchKlines, Key: jobs.Key(fmt.Sprintf("S%03d", k), "1h")})
			}
			// Every caller in its own order: the engine must not deadlock on overlapping keys.
			rand.New(rand.NewPCG(uint64(c), 7)).Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
			res, err := jobs.EnqueueMany(context.Background(), b.pool, batch)
			if err != nil {
				errs <- err
				return
			}
			inserted.Add(int64(res.Inserted))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.EqualValues(t, keys, inserted.Load())
	require.Equal(t, keys, countStatus(t, b.pool, jobs.StatusQueued))
}

func TestSeveralEnginesRunEachJobOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n = 1500
	counter := newRunCounter()
	var engines []*jobs.Engine
	for range 3 {
		// Small batches and few workers: the engines' claims interleave many times.
		engines = append(engines, startEngine(t, b.pool, jobs.Config{Workers: 4, BatchSize: 25},
			map[jobs.Kind]jobs.Handler{jobs.KindFetchKlines: counter}))
	}
	batch := make([]jobs.NewJob, n)
	for i := range batch {
		batch[i] = jobs.NewJob{Kind: jobs.KindFetchKlines, Key: jobs.Key(fmt.Sprintf("S%04d", i), "1m")}
	}
	ids := enqueue(t, b.pool, batch...)

	require.Eventually(t, func() bool { return countStatus(t, b.pool, jobs.StatusSucceeded) == n },
		60*time.Second, 20*time.Millisecond)
	for _, id := range ids {
		require.Equal(t, 1, counter.count(id), "job %d", id)
	}
	var claimed, succeeded int64
	for _, e := range engines {
		claimed += e.Stats().Claimed
		succeeded += e.Stats().Succeeded
	}
	require.EqualValues(t, n, claimed)
	require.Eventually(t, func() bool {
		succeeded = 0
		for _, e := range engines {
			succeeded += e.Stats().Succeeded
		}
		return succeeded == n
	}, 5*time.Second, 10*time.Millisecond)
}

func TestFailingJobIsRetriedThenFailed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var runs atomic.Int32
	e := startEngine(t, b.pool, jobs.Config{BackoffBase: 10 * time.Millisecond, BackoffCap: 20 * time.Millisecond},
		map[jobs.Kind]jobs.Handler{jobs.KindFetchTicker: jobs.HandlerFunc(func(context.Context, jobs.Job) error {
			runs.Add(1)
			return errors.New("exchange said no")
		})})
	ids := enqueue(t, b.pool, jobs.NewJob{Kind: jobs.KindFetchTicker, Key: "BTCUSDT", MaxAttempts: 3})

	r := waitStatus(t, b.pool, ids[0], jobs.StatusFailed)
	require.Equal(t, 3, r.Attempts)
	require.NotNil(t, r.Error)
	require.Equal(t, "exchange said no", *r.Error)
	require.Nil(t, r.LockedBy)
	require.EqualValues(t, 3, runs.Load())
	require.Eventually(t, func() bool { s := e.Stats(); return s.Retried == 2 && s.Failed == 1 }, 5*time.Second, 10*time.Millisecond)
	// A one-shot job stays failed: nothing is queued after it.
	var rows int
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT count(*) FROM ingest.jobs`).Scan(&rows))
	require.Equal(t, 1, rows)
	require.Equal(t, int64(1), e.Stats().ConsecutiveFailures[jobs.KindFetchTicker])

	// The same counters, as operators scrape them.
	require.NoError(t, promtestutil.CollectAndCompare(jobs.NewCollector(e), strings.NewReader(`
# HELP cp_jobs_total Jobs handled by this engine, by outcome.
# TYPE cp_jobs_total counter
cp_jobs_total{outcome="cancelled"} 0
cp_jobs_total{outcome="claimed"} 3
cp_jobs_total{outcome="failed"} 1
cp_jobs_total{outcome="released"} 0
cp_jobs_total{outcome="rescued"} 0
cp_jobs_total{outcome="retried"} 2
cp_jobs_total{outcome="stale"} 0
cp_jobs_total{outcome="succeeded"} 0
`), "cp_jobs_total"))
}

func TestPermanentErrorFailsAtOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var runs atomic.Int32
	startEngine(t, b.pool, jobs.Config{},
		map[jobs.Kind]jobs.Handler{jobs.KindFetchTicker: jobs.HandlerFunc(func(context.Context, jobs.Job) error {
			runs.Add(1)
			return jobs.Permanent(fmt.Errorf("symbol %s: %w", "NOPEUSDT", errors.New("invalid symbol")))
		})})
	ids := enqueue(t, b.pool, ticker("NOPEUSDT"))
	r := waitStatus(t, b.pool, ids[0], jobs.StatusFailed)
	require.Equal(t, 1, r.Attempts)
	require.Equal(t, "symbol NOPEUSDT: invalid symbol", *r.Error)
	require.EqualValues(t, 1, runs.Load())
}

func TestPanickingHandlerIsRetried(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var runs atomic.Int32
	startEngine(t, b.pool, jobs.Config{BackoffBase: 5 * time.Millisecond, BackoffCap: 10 * time.Millisecond},
		map[jobs.Kind]jobs.Handler{jobs.KindFetchTicker: jobs.HandlerFunc(func(context.Context, jobs.Job) error {
			if runs.Add(1) == 1 {
				panic("nil map")
			}
			return nil
		})})
	ids := enqueue(t, b.pool, ticker("BTCUSDT"))
	r := waitStatus(t, b.pool, ids[0], jobs.StatusSucceeded)
	require.Equal(t, 2, r.Attempts)
	require.Nil(t, r.Error, "success clears the last error")
}

func TestRetryBackoffGrowsAndIsCapped(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const base, limit = 40 * time.Millisecond, 100 * time.Millisecond
	var (
		mu     sync.Mutex
		starts []time.Time
	)
	startEngine(t, b.pool, jobs.Config{BackoffBase: base, BackoffCap: limit},
		map[jobs.Kind]jobs.Handler{jobs.KindFetchTicker: jobs.HandlerFunc(func(context.Context, jobs.Job) error {
			mu.Lock()
			starts = append(starts, time.Now())
			mu.Unlock()
			return errors.New("try later")
		})})
	ids := enqueue(t, b.pool, jobs.NewJob{Kind: jobs.KindFetchTicker, Key: "BTCUSDT", MaxAttempts: 6})
	waitStatus(t, b.pool, ids[0], jobs.StatusFailed)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, starts, 6)
	// The delay after attempt n is in [d/2, d], d = min(cap, base·2^(n−1)): 20–40, 40–80, then
	// 50–100 ms. The lower bounds are exact (a job is not claimable before scheduled_for); the
	// upper bound allows for scheduling latency on a loaded machine.
	lower := []time.Duration{20, 40, 50, 50, 50}
	for i := 1; i < len(starts); i++ {
		gap := starts[i].Sub(starts[i-1])
		require.GreaterOrEqual(t, gap, lower[i-1]*time.Millisecond, "gap after attempt %d", i)
		require.Less(t, gap, limit+time.Second, "gap after attempt %d exceeds the cap", i)
	}
}

func TestLeaseRescueAfterWorkerDies(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	// Worker A has its own pool, so it can be "killed": its connections terminated and its pool
	// closed while its handler is in the middle of the job. It can neither renew the lease nor
	// record an outcome nor release the job.
	cfgA, err := pgxpool.ParseConfig(b.db.URL)
	require.NoError(t, err)
	cfgA.ConnConfig.RuntimeParams["application_name"] = "doomed_worker"
	poolA, err := pgxpool.NewWithConfig(ctx, cfgA)
	require.NoError(t, err)

	started := make(chan int64, 4)
	unblock := make(chan struct{})
	engineA := startEngine(t, poolA, jobs.Config{Lease: 300 * time.Millisecond},
		map[jobs.Kind]jobs.Handler{jobs.KindFetchTicker: jobs.HandlerFunc(func(ctx context.Context, j jobs.Job) error {
			started <- j.ID
			<-unblock
			return nil
		})})
	ids := enqueue(t, b.pool,
		jobs.NewJob{Kind: jobs.KindFetchTicker, Key: "BTCUSDT", MaxAttempts: 3},
		jobs.NewJob{Kind: jobs.KindFetchTicker, Key: "ETHUSDT", MaxAttempts: 1})
	<-started
	<-started
	require.Equal(t, "running", jobRow(t, b.pool, ids[0]).Status)

	_, err = b.pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'doomed_worker'`)
	require.NoError(t, err)
	poolA.Close()

	counter := newRunCounter()
	engineB := startEngine(t, b.pool, jobs.Config{Lease: 300 * time.Millisecond},
		map[jobs.Kind]jobs.Handler{jobs.KindFetchTicker: counter})

	// BTCUSDT had attempts left: rescued, run again by B.
	r := waitStatus(t, b.pool, ids[0], jobs.StatusSucceeded)
	require.Equal(t, 2, r.Attempts)
	require.Equal(t, 1, counter.count(ids[0]))
	// ETHUSDT's lost claim was its last attempt: failed, with the reason.
	r = waitStatus(t, b.pool, ids[1], jobs.StatusFailed)
	require.Contains(t, *r.Error, "lease expired on worker")
	require.Zero(t, counter.count(ids[1]))
	require.GreaterOrEqual(t, engineB.Stats().Rescued, int64(2))

	// The dead worker's handler finishing late changes nothing.
	close(unblock)
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_ = engineA.Stop(stopCtx)
	require.Equal(t, "succeeded", jobRow(t, b.pool, ids[0]).Status)
	require.Zero(t, engineA.Stats().Succeeded)
}

func TestStopLetsInFlightJobsFinish(t *testing.T) {
	t.Parallel()
	b := setup(t)
	started := make(chan struct{}, 4)
	e := startEngine(t, b.pool, jobs.Config{Workers: 4},
		map[jobs.Kind]jobs.Handler{jobs.KindFetchTicker: jobs.HandlerFunc(func(ctx context.Context, _ jobs.Job) error {
			started <- struct{}{}
			select {
			case <-time.After(300 * time.Millisecond):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})})
	enqueue(t, b.pool, ticker("A"), ticker("B"), ticker("C"), ticker("D"))
	for range 4 {
		<-started
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, e.Stop(ctx))
	require.Equal(t, 4, countStatus(t, b.pool, jobs.StatusSucceeded))
	require.EqualValues(t, 4, e.Stats().Succeeded)
	require.Zero(t, e.Stats().InFlight)
}

func TestStopReleasesUnfinishedJobs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	started := make(chan struct{}, 8)
	e := startEngine(t, b.pool, jobs.Config{Workers: 2},
		map[jobs.Kind]jobs.Handler{jobs.KindFetchTicker: jobs.HandlerFunc(func(ctx context.Context, _ jobs.Job) error {
			started <- struct{}{}
			<-ctx.Done() // a job that outlives the shutdown deadline
			return ctx.Err()
		})})
	ids := enqueue(t, b.pool, ticker("A"), ticker("B"), ticker("C"), ticker("D"), ticker("E"))
	<-started
	<-started

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := e.Stop(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	for _, id := range ids {
		r := jobRow(t, b.pool, id)
		require.Equal(t, "queued", r.Status, "job %d", id)
		require.Zero(t, r.Attempts, "an interrupted run is not an attempt")
		require.Nil(t, r.LockedBy)
		require.Nil(t, r.Error)
	}
	require.Zero(t, e.Stats().Retried)

	// Another worker takes them over.
	counter := newRunCounter()
	startEngine(t, b.pool, jobs.Config{}, map[jobs.Kind]jobs.Handler{jobs.KindFetchTicker: counter})
	for _, id := range ids {
		require.Equal(t, 1, waitStatus(t, b.pool, id, jobs.StatusSucceeded).Attempts)
	}
}

func TestPeriodicJobReschedulesItself(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	const period = 200 * time.Millisecond
	var runs atomic.Int32
	e := startEngine(t, b.pool, jobs.Config{PollInterval: time.Minute},
		map[jobs.Kind]jobs.Handler{jobs.KindFetchOrderbook: jobs.HandlerFunc(func(_ context.Context, j jobs.Job) error {
			if j.Period != period {
				return jobs.Permanent(fmt.Errorf("period %s", j.Period))
			}
			runs.Add(1)
			return nil
		})})
	first := time.Now().Truncate(time.Millisecond)
	job := jobs.NewJob{Kind: jobs.KindFetchOrderbook, Key: "BTCUSDT", ScheduledFor: first, Period: period}
	ids := enqueue(t, b.pool, job)

	require.Eventually(t, func() bool { return runs.Load() >= 4 }, 10*time.Second, 10*time.Millisecond)
	_, inserted, err := jobs.Enqueue(ctx, b.pool, job)
	require.NoError(t, err)
	require.False(t, inserted, "a periodic job holds its key between runs")

	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, e.Stop(stopCtx))
	var rows int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM ingest.jobs`).Scan(&rows))
	require.Equal(t, 1, rows, "a periodic job is one row for life")
	r := jobRow(t, b.pool, ids[0])
	require.Equal(t, "queued", r.Status)
	require.Zero(t, r.Attempts)
	elapsed := r.Scheduled.Sub(first)
	require.Zero(t, elapsed%period, "next run %s after the first is not on the period grid", elapsed)
	require.GreaterOrEqual(t, elapsed, time.Duration(runs.Load())*period)
}

func TestNotificationWakesIdleEngine(t *testing.T) {
	t.Parallel()
	b := setup(t)
	runAt := make(chan time.Time, 1)
	// No polling to speak of: only the notification can wake the engine in time.
	e := startEngine(t, b.pool, jobs.Config{PollInterval: time.Minute},
		map[jobs.Kind]jobs.Handler{jobs.KindFetchTicker: jobs.HandlerFunc(func(context.Context, jobs.Job) error {
			runAt <- time.Now()
			return nil
		})})
	require.Eventually(t, func() bool { return e.Stats().ClaimQueries >= 1 }, 5*time.Second, time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	idleClaims := e.Stats().ClaimQueries
	require.LessOrEqual(t, idleClaims, int64(2), "an idle engine does not poll")

	enqueuedAt := time.Now()
	enqueue(t, b.pool, ticker("BTCUSDT"))
	select {
	case at := <-runAt:
		latency := at.Sub(enqueuedAt)
		t.Logf("enqueue → handler start: %s", latency)
		require.Less(t, latency, 2*time.Second)
	case <-time.After(10 * time.Second):
		t.Fatal("the notification did not wake the engine")
	}
}

func TestWakeClaimsWorkMadeDueWithoutNotification(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	counter := newRunCounter()
	e := startEngine(t, b.pool, jobs.Config{PollInterval: time.Minute},
		map[jobs.Kind]jobs.Handler{jobs.KindFetchTicker: counter})
	ids := enqueue(t, b.pool, jobs.NewJob{Kind: jobs.KindFetchTicker, Key: "BTCUSDT", ScheduledFor: time.Now().Add(time.Hour)})
	time.Sleep(200 * time.Millisecond)
	// Made due behind the engine's back: no insert, no notification.
	_, err := b.pool.Exec(ctx, `UPDATE ingest.jobs SET scheduled_for = now() WHERE id = $1`, ids[0])
	require.NoError(t, err)
	time.Sleep(200 * time.Millisecond)
	require.Zero(t, counter.count(ids[0]))
	e.Wake()
	waitStatus(t, b.pool, ids[0], jobs.StatusSucceeded)
}

func TestFutureJobRunsWhenDue(t *testing.T) {
	t.Parallel()
	b := setup(t)
	runAt := make(chan time.Time, 1)
	startEngine(t, b.pool, jobs.Config{PollInterval: time.Minute},
		map[jobs.Kind]jobs.Handler{jobs.KindFetchTicker: jobs.HandlerFunc(func(context.Context, jobs.Job) error {
			runAt <- time.Now()
			return nil
		})})
	due := time.Now().Add(400 * time.Millisecond)
	enqueue(t, b.pool, jobs.NewJob{Kind: jobs.KindFetchTicker, Key: "BTCUSDT", ScheduledFor: due})
	select {
	case at := <-runAt:
		require.False(t, at.Before(due), "ran %s early", due.Sub(at))
		require.Less(t, at.Sub(due), 2*time.Second, "the engine's timer should fire at scheduled_for")
	case <-time.After(10 * time.Second):
		t.Fatal("the job never ran")
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	klines := func(symbol, window string) jobs.NewJob {
		return jobs.NewJob{Kind: jobs.KindFetchKlines, Key: jobs.Key(symbol, window),
			Payload: map[string]string{"symbol": symbol, "window": window}}
	}
	ids := enqueue(t, b.pool, klines("BTCUSDT", "1m"), klines("BTCUSDT", "1h"), klines("ETHUSDT", "1h"),
		ticker("BTCUSDT"), jobs.NewJob{Kind: jobs.KindComputeMEA})

	_, err := jobs.CancelMatching(ctx, b.pool, jobs.CancelFilter{})
	require.ErrorIs(t, err, jobs.ErrEmptyFilter)

	n, err := jobs.CancelMatching(ctx, b.pool, jobs.CancelFilter{Kinds: []jobs.Kind{jobs.KindFetchKlines}, KeyPrefix: jobs.Key("BTCUSDT", "")})
	require.NoError(t, err)
	require.EqualValues(t, 2, n)
	n, err = jobs.CancelMatching(ctx, b.pool, jobs.CancelFilter{Payload: map[string]string{"symbol": "BTCUSDT"}})
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "only the ticker is left live for BTCUSDT")
	n, err = jobs.CancelMatching(ctx, b.pool, jobs.CancelFilter{Kinds: []jobs.Kind{jobs.KindComputeMEA}, Keys: []string{""}})
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	require.Equal(t, 4, countStatus(t, b.pool, jobs.StatusCancelled))

	// Cancelled work no longer holds its key.
	again := enqueue(t, b.pool, klines("BTCUSDT", "1h"))

	counter := newRunCounter()
	startEngine(t, b.pool, jobs.Config{}, map[jobs.Kind]jobs.Handler{
		jobs.KindFetchKlines: counter, jobs.KindFetchTicker: counter, jobs.KindComputeMEA: counter})
	waitStatus(t, b.pool, ids[2], jobs.StatusSucceeded)
	waitStatus(t, b.pool, again[0], jobs.StatusSucceeded)
	for _, id := range []int64{ids[0], ids[1], ids[3], ids[4]} {
		require.Zero(t, counter.count(id), "cancelled job %d ran", id)
		require.Equal(t, "cancelled", jobRow(t, b.pool, id).Status)
	}
}

func TestCancelRunningPeriodicJobStopsIt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	started := make(chan struct{}, 1)
	unblock := make(chan struct{})
	e := startEngine(t, b.pool, jobs.Config{},
		map[jobs.Kind]jobs.Handler{jobs.KindFetchTicker: jobs.HandlerFunc(func(context.Context, jobs.Job) error {
			started <- struct{}{}
			<-unblock
			return nil
		})})
	ids := enqueue(t, b.pool, jobs.NewJob{Kind: jobs.KindFetchTicker, Key: "DOGEUSDT", Period: 50 * time.Millisecond})
	<-started
	n, err := jobs.CancelMatching(ctx, b.pool, jobs.CancelFilter{Keys: []string{"DOGEUSDT"}})
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	close(unblock)
	require.Eventually(t, func() bool { return e.Stats().Stale == 1 }, 5*time.Second, 5*time.Millisecond)
	r := jobRow(t, b.pool, ids[0])
	require.Equal(t, "cancelled", r.Status, "the late success must not reschedule a cancelled job")
	require.Nil(t, r.LockedBy)
}

func TestJobsWithoutHandlerAreNotClaimed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	counter := newRunCounter()
	e := startEngine(t, b.pool, jobs.Config{}, map[jobs.Kind]jobs.Handler{jobs.KindFetchTicker: counter})
	ids := enqueue(t, b.pool, jobs.NewJob{Kind: jobs.KindComputeMatrices}, ticker("BTCUSDT"))
	waitStatus(t, b.pool, ids[1], jobs.StatusSucceeded)
	r := jobRow(t, b.pool, ids[0])
	require.Equal(t, "queued", r.Status)
	require.Zero(t, r.Attempts)
	require.EqualValues(t, 1, e.Stats().Claimed)
}

func TestStartStopDiscipline(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	e, err := jobs.New(b.pool, jobs.Config{Logger: testLogger(t)})
	require.NoError(t, err)
	require.NoError(t, e.Stop(ctx), "stopping a never-started engine is a no-op")
	require.ErrorIs(t, e.Start(ctx), jobs.ErrNoHandlers)
	counter := newRunCounter()
	require.NoError(t, e.Register(jobs.KindFetchTicker, counter))
	require.Error(t, e.Register(jobs.KindFetchTicker, counter), "one handler per kind")
	require.Error(t, e.Register("fetch_weather", counter))

	var wg sync.WaitGroup
	var started atomic.Int32
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch err := e.Start(ctx); {
			case err == nil:
				started.Add(1)
			case !errors.Is(err, startstop.ErrAlreadyStarted):
				t.Errorf("start: %v", err)
			}
		}()
	}
	wg.Wait()
	require.EqualValues(t, 1, started.Load())
	require.ErrorIs(t, e.Register(jobs.KindFetchKlines, counter), jobs.ErrRunning)

	ids := enqueue(t, b.pool, ticker("BTCUSDT"))
	waitStatus(t, b.pool, ids[0], jobs.StatusSucceeded)

	for range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); require.NoError(t, e.Stop(ctx)) }()
	}
	wg.Wait()

	// Stopped: new work waits.
	ids = enqueue(t, b.pool, ticker("ETHUSDT"))
	time.Sleep(100 * time.Millisecond)
	require.Equal(t, "queued", jobRow(t, b.pool, ids[0]).Status)

	// And can start again.
	require.NoError(t, e.Start(ctx))
	waitStatus(t, b.pool, ids[0], jobs.StatusSucceeded)
	require.NoError(t, e.Stop(ctx))
	require.NoError(t, e.Stop(ctx))
}

func TestCountsAndPrune(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	ids := enqueue(t, b.pool, ticker("A"), ticker("B"), jobs.NewJob{Kind: jobs.KindComputeMEA})
	counter := newRunCounter()
	e := startEngine(t, b.pool, jobs.Config{}, map[jobs.Kind]jobs.Handler{jobs.KindComputeMEA: counter})
	waitStatus(t, b.pool, ids[2], jobs.StatusSucceeded)
	require.NoError(t, e.Stop(ctx))

	counts, err := jobs.Counts(ctx, b.pool)
	require.NoError(t, err)
	require.Len(t, counts, 2)
	require.Equal(t, jobs.Count{Kind: jobs.KindComputeMEA, Status: jobs.StatusSucceeded, Jobs: 1}, counts[0])
	require.Equal(t, jobs.KindFetchTicker, counts[1].Kind)
	require.Equal(t, jobs.StatusQueued, counts[1].Status)
	require.EqualValues(t, 2, counts[1].Jobs)
	require.False(t, counts[1].OldestDue.IsZero())

	n, err := jobs.Prune(ctx, b.pool, time.Now().Add(time.Minute))
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "only finished jobs are pruned")
}

// OnOutcome hears every recorded outcome: the retries, then the failure, with their errors.
func TestOnOutcomeReportsRecordedOutcomes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var mu sync.Mutex
	var got []jobs.Outcome
	startEngine(t, b.pool, jobs.Config{BackoffBase: 10 * time.Millisecond, BackoffCap: 20 * time.Millisecond,
		OnOutcome: func(os []jobs.Outcome) { mu.Lock(); got = append(got, os...); mu.Unlock() }},
		map[jobs.Kind]jobs.Handler{
			jobs.KindFetchTicker:    jobs.HandlerFunc(func(context.Context, jobs.Job) error { return errors.New("exchange said no") }),
			jobs.KindFetchOrderbook: jobs.HandlerFunc(func(context.Context, jobs.Job) error { return nil }),
		})
	ids := enqueue(t, b.pool,
		jobs.NewJob{Kind: jobs.KindFetchTicker, Key: "BTCUSDT", MaxAttempts: 2},
		jobs.NewJob{Kind: jobs.KindFetchOrderbook, Key: "ETHUSDT"})
	waitStatus(t, b.pool, ids[0], jobs.StatusFailed)
	waitStatus(t, b.pool, ids[1], jobs.StatusSucceeded)
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 3 }, 5*time.Second, 10*time.Millisecond)

	mu.Lock()
	defer mu.Unlock()
	byJob := map[int64][]jobs.Outcome{}
	for _, o := range got {
		byJob[o.Job.ID] = append(byJob[o.Job.ID], o)
	}
	require.Len(t, byJob[ids[0]], 2)
	require.Equal(t, jobs.StatusQueued, byJob[ids[0]][0].Status)
	require.Equal(t, 1, byJob[ids[0]][0].Job.Attempt)
	require.Equal(t, jobs.StatusFailed, byJob[ids[0]][1].Status)
	require.Equal(t, "exchange said no", byJob[ids[0]][1].Err)
	require.Equal(t, jobs.KindFetchTicker, byJob[ids[0]][1].Job.Kind)
	require.Equal(t, []jobs.Outcome{{Job: byJob[ids[1]][0].Job, Status: jobs.StatusSucceeded}}, byJob[ids[1]])
	require.Equal(t, "ETHUSDT", byJob[ids[1]][0].Job.Key)
}

// An error text Postgres cannot store as is (a NUL byte, broken UTF-8, as a cut exchange body
// can hold) is cleaned, not allowed to fail the batch of outcomes and stall the engine.
func TestUnstorableErrorTextIsCleaned(t *testing.T) {
	t.Parallel()
	b := setup(t)
	startEngine(t, b.pool, jobs.Config{},
		map[jobs.Kind]jobs.Handler{jobs.KindFetchTicker: jobs.HandlerFunc(func(context.Context, jobs.Job) error {
			return jobs.Permanent(errors.New("bad\x00body \xe2\x82"))
		}), jobs.KindFetchOrderbook: jobs.HandlerFunc(func(context.Context, jobs.Job) error { return nil })})
	ids := enqueue(t, b.pool, ticker("BTCUSDT"), jobs.NewJob{Kind: jobs.KindFetchOrderbook, Key: "after"})
	r := waitStatus(t, b.pool, ids[0], jobs.StatusFailed)
	require.Equal(t, "badbody \uFFFD", *r.Error)
	waitStatus(t, b.pool, ids[1], jobs.StatusSucceeded)
}

// A periodic job whose occurrence runs out of attempts (a few minutes of exchange errors) is not
// left failed: the occurrence is recorded as a failed row of its own, the job is queued for its
// next period on its grid, and its consecutive failures are counted until a success resets them.
func TestRecurringJobOutlivesFailedOccurrences(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	const period = time.Hour
	var (
		failing atomic.Bool
		mu      sync.Mutex
		reports []jobs.Outcome
		logs    logtest.Buffer
	)
	failing.Store(true)
	e := startEngine(t, b.pool, jobs.Config{BackoffBase: 10 * time.Millisecond, BackoffCap: 20 * time.Millisecond,
		PollInterval: time.Minute, FailureWarnAfter: 2,
		Logger:    slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
		OnOutcome: func(os []jobs.Outcome) { mu.Lock(); reports = append(reports, os...); mu.Unlock() }},
		map[jobs.Kind]jobs.Handler{jobs.KindFetchKlines: jobs.HandlerFunc(func(context.Context, jobs.Job) error {
			if failing.Load() {
				return errors.New("exchange: 503 Service Unavailable")
			}
			return nil
		})})
	// On a whole second of the database's clock, so the grid is easy to check.
	var first time.Time
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT date_trunc('second', now())`).Scan(&first))
	job := jobs.NewJob{Kind: jobs.KindFetchKlines, Key: jobs.Key("BTCUSDT", "1h"), ScheduledFor: first, Period: period, MaxAttempts: 2}
	id := enqueue(t, b.pool, job)[0]

	type state struct {
		Status      string
		Attempts    int
		Failures    int
		Scheduled   time.Time
		Error       *string
		Occurrences int
	}
	read := func() state {
		var s state
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT status, attempts, consecutive_failures, scheduled_for, error,
			(SELECT count(*) FROM ingest.jobs o WHERE o.occurrence_of = j.id AND o.status = 'failed')
			FROM ingest.jobs j WHERE id = $1`, id).Scan(&s.Status, &s.Attempts, &s.Failures, &s.Scheduled, &s.Error, &s.Occurrences))
		return s
	}
	waitFailures := func(n int) state {
		t.Helper()
		require.Eventually(t, func() bool { s := read(); return s.Failures == n && s.Status == "queued" },
			20*time.Second, 10*time.Millisecond, "job never reached %d consecutive failures", n)
		return read()
	}
	gauge := func(n int) {
		t.Helper()
		require.Eventually(t, func() bool { return e.Stats().ConsecutiveFailures[jobs.KindFetchKlines] == int64(n) },
			5*time.Second, 10*time.Millisecond)
		require.NoError(t, promtestutil.CollectAndCompare(jobs.NewCollector(e), strings.NewReader(fmt.Sprintf(`
# HELP cp_jobs_consecutive_failures Jobs of a kind this engine recorded as failed (all attempts used; for a recurring job, one failed occurrence, its next one queued) since its last recorded success of the kind.
# TYPE cp_jobs_consecutive_failures gauge
cp_jobs_consecutive_failures{kind="fetch_klines"} %d
`, n)), "cp_jobs_consecutive_failures"))
	}
	// makeDue moves the job's grid back by a period, as if an hour had passed, and wakes the engine.
	makeDue := func() {
		t.Helper()
		_, err := b.pool.Exec(ctx, `UPDATE ingest.jobs SET scheduled_for = scheduled_for - $2::interval,
			period_anchor = period_anchor - $2::interval WHERE id = $1`, id, period)
		require.NoError(t, err)
		e.Wake()
	}

	// Both attempts fail (the retry moves scheduled_for): the occurrence is recorded as failed,
	// and the job is queued at the next hour of its grid, not at an hour after the retry.
	s := waitFailures(1)
	require.Equal(t, 0, s.Attempts, "the next occurrence has its whole attempt budget")
	require.True(t, s.Scheduled.Equal(first.Add(period)), "next occurrence at %s, want %s", s.Scheduled, first.Add(period))
	require.Equal(t, "exchange: 503 Service Unavailable", *s.Error, "the last error stays visible")
	require.Equal(t, 1, s.Occurrences)
	var occ struct {
		Attempts int
		Error    string
		Period   *time.Duration
	}
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT attempts, error, period FROM ingest.jobs WHERE occurrence_of = $1`, id).
		Scan(&occ.Attempts, &occ.Error, &occ.Period))
	require.Equal(t, 2, occ.Attempts)
	require.Equal(t, "exchange: 503 Service Unavailable", occ.Error)
	require.Nil(t, occ.Period, "a failed occurrence is history, not a second recurring job")
	gauge(1)

	// The live key is held throughout: seeding the same job again is a no-op.
	_, inserted, err := jobs.Enqueue(ctx, b.pool, job)
	require.NoError(t, err)
	require.False(t, inserted)

	// The next occurrence fails too: two in a row, and a warning at FailureWarnAfter.
	makeDue()
	s = waitFailures(2)
	require.True(t, s.Scheduled.Equal(first.Add(period)), "next occurrence at %s", s.Scheduled)
	require.Equal(t, 2, s.Occurrences)
	gauge(2)
	failingJobs, err := jobs.Failing(ctx, b.pool)
	require.NoError(t, err)
	require.Len(t, failingJobs, 1)
	require.Equal(t, id, failingJobs[0].ID)
	require.Equal(t, jobs.Key("BTCUSDT", "1h"), failingJobs[0].Key)
	require.Equal(t, 2, failingJobs[0].ConsecutiveFailures)
	require.Equal(t, "exchange: 503 Service Unavailable", failingJobs[0].Error)
	require.True(t, failingJobs[0].NextRun.Equal(first.Add(period)))
	require.Eventually(t, func() bool {
		return strings.Contains(logs.String(), "recurring job keeps failing") && strings.Contains(logs.String(), "jobs of a kind keep failing")
	}, 5*time.Second, 10*time.Millisecond, logs.String())

	// The exchange is back: the next occurrence succeeds and resets the count.
	failing.Store(false)
	makeDue()
	require.Eventually(t, func() bool { s := read(); return s.Failures == 0 && s.Status == "queued" && s.Error == nil },
		20*time.Second, 10*time.Millisecond)
	s = read()
	require.True(t, s.Scheduled.Equal(first.Add(period)), "next occurrence at %s", s.Scheduled)
	require.Equal(t, 2, s.Occurrences, "failed occurrences stay as history")
	gauge(0)
	failingJobs, err = jobs.Failing(ctx, b.pool)
	require.NoError(t, err)
	require.Empty(t, failingJobs)

	mu.Lock()
	defer mu.Unlock()
	var failures []int
	for _, o := range reports {
		if o.Status == jobs.StatusFailed {
			failures = append(failures, o.ConsecutiveFailures)
		}
	}
	require.Equal(t, []int{1, 2}, failures, "failed occurrences are reported as failed, with their count")
	var live int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM ingest.jobs WHERE status IN ('queued', 'running')`).Scan(&live))
	require.Equal(t, 1, live)
}

// A recurring job whose worker died on its last attempt is rescued as a failed occurrence and
// queued for its next period, like one whose handler failed.
func TestRecurringJobRescuedOnItsLastAttemptRecurs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	var first time.Time
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT date_trunc('second', now())`).Scan(&first))
	id := enqueue(t, b.pool, jobs.NewJob{Kind: jobs.KindFetchTicker, ScheduledFor: first, Period: time.Hour, MaxAttempts: 1})[0]
	// Claimed by a worker that died: its lease has run out on the job's only attempt.
	_, err := b.pool.Exec(ctx, `UPDATE ingest.jobs SET status = 'running', attempts = 1, started_at = now(),
		locked_by = 'dead-worker', lease_expires_at = now() - interval '1 second' WHERE id = $1`, id)
	require.NoError(t, err)
	e := startEngine(t, b.pool, jobs.Config{PollInterval: time.Minute},
		map[jobs.Kind]jobs.Handler{jobs.KindFetchTicker: newRunCounter()})

	require.Eventually(t, func() bool { return jobRow(t, b.pool, id).Status == "queued" }, 20*time.Second, 10*time.Millisecond)
	r := jobRow(t, b.pool, id)
	require.True(t, r.Scheduled.Equal(first.Add(time.Hour)), "next occurrence at %s", r.Scheduled)
	require.Zero(t, r.Attempts)
	var failures, occurrences int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT consecutive_failures,
		(SELECT count(*) FROM ingest.jobs o WHERE o.occurrence_of = j.id AND o.status = 'failed' AND o.error LIKE 'lease expired%')
		FROM ingest.jobs j WHERE id = $1`, id).Scan(&failures, &occurrences))
	require.Equal(t, 1, failures)
	require.Equal(t, 1, occurrences)
	require.Eventually(t, func() bool { return e.Stats().ConsecutiveFailures[jobs.KindFetchTicker] == 1 }, 5*time.Second, 10*time.Millisecond)
}
