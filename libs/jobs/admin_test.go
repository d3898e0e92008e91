package jobs_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/jobs"
)

// fail marks jobs failed as the engine leaves a one-shot job that used up its attempts.
func fail(t *testing.T, pool *pgxpool.Pool, ids ...int64) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `UPDATE ingest.jobs SET status = 'failed', attempts = max_attempts,
		finished_at = now(), error = 'exchange said no' WHERE id = ANY ($1)`, ids)
	require.NoError(t, err)
}

func TestRetryRespectsTheLiveKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	failed := enqueue(t, b.pool, ticker("BTCUSDT"))[0]
	fail(t, b.pool, failed)
	// The same work was enqueued again since: it is live, so the failed job cannot be.
	live := enqueue(t, b.pool, ticker("BTCUSDT"))[0]

	err := jobs.Retry(ctx, b.pool, failed)
	require.ErrorIs(t, err, jobs.ErrLiveJobExists)
	var le *jobs.LiveJobError
	require.ErrorAs(t, err, &le)
	require.Equal(t, live, le.Live)
	require.Equal(t, "failed", jobRow(t, b.pool, failed).Status, "nothing changes")

	_, err = jobs.Cancel(ctx, b.pool, live)
	require.NoError(t, err)
	require.NoError(t, jobs.Retry(ctx, b.pool, failed))
	r := jobRow(t, b.pool, failed)
	require.Equal(t, "queued", r.Status)
	require.Equal(t, 0, r.Attempts, "a fresh attempt budget")
	require.NotNil(t, r.Error, "the last error stays until a run succeeds")

	require.ErrorIs(t, jobs.Retry(ctx, b.pool, failed), jobs.ErrNotRetryable, "it is queued now")
	require.ErrorIs(t, jobs.Retry(ctx, b.pool, 1<<40), jobs.ErrJobNotFound)

	// The cancelled job can be retried in turn only once the retried one is no longer live.
	require.ErrorIs(t, jobs.Retry(ctx, b.pool, live), jobs.ErrLiveJobExists)
}

func TestRetryFailedRetriesTheNewestFailurePerFreeKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	a1 := enqueue(t, b.pool, ticker("A"))[0]
	fail(t, b.pool, a1)
	a2 := enqueue(t, b.pool, ticker("A"))[0]
	b1 := enqueue(t, b.pool, ticker("B"))[0]
	c1 := enqueue(t, b.pool, ticker("C"))[0]
	other := enqueue(t, b.pool, jobs.NewJob{Kind: jobs.KindFetchOrderbook, Key: "A"})[0]
	fail(t, b.pool, a2, b1, c1, other)
	b2 := enqueue(t, b.pool, ticker("B"))[0] // B's work is live again

	var progress []int64
	res, err := jobs.RetryFailedEach(ctx, b.pool, jobs.KindFetchTicker, func(done int64) { progress = append(progress, done) })
	require.NoError(t, err)
	require.Equal(t, jobs.RetryResult{Retried: 2, Skipped: 2}, res)
	require.Equal(t, []int64{4}, progress)
	for id, want := range map[int64]string{a1: "failed", a2: "queued", b1: "failed", b2: "queued", c1: "queued", other: "failed"} {
		require.Equal(t, want, jobRow(t, b.pool, id).Status, "job %d", id)
	}
	n, err := jobs.RetryFailed(ctx, b.pool, jobs.KindFetchTicker)
	require.NoError(t, err)
	require.Zero(t, n, "a second pass finds every failed job's work live")
	_, err = jobs.RetryFailed(ctx, b.pool, "fetch_everything")
	require.ErrorIs(t, err, jobs.ErrInvalidJob)
}

// A running job's cancel reaches its handler's context in the engine that runs it, and the run is
// recorded as cancelled, not failed.
func TestCancelRunningJobCancelsItsHandler(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	started := make(chan int64, 1)
	observed := make(chan error, 1)
	e := startEngine(t, b.pool, jobs.Config{JobTimeout: -1}, map[jobs.Kind]jobs.Handler{
		jobs.KindFetchTicker: jobs.HandlerFunc(func(ctx context.Context, j jobs.Job) error {
			started <- j.ID
			<-ctx.Done()
			observed <- ctx.Err()
			return ctx.Err()
		})})
	id := enqueue(t, b.pool, jobs.NewJob{Kind: jobs.KindFetchTicker, Key: "BTCUSDT", Period: time.Hour})[0]
	require.Equal(t, id, <-started)

	res, err := jobs.Cancel(ctx, b.pool, id)
	require.NoError(t, err)
	require.Equal(t, jobs.StatusRunning, res.Was)
	select {
	case err := <-observed:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(20 * time.Second):
		t.Fatal("the handler's context was never cancelled")
	}
	require.Eventually(t, func() bool { return e.Stats().Cancelled == 1 }, 20*time.Second, 10*time.Millisecond)
	require.Equal(t, "cancelled", jobRow(t, b.pool, id).Status, "a cancelled recurring job is not rescheduled")
	require.Eventually(t, func() bool {
		r := jobRuns(t, b.pool, id)
		return len(r) == 1 && r[0].Status == "cancelled"
	}, 20*time.Second, 10*time.Millisecond, "the run is recorded as cancelled")
	require.Zero(t, e.Stats().Failed+e.Stats().Retried)

	_, err = jobs.Cancel(ctx, b.pool, id)
	require.ErrorIs(t, err, jobs.ErrNotLive)
	_, err = jobs.Cancel(ctx, b.pool, 1<<40)
	require.ErrorIs(t, err, jobs.ErrJobNotFound)
}

// Without the notification (a cancel by hand-written UPDATE, or one the listener missed), the
// engine finds the cancelled job at its next lease renewal.
func TestCancelledJobFoundAtLeaseRenewal(t *testing.T) {
	t.Parallel()
	b := setup(t)
	started := make(chan struct{}, 1)
	observed := make(chan struct{})
	startEngine(t, b.pool, jobs.Config{Lease: 300 * time.Millisecond, JobTimeout: -1}, map[jobs.Kind]jobs.Handler{
		jobs.KindFetchTicker: jobs.HandlerFunc(func(ctx context.Context, j jobs.Job) error {
			started <- struct{}{}
			<-ctx.Done()
			close(observed)
			return nil
		})})
	id := enqueue(t, b.pool, ticker("BTCUSDT"))[0]
	<-started
	_, err := b.pool.Exec(context.Background(), `UPDATE ingest.jobs SET status = 'cancelled', finished_at = now(),
		locked_by = NULL, lease_expires_at = NULL WHERE id = $1`, id)
	require.NoError(t, err)
	select {
	case <-observed:
	case <-time.After(20 * time.Second):
		t.Fatal("the handler's context was never cancelled")
	}
	require.Eventually(t, func() bool {
		r := jobRuns(t, b.pool, id)
		return len(r) == 1 && r[0].Status == "cancelled"
	}, 20*time.Second, 10*time.Millisecond)
}

func TestCancelQueuedJob(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := enqueue(t, b.pool, jobs.NewJob{Kind: jobs.KindFetchTicker, Key: "X", ScheduledFor: time.Now().Add(time.Hour)})[0]
	res, err := jobs.Cancel(context.Background(), b.pool, id)
	require.NoError(t, err)
	require.Equal(t, jobs.StatusQueued, res.Was)
	require.Equal(t, "cancelled", jobRow(t, b.pool, id).Status)
}

// A paused kind is claimed by no engine until it is resumed; a freeze's pause outlasts an
// operator's resume.
func TestPausedKindIsNotClaimedUntilResumed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	paused, err := jobs.Pause(ctx, b.pool, jobs.KindFetchTicker, "exchange maintenance")
	require.NoError(t, err)
	require.True(t, paused)
	paused, err = jobs.Pause(ctx, b.pool, jobs.KindFetchTicker, "again")
	require.NoError(t, err)
	require.False(t, paused, "already paused by the operator")

	var runs atomic.Int64
	h := jobs.HandlerFunc(func(context.Context, jobs.Job) error { runs.Add(1); return nil })
	cfg := jobs.Config{PollInterval: 20 * time.Millisecond}
	e1 := startEngine(t, b.pool, cfg, map[jobs.Kind]jobs.Handler{jobs.KindFetchTicker: h})
	e2 := startEngine(t, b.pool, cfg, map[jobs.Kind]jobs.Handler{jobs.KindFetchTicker: h})
	id := enqueue(t, b.pool, ticker("BTCUSDT"))[0]
	// Both engines claim (woken by the insert, then by their poll) after the job is due: two claim
	// statements after the insert mean the first one, which saw the job, has finished.
	q1, q2 := e1.Stats().ClaimQueries, e2.Stats().ClaimQueries
	require.Eventually(t, func() bool {
		return e1.Stats().ClaimQueries >= q1+2 && e2.Stats().ClaimQueries >= q2+2
	}, 20*time.Second, 5*time.Millisecond)
	require.Equal(t, "queued", jobRow(t, b.pool, id).Status)
	require.Zero(t, e1.Stats().Claimed+e2.Stats().Claimed)

	// A freeze pauses it too; the operator's resume leaves the freeze's pause.
	_, err = jobs.PauseFor(ctx, b.pool, "freeze.straux", []jobs.Kind{jobs.KindFetchTicker}, "frozen")
	require.NoError(t, err)
	lifted, left, err := jobs.Resume(ctx, b.pool, jobs.KindFetchTicker)
	require.NoError(t, err)
	require.True(t, lifted)
	require.Len(t, left, 1)
	require.Equal(t, "freeze.straux", left[0].Source)
	q1, q2 = e1.Stats().ClaimQueries, e2.Stats().ClaimQueries
	require.Eventually(t, func() bool {
		return e1.Stats().ClaimQueries >= q1+2 && e2.Stats().ClaimQueries >= q2+2
	}, 20*time.Second, 5*time.Millisecond)
	require.Equal(t, "queued", jobRow(t, b.pool, id).Status)

	kinds, err := jobs.ResumeFor(ctx, b.pool, "freeze.straux", nil)
	require.NoError(t, err)
	require.Equal(t, []jobs.Kind{jobs.KindFetchTicker}, kinds)
	waitStatus(t, b.pool, id, jobs.StatusSucceeded)
	require.EqualValues(t, 1, runs.Load())
	all, err := jobs.Paused(ctx, b.pool)
	require.NoError(t, err)
	require.Empty(t, all)
}

// The engine prunes finished jobs and runs older than its retention, on its clock.
func TestRetentionPrunesFinishedJobsAndRuns(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	ids := enqueue(t, b.pool, ticker("OLD"), ticker("YOUNG"), ticker("LIVE"))
	_, err := b.pool.Exec(ctx, `UPDATE ingest.jobs SET status = 'succeeded', finished_at = $2 WHERE id = $1`, ids[0], now.Add(-48*time.Hour))
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `UPDATE ingest.jobs SET status = 'failed', finished_at = $2 WHERE id = $1`, ids[1], now.Add(-time.Hour))
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `INSERT INTO ops.job_run (kind, name, status, started_at, finished_at)
		VALUES ('oneshot', 'old', 'succeeded', $1, $1), ('oneshot', 'young', 'succeeded', $2, $2)`,
		now.Add(-48*time.Hour), now.Add(-time.Hour))
	require.NoError(t, err)

	e := startEngine(t, b.pool, jobs.Config{Retention: 24 * time.Hour, Now: func() time.Time { return now }},
		map[jobs.Kind]jobs.Handler{jobs.KindComputeMEA: newRunCounter()})
	require.Eventually(t, func() bool { s := e.Stats(); return s.PrunedJobs == 1 && s.PrunedRuns == 1 },
		20*time.Second, 10*time.Millisecond)
	var left []string
	rows, err := b.pool.Query(ctx, `SELECT dedup_key FROM ingest.jobs ORDER BY dedup_key`)
	require.NoError(t, err)
	for rows.Next() {
		var k string
		require.NoError(t, rows.Scan(&k))
		left = append(left, k)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"LIVE", "YOUNG"}, left)
	var names []string
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT array_agg(name) FROM ops.job_run`).Scan(&names))
	require.Equal(t, []string{"young"}, names)
	require.Zero(t, e.Stats().PruneErrors)
}

type jobRun struct {
	Attempt  int
	Status   string
	Error    *string
	Duration *time.Duration
	Session  *int64
	Worker   *string
}

func jobRuns(t *testing.T, pool *pgxpool.Pool, jobID int64) []jobRun {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT attempt, status, error, duration, session_id, worker
		FROM ops.job_run WHERE job_id = $1 ORDER BY id`, jobID)
	require.NoError(t, err)
	var out []jobRun
	for rows.Next() {
		var r jobRun
		require.NoError(t, rows.Scan(&r.Attempt, &r.Status, &r.Error, &r.Duration, &r.Session, &r.Worker))
		out = append(out, r)
	}
	require.NoError(t, rows.Err())
	return out
}

// Every run of a job, each attempt of each occurrence, is a row of ops.job_run.
func TestEngineRecordsEveryRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var calls atomic.Int64
	startEngine(t, b.pool, jobs.Config{BackoffBase: time.Millisecond, BackoffCap: time.Millisecond, SessionID: 42},
		map[jobs.Kind]jobs.Handler{
			jobs.KindFetchTicker: jobs.HandlerFunc(func(context.Context, jobs.Job) error {
				if calls.Add(1) == 1 {
					return errors.New("exchange said no")
				}
				return nil
			})})
	id := enqueue(t, b.pool, jobs.NewJob{Kind: jobs.KindFetchTicker, Key: "BTCUSDT", Period: time.Hour})[0]
	var runs []jobRun
	require.Eventually(t, func() bool { runs = jobRuns(t, b.pool, id); return len(runs) == 2 }, 20*time.Second, 10*time.Millisecond)
	require.Equal(t, 1, runs[0].Attempt)
	require.Equal(t, "retry", runs[0].Status)
	require.Equal(t, "exchange said no", *runs[0].Error)
	require.Equal(t, 2, runs[1].Attempt)
	require.Equal(t, "succeeded", runs[1].Status)
	require.Nil(t, runs[1].Error)
	for _, r := range runs {
		require.NotNil(t, r.Duration)
		require.GreaterOrEqual(t, *r.Duration, time.Duration(0))
		require.EqualValues(t, 42, *r.Session)
		require.NotEmpty(t, *r.Worker)
	}
}

func TestOneShotRunIsRecorded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	clock := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	run, err := jobs.StartOneShot(ctx, b.pool, "cinimport once -full", 7, now)
	require.NoError(t, err)
	var status string
	var finished *time.Time
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT status, finished_at FROM ops.job_run WHERE id = $1`, run.ID()).Scan(&status, &finished))
	require.Equal(t, "running", status)
	require.Nil(t, finished)

	clock = clock.Add(90 * time.Second)
	require.NoError(t, run.Finish(ctx, errors.New("session 3: exchange said no")))
	var (
		kind, name, msg string
		d               time.Duration
		session         int64
	)
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT kind, name, status, error, duration, session_id FROM ops.job_run WHERE id = $1`, run.ID()).
		Scan(&kind, &name, &status, &msg, &d, &session))
	require.Equal(t, []any{jobs.KindOneShot, "cinimport once -full", "failed", "session 3: exchange said no", 90 * time.Second, int64(7)},
		[]any{kind, name, status, msg, d, session})
}

// A job cancelled by filter (the seeder's CancelMatching, which does not interrupt handlers) while
// its handler runs is recorded as a cancelled run when the handler returns, not as a lost one.
func TestRunOfJobCancelledByFilterIsRecordedCancelled(t *testing.T) {
	t.Parallel()
	b := setup(t)
	started, release := make(chan struct{}, 1), make(chan struct{})
	startEngine(t, b.pool, jobs.Config{}, map[jobs.Kind]jobs.Handler{
		jobs.KindFetchTicker: jobs.HandlerFunc(func(context.Context, jobs.Job) error {
			started <- struct{}{}
			<-release
			return nil
		})})
	id := enqueue(t, b.pool, ticker("BTCUSDT"))[0]
	<-started
	n, err := jobs.CancelMatching(context.Background(), b.pool, jobs.CancelFilter{Keys: []string{"BTCUSDT"}})
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	close(release)
	require.Eventually(t, func() bool {
		r := jobRuns(t, b.pool, id)
		return len(r) == 1 && r[0].Status == "cancelled"
	}, 20*time.Second, 10*time.Millisecond)
	require.Equal(t, "cancelled", jobRow(t, b.pool, id).Status)
}
