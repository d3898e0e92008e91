package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// A run is one Start-to-Stop life of an engine. Its goroutines:
//
//	produce   claims due jobs in batches and queues them (the only claimer; it sleeps when idle)
//	execute   Workers goroutines running handlers from the queue
//	complete  records outcomes in batches, then hands back whatever is still held at the end
//	listen    LISTEN ingest_jobs on a dedicated connection, waking produce
//	maintain  renews the leases of held jobs and rescues expired ones
//
// Shutdown flows down that pipeline: produce returns and closes the queue, the executors hand
// back jobs they have not started and finish the ones they have, the completer flushes the last
// outcomes, and listen and maintain stop last.
type run struct {
	e        *Engine
	cfg      Config
	log      *slog.Logger
	id       string // locked_by of every job this run claims
	kinds    []string
	handlers map[Kind]Handler

	loopCtx     context.Context // cancelled when a stop is requested
	workCtx     context.Context // parent of handler contexts; cancelled when Stop's deadline passes
	cancelWork  context.CancelFunc
	interrupted atomic.Bool // jobs were released because Stop's deadline cut their handlers short

	listener *pgx.Conn // connected by newRun, owned by listen afterwards

	queue   chan Job      // claimed jobs waiting for an executor
	results chan result   // outcomes waiting for the completer
	slot    chan struct{} // capacity 1: an executor finished a job
	done    atomic.Int64  // handler runs finished, for the throughput estimate

	ownedMu sync.Mutex
	owned   map[int64]*held // claimed and not yet recorded: the jobs whose leases we renew
}

// held is one claimed job as its run tracks it, so an operator's Cancel can reach its handler.
type held struct {
	cancel    context.CancelCauseFunc // set while its handler runs
	cancelled bool                    // Cancel was seen: cancel the handler, or never start it
}

// errJobCancelled is the cause of a handler context cancelled because an operator cancelled the job.
var errJobCancelled = errors.New("jobs: job cancelled by an operator")

type outcome string

const (
	outcomeSucceeded outcome = "succeeded"
	outcomeRetry     outcome = "retry"
	outcomeFailed    outcome = "failed"
	outcomeRelease   outcome = "release"
	// outcomeCancelled: the job was cancelled while held; its row is cancelled already, so the
	// outcome is only recorded as a run.
	outcomeCancelled outcome = "cancelled"
)

type result struct {
	id       int64
	job      Job // unset for a release before the handler ran
	outcome  outcome
	delay    time.Duration // before the retry
	err      string
	periodic bool
	held     *held // the claim's entry in owned
	// ran says the handler ran, from started to finished: the run is recorded in ops.job_run.
	ran               bool
	started, finished time.Time
}

const (
	// claimCooldown is the least time between claims other than back-to-back full batches, so a
	// busy engine whose workers free up one at a time claims in small batches, not one by one.
	claimCooldown = 10 * time.Millisecond
	// prefetchHorizon is how much work, at the measured rate, an engine claims beyond its free
	// workers.
	prefetchHorizon = 100 * time.Millisecond
	// statementTimeout bounds the engine's own statements.
	statementTimeout = 30 * time.Second
	// maxErrorLen bounds the error text stored with a job.
	maxErrorLen = 4000
)

func newRun(loopCtx context.Context, e *Engine, handlers map[Kind]Handler) (*run, error) {
	cfg := e.cfg
	r := &run{
		e:        e,
		cfg:      cfg,
		id:       cfg.runID(),
		kinds:    kindNames(handlers),
		handlers: handlers,
		loopCtx:  loopCtx,
		queue:    make(chan Job, cfg.Workers+cfg.BatchSize),
		results:  make(chan result, cfg.Workers+cfg.BatchSize),
		slot:     make(chan struct{}, 1),
		owned:    map[int64]*held{},
	}
	r.log = e.log.With("worker", r.id)
	r.workCtx, r.cancelWork = context.WithCancel(context.WithoutCancel(loopCtx))
	conn, err := r.connectListener(loopCtx)
	if err != nil {
		r.cancelWork()
		return nil, err
	}
	r.listener = conn
	return r, nil
}

// interrupt cancels the handlers still running; their jobs are handed back to the queue.
func (r *run) interrupt() { r.cancelWork() }

func (r *run) loop() {
	defer r.cancelWork()
	bgCtx, bgCancel := context.WithCancel(context.WithoutCancel(r.loopCtx))
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { defer bg.Done(); r.listen() }()
	go func() { defer bg.Done(); r.maintain(bgCtx) }()

	var workers sync.WaitGroup
	for range r.cfg.Workers {
		workers.Add(1)
		go func() { defer workers.Done(); r.execute() }()
	}
	completed := make(chan struct{})
	go func() { defer close(completed); r.complete() }()

	r.produce()
	workers.Wait()
	close(r.results)
	<-completed
	bgCancel()
	bg.Wait()
}

// produce is the claim loop. It claims again at once after a full batch; after a short one it
// sleeps until a wake-up (notification, Wake, a result that rescheduled work), the next known
// scheduled_for, or the poll fallback.
func (r *run) produce() {
	defer close(r.queue)
	ctx := r.loopCtx
	var (
		idle      bool
		wait      time.Duration
		lastClaim time.Time
		lastFull  bool
		failures  int
		rate      float64 // handler runs per second, smoothed
		rateAt    = time.Now()
		rateDone  int64
	)
	for {
		if idle && !r.sleep(ctx, wait) {
			return
		}
		idle = false
		if !lastFull {
			if d := claimCooldown - time.Since(lastClaim); d > 0 && !sleepCtx(ctx, d) {
				return
			}
		}
		limit, least := r.claimLimit(rate)
		if limit < least {
			select {
			case <-r.slot:
			case <-ctx.Done():
				return
			}
			lastFull = false
			continue
		}
		jobs, err := r.claim(ctx, limit)
		now := time.Now()
		lastClaim = now
		if dt := now.Sub(rateAt).Seconds(); dt >= 0.005 {
			d := r.done.Load()
			rate = 0.5*rate + 0.5*float64(d-rateDone)/dt
			rateDone, rateAt = d, now
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			wait = min(r.cfg.PollInterval, 100*time.Millisecond<<min(failures, 8))
			r.log.Error("claim jobs", "err", err, "retry_in", wait)
			idle, lastFull = true, false
			continue
		}
		failures = 0
		for _, j := range jobs {
			r.queue <- j // never blocks: the queue holds Workers+BatchSize, more than can be held
		}
		lastFull = len(jobs) == r.cfg.BatchSize
		if len(jobs) == limit {
			continue // more may be due
		}
		wait = r.untilNextDue(ctx)
		idle = true
	}
}

// claimLimit is how many jobs to claim now: enough to fill the free workers plus a prefetch of
// about prefetchHorizon of work at the measured rate, at most one batch. least is the smallest
// claim worth a statement while jobs are held: half the prefetch, so fast jobs are claimed in
// large batches while slow ones are topped up a few at a time and keep every worker busy.
func (r *run) claimLimit(rate float64) (limit, least int) {
	prefetch := min(max(int(rate*prefetchHorizon.Seconds()), 0), r.cfg.BatchSize)
	held := int(r.e.stats.inFlight.Load())
	limit = min(r.cfg.Workers+prefetch-held, r.cfg.BatchSize)
	if held == 0 {
		return limit, 1
	}
	return limit, max(1, prefetch/2)
}

func (r *run) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.e.wake:
		return true
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (r *run) claim(ctx context.Context, limit int) ([]Job, error) {
	ctx, cancel := context.WithTimeout(ctx, statementTimeout)
	defer cancel()
	r.e.stats.claimQueries.Add(1)
	defer func(t time.Time) { r.e.stats.claimNanos.Add(int64(time.Since(t))) }(time.Now())
	var jobs []Job
	err := r.inOrderedScan(ctx, claimSQL, []any{r.kinds, limit, r.id, r.cfg.Lease.Microseconds()}, func(rows pgx.Rows) error {
		jobs = make([]Job, 0, limit)
		for rows.Next() {
			var (
				j        Job
				periodUS *int64
			)
			if err := rows.Scan(&j.ID, &j.Kind, &j.Key, &j.Payload, &j.Attempt, &j.MaxAttempts,
				&j.ScheduledFor, &periodUS, &j.CreatedAt); err != nil {
				return fmt.Errorf("scan: %w", err)
			}
			if periodUS != nil {
				j.Period = time.Duration(*periodUS) * time.Microsecond
			}
			jobs = append(jobs, j)
		}
		return rows.Err()
	})
	// Jobs claimed but lost to an error are not in owned: nobody renews their leases and they are
	// rescued once those expire (or released when this run stops).
	if err != nil {
		return nil, fmt.Errorf("claim up to %d jobs: %w", limit, err)
	}
	r.ownedMu.Lock()
	for _, j := range jobs {
		r.owned[j.ID] = &held{}
	}
	r.ownedMu.Unlock()
	r.e.stats.inFlight.Add(int64(len(jobs)))
	r.e.stats.claimed.Add(int64(len(jobs)))
	return jobs, nil
}

// inOrderedScan runs query in one batch (one implicit transaction, one round trip) after
// ordered_scan.sql, which keeps the planner on jobs_due's ordered index scan, and hands its rows
// to read.
func (r *run) inOrderedScan(ctx context.Context, query string, args []any, read func(pgx.Rows) error) error {
	b := &pgx.Batch{}
	b.Queue(orderedScanSQL)
	b.Queue(query, args...)
	br := r.e.pool.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		_ = br.Close()
		return err
	}
	rows, err := br.Query()
	if err == nil {
		err = read(rows)
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	return errors.Join(err, br.Close())
}

// untilNextDue is how long produce may sleep: until the next queued job of its kinds is due, at
// most PollInterval.
func (r *run) untilNextDue(ctx context.Context) time.Duration {
	ctx, cancel := context.WithTimeout(ctx, statementTimeout)
	defer cancel()
	var secs *float64
	err := r.inOrderedScan(ctx, nextDueSQL, []any{r.kinds}, func(rows pgx.Rows) error {
		for rows.Next() {
			if err := rows.Scan(&secs); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("find next due job", "err", err)
		}
		return r.cfg.PollInterval
	}
	if secs == nil {
		return r.cfg.PollInterval
	}
	d := time.Duration(*secs * float64(time.Second))
	return min(max(d, time.Millisecond), r.cfg.PollInterval)
}

// execute runs handlers for queued jobs until the queue is closed. Once a stop is requested it
// hands back the jobs it has not started instead of running them.
func (r *run) execute() {
	for job := range r.queue {
		r.ownedMu.Lock()
		h := r.owned[job.ID]
		r.ownedMu.Unlock()
		res := result{id: job.ID, job: job, outcome: outcomeRelease, held: h}
		if r.loopCtx.Err() == nil {
			res = r.work(job, h)
		}
		r.results <- res
		r.e.stats.inFlight.Add(-1)
		r.done.Add(1)
		select {
		case r.slot <- struct{}{}:
		default:
		}
	}
}

func (r *run) work(job Job, h *held) result {
	res := result{id: job.ID, job: job, periodic: job.Period > 0, held: h}
	jobCtx, cancelJob := context.WithCancelCause(r.workCtx)
	defer cancelJob(nil)
	if h != nil {
		r.ownedMu.Lock()
		cancelled := h.cancelled
		h.cancel = cancelJob
		r.ownedMu.Unlock()
		if cancelled { // cancelled while waiting for a worker: never start it
			res.outcome = outcomeCancelled
			return res
		}
	}
	ctx := jobCtx
	if r.cfg.JobTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.cfg.JobTimeout)
		defer cancel()
	}
	res.ran, res.started = true, r.cfg.Now()
	err := call(ctx, r.handlers[job.Kind], job)
	res.finished = r.cfg.Now()
	switch {
	case errors.Is(context.Cause(jobCtx), errJobCancelled):
		// Whatever the handler returned, the job is cancelled: a run, not a failure.
		res.outcome = outcomeCancelled
		r.log.Info("job cancelled while running", "job_id", job.ID, "kind", job.Kind, "key", job.Key,
			"attempt", job.Attempt, "handler_err", errString(err))
	case err == nil:
		res.outcome = outcomeSucceeded
	case r.workCtx.Err() != nil:
		// Stop's deadline cut the handler short: not the job's fault, not an attempt.
		res.outcome = outcomeRelease
		r.interrupted.Store(true)
	case IsPermanent(err) || job.Attempt >= job.MaxAttempts:
		res.outcome = outcomeFailed
		res.err = truncate(err.Error())
		// A recurring job's occurrence fails; the job itself is queued for its next period.
		r.log.Error("job failed", "job_id", job.ID, "kind", job.Kind, "key", job.Key,
			"attempt", job.Attempt, "max_attempts", job.MaxAttempts, "permanent", IsPermanent(err),
			"recurring", job.Period > 0, "err", fmt.Errorf("job %d (%s): %w", job.ID, job.Kind, err))
	default:
		res.outcome = outcomeRetry
		res.delay = backoff(job.Attempt, r.cfg.BackoffBase, r.cfg.BackoffCap)
		res.err = truncate(err.Error())
		r.log.Warn("job attempt failed, will retry", "job_id", job.ID, "kind", job.Kind, "key", job.Key,
			"attempt", job.Attempt, "max_attempts", job.MaxAttempts, "retry_in", res.delay,
			"err", fmt.Errorf("job %d (%s): %w", job.ID, job.Kind, err))
	}
	return res
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// cancelHeld cancels held job id's handler, or marks it not to be started; false when this run
// does not hold the job.
func (r *run) cancelHeld(id int64) bool {
	r.ownedMu.Lock()
	defer r.ownedMu.Unlock()
	h := r.owned[id]
	if h == nil {
		return false
	}
	h.cancelled = true
	if h.cancel != nil {
		h.cancel(errJobCancelled)
	}
	return true
}

// call runs the handler, turning a panic into an error so one bad job cannot take the worker
// down with it.
func call(ctx context.Context, h Handler, job Job) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return h.Work(ctx, job)
}

// truncate makes an error text storable: valid UTF-8 without NUL bytes (Postgres rejects both,
// and one unstorable text would fail its whole batch of outcomes), at most maxErrorLen bytes.
func truncate(s string) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
	if len(s) <= maxErrorLen {
		return s
	}
	return strings.ToValidUTF8(s[:maxErrorLen], "") + "…"
}

// complete records outcomes in batches: it blocks for one, takes whatever else is waiting (up to
// BatchSize), and writes them in one statement. While a write is in flight the next batch
// gathers, so the batch size follows the load. When the results channel closes it hands back
// every job the run still holds.
func (r *run) complete() {
	batch := make([]result, 0, r.cfg.BatchSize)
	for closed := false; !closed; {
		res, ok := <-r.results
		if !ok {
			break
		}
		batch = append(batch[:0], res)
	gather:
		for len(batch) < r.cfg.BatchSize {
			select {
			case res, ok := <-r.results:
				if !ok {
					closed = true
					break gather
				}
				batch = append(batch, res)
			default:
				break gather
			}
		}
		r.flush(batch)
	}
	r.releaseAll()
}

func (r *run) flush(all []result) {
	// In id order: rows are locked in that order, as Cancel locks them.
	slices.SortFunc(all, func(a, b result) int { return cmp.Compare(a.id, b.id) })
	// Cancelled jobs' rows are cancelled already: there is nothing to record but their runs.
	batch := make([]result, 0, len(all))
	for _, res := range all {
		if res.outcome != outcomeCancelled {
			batch = append(batch, res)
		}
	}
	if c := len(all) - len(batch); c > 0 {
		r.e.stats.cancelled.Add(int64(c))
	}
	n := len(batch)
	ids := make([]int64, n)
	outcomes := make([]string, n)
	delays := make([]int64, n)
	errs := make([]string, n)
	attempts := make([]int32, n)
	dues := make([]time.Time, n)
	rescheduled, occurrences := false, false
	for i, res := range batch {
		ids[i], outcomes[i], delays[i], errs[i] = res.id, string(res.outcome), res.delay.Microseconds(), res.err
		attempts[i] = int32(res.job.Attempt)
		dues[i] = res.job.ScheduledFor
		rescheduled = rescheduled || res.outcome == outcomeRetry ||
			(res.periodic && (res.outcome == outcomeSucceeded || res.outcome == outcomeFailed))
		occurrences = occurrences || (res.periodic && res.outcome == outcomeFailed)
	}
	query := completeSQL
	if occurrences {
		query = completeFailedOccurrencesSQL
	}
	var recorded map[outcome]applied
	for attempt := 1; n > 0; attempt++ {
		var err error
		recorded, err = r.record(query, ids, outcomes, delays, errs, attempts, dues)
		if err == nil {
			var applied int64
			for o, rec := range recorded {
				c := int64(len(rec.ids))
				applied += c
				switch o {
				case outcomeSucceeded:
					r.e.stats.succeeded.Add(c)
				case outcomeRetry:
					r.e.stats.retried.Add(c)
				case outcomeFailed:
					r.e.stats.failed.Add(c)
				case outcomeRelease:
					r.e.stats.released.Add(c)
				}
			}
			r.e.stats.stale.Add(int64(n) - applied)
			r.countFailures(batch, recorded)
			r.report(batch, recorded)
			break
		}
		// While running, keep trying: the executors wait meanwhile, so nothing new is claimed.
		// When stopping, give up after a few tries; the leases return these jobs to the queue.
		if r.loopCtx.Err() != nil && attempt >= 3 {
			r.log.Error("record job outcomes; giving up, their leases will expire", "jobs", n, "err", err)
			break
		}
		delay := min(5*time.Second, 100*time.Millisecond<<min(attempt, 6))
		r.log.Warn("record job outcomes", "jobs", n, "err", err, "retry_in", delay)
		time.Sleep(delay)
	}
	r.recordRuns(all, recorded)
	r.ownedMu.Lock()
	for _, res := range all {
		// Only this claim's entry: the job may have been claimed again since it was recorded.
		if h, ok := r.owned[res.id]; ok && h == res.held {
			delete(r.owned, res.id)
		}
	}
	r.ownedMu.Unlock()
	if rescheduled {
		r.e.Wake() // the claim loop re-reads the next due time
	}
}

// applied is what complete.sql recorded for one outcome: the jobs it applied to, in id order,
// and each one's consecutive failures after it.
type applied struct {
	ids      []int64
	failures []int32
}

// failuresOf returns the consecutive failures recorded for job id, and whether id was recorded.
func (a applied) failuresOf(id int64) (int, bool) {
	i, ok := slices.BinarySearch(a.ids, id)
	if !ok || i >= len(a.failures) {
		return 0, ok
	}
	return int(a.failures[i]), true
}

// report hands the recorded outcomes (not the stale ones, nor releases) to Config.OnOutcome.
func (r *run) report(batch []result, recorded map[outcome]applied) {
	if r.cfg.OnOutcome == nil {
		return
	}
	out := make([]Outcome, 0, len(batch))
	for _, res := range batch {
		if res.outcome == outcomeRelease {
			continue
		}
		failures, ok := recorded[res.outcome].failuresOf(res.id)
		if !ok {
			continue
		}
		status := map[outcome]Status{outcomeSucceeded: StatusSucceeded, outcomeRetry: StatusQueued, outcomeFailed: StatusFailed}[res.outcome]
		out = append(out, Outcome{Job: res.job, Status: status, Err: res.err, ConsecutiveFailures: failures})
	}
	if len(out) > 0 {
		r.cfg.OnOutcome(out)
	}
}

// countFailures keeps the per-kind streaks of failed jobs (cp_jobs_consecutive_failures) and
// warns when a kind's streak, or a recurring job's own run of failed occurrences, reaches
// Config.FailureWarnAfter.
func (r *run) countFailures(batch []result, recorded map[outcome]applied) {
	for _, res := range batch {
		switch res.outcome {
		case outcomeSucceeded:
			if _, ok := recorded[outcomeSucceeded].failuresOf(res.id); ok {
				r.e.streaks.succeeded(res.job.Kind)
			}
		case outcomeFailed:
			failures, ok := recorded[outcomeFailed].failuresOf(res.id)
			if !ok {
				continue
			}
			r.failed(res.job.Kind, res.job.ID, res.job.Key, res.periodic, failures)
		}
	}
}

// failed counts one failed job (all attempts used) of kind.
func (r *run) failed(kind Kind, id int64, key string, periodic bool, failures int) {
	if streak := r.e.streaks.failed(kind); streak == int64(r.cfg.FailureWarnAfter) {
		r.log.Warn("jobs of a kind keep failing", "kind", kind, "consecutive_failures", streak,
			"last_job_id", id, "last_key", key)
	}
	if periodic && failures == r.cfg.FailureWarnAfter {
		r.log.Warn("recurring job keeps failing; its next occurrence is queued", "job_id", id, "kind", kind,
			"key", key, "consecutive_failures", failures)
	}
}

func (r *run) record(query string, ids []int64, outcomes []string, delays []int64, errs []string, attempts []int32, dues []time.Time) (map[outcome]applied, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.loopCtx), statementTimeout)
	defer cancel()
	r.e.stats.completeQueries.Add(1)
	defer func(t time.Time) { r.e.stats.completeNanos.Add(int64(time.Since(t))) }(time.Now())
	rows, err := r.e.pool.Query(ctx, query, ids, outcomes, delays, errs, r.id, attempts, dues)
	if err != nil {
		return nil, fmt.Errorf("record %d outcomes: %w", len(ids), err)
	}
	recorded := map[outcome]applied{}
	var (
		o        string
		applies  []int64
		failures []int32
	)
	_, err = pgx.ForEachRow(rows, []any{&o, &applies, &failures}, func() error {
		// The scan may reuse the slices for the next row.
		recorded[outcome(o)] = applied{ids: slices.Clone(applies), failures: slices.Clone(failures)}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("record %d outcomes: %w", len(ids), err)
	}
	return recorded, nil
}

// recordRuns writes one ops.job_run row per handler run in the batch: its outcome as recorded,
// or, when the outcome was dropped as stale, cancelled or abandoned (record_runs.sql tells them
// apart). A failure is logged and counted, never retried: the runs are history, and the outcomes
// are recorded already.
func (r *run) recordRuns(batch []result, recorded map[outcome]applied) {
	var (
		ids                       []int64
		kinds, names, stats, errs []string
		attempts                  []int32
		started, finished         []time.Time
	)
	for _, res := range batch {
		if !res.ran {
			continue
		}
		status := "stale"
		if res.outcome == outcomeCancelled {
			status = "cancelled"
		} else if _, ok := recorded[res.outcome].failuresOf(res.id); ok {
			status = map[outcome]string{outcomeSucceeded: "succeeded", outcomeRetry: "retry",
				outcomeFailed: "failed", outcomeRelease: "released"}[res.outcome]
		}
		ids = append(ids, res.id)
		kinds = append(kinds, string(res.job.Kind))
		names = append(names, res.job.Key)
		attempts = append(attempts, int32(res.job.Attempt))
		stats = append(stats, status)
		started = append(started, res.started)
		finished = append(finished, res.finished)
		errs = append(errs, res.err)
	}
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.loopCtx), statementTimeout)
	defer cancel()
	if _, err := r.e.pool.Exec(ctx, recordRunsSQL, ids, kinds, names, attempts, stats, started, finished, errs,
		r.cfg.SessionID, r.id); err != nil {
		r.e.stats.runRecordErrors.Add(1)
		r.log.Error("record job runs in ops.job_run", "runs", len(ids), "err", err)
	}
}

// releaseAll hands back every job still running under this run's identity: outcomes that could
// not be written, and claims whose results were lost.
func (r *run) releaseAll() {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.loopCtx), 10*time.Second)
	defer cancel()
	rows, err := r.e.pool.Query(ctx, releaseSQL, r.id)
	var kinds []Kind
	if err == nil {
		kinds, err = pgx.CollectRows(rows, pgx.RowTo[Kind])
	}
	if err != nil {
		r.log.Error("release held jobs at stop; their leases will expire", "err", err)
		return
	}
	if n := int64(len(kinds)); n > 0 {
		r.e.stats.released.Add(n)
		r.log.Info("released held jobs at stop", "jobs", n)
		r.notify(ctx, kinds) // other engines take them now, not at their next poll
	}
}

// maintain renews the leases of held jobs every Lease/3 (and cancels the handlers of those an
// operator cancelled), rescues expired ones every Lease/2 (and once at start, for jobs left by
// this worker's previous life), and prunes past the retention every PruneEvery (and at start).
func (r *run) maintain(ctx context.Context) {
	heartbeat := time.NewTicker(r.cfg.Lease / 3)
	defer heartbeat.Stop()
	rescue := time.NewTicker(r.cfg.Lease / 2)
	defer rescue.Stop()
	prune := time.NewTicker(r.cfg.PruneEvery)
	defer prune.Stop()
	r.rescue(ctx)
	r.prune(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-heartbeat.C:
			r.heartbeat(ctx)
		case <-rescue.C:
			r.rescue(ctx)
		case <-prune.C:
			r.prune(ctx)
		}
	}
}

func (r *run) heartbeat(ctx context.Context) {
	r.ownedMu.Lock()
	ids := make([]int64, 0, len(r.owned))
	for id := range r.owned {
		ids = append(ids, id)
	}
	r.ownedMu.Unlock()
	if len(ids) == 0 {
		return
	}
	// Well inside the lease: a renewal stuck behind a busy pool must fail and be retried at the
	// next beat, not outlive the lease it renews.
	ctx, cancel := context.WithTimeout(ctx, min(statementTimeout, r.cfg.Lease/3))
	defer cancel()
	if _, err := r.e.pool.Exec(ctx, heartbeatSQL, ids, r.id, r.cfg.Lease.Microseconds()); err != nil && ctx.Err() == nil {
		r.log.Warn("renew job leases", "jobs", len(ids), "err", err)
	}
	r.cancelCancelled(ctx, ids)
}

// cancelCancelled cancels the handlers of held jobs that were cancelled: the fallback for a
// notification the listener missed (it was reconnecting).
func (r *run) cancelCancelled(ctx context.Context, ids []int64) {
	rows, err := r.e.pool.Query(ctx, cancelledHeldSQL, ids)
	var cancelled []int64
	if err == nil {
		cancelled, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	}
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("look for cancelled held jobs", "jobs", len(ids), "err", err)
		}
		return
	}
	for _, id := range cancelled {
		r.cancelHeld(id)
	}
}

// prune deletes finished jobs and job runs older than the retention.
func (r *run) prune(ctx context.Context) {
	if r.cfg.Retention < 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*statementTimeout)
	defer cancel()
	before := r.cfg.Now().Add(-r.cfg.Retention)
	jobsPruned, err := Prune(ctx, r.e.pool, before)
	r.e.stats.prunedJobs.Add(jobsPruned)
	var runs int64
	if err == nil {
		runs, err = PruneRuns(ctx, r.e.pool, before)
		r.e.stats.prunedRuns.Add(runs)
	}
	if err != nil {
		if ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			r.e.stats.pruneErrors.Add(1)
			r.log.Error("prune finished jobs and runs past the retention", "retention", r.cfg.Retention, "err", err)
		}
		return
	}
	if jobsPruned > 0 || runs > 0 {
		r.log.Info("pruned finished jobs and runs past the retention", "retention", r.cfg.Retention,
			"before", before, "jobs", jobsPruned, "runs", runs)
	}
}

func (r *run) rescue(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, statementTimeout)
	defer cancel()
	rows, err := r.e.pool.Query(ctx, rescueSQL)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("rescue expired jobs", "err", err)
		}
		return
	}
	var (
		id        int64
		kind      Kind
		key       string
		status    Status
		failures  int
		requeued  int64
		failedIDs []int64
		kinds     []Kind
	)
	tag, err := pgx.ForEachRow(rows, []any{&id, &kind, &key, &status, &failures}, func() error {
		if status == StatusFailed {
			failedIDs = append(failedIDs, id)
			r.log.Error("job failed: lease expired on its last attempt", "job_id", id, "kind", kind, "key", key,
				"consecutive_failures", failures)
			r.e.stats.failed.Add(1)
			r.failed(kind, id, key, failures > 0, failures)
		} else {
			requeued++
			kinds = append(kinds, kind)
		}
		return nil
	})
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("rescue expired jobs", "err", err)
		}
		return
	}
	n := tag.RowsAffected()
	if n == 0 {
		return
	}
	r.e.stats.rescued.Add(n)
	r.log.Warn("rescued jobs with expired leases", "requeued", requeued, "failed", len(failedIDs))
	r.e.Wake() // requeued work, or recurring jobs queued for their next period
	if requeued > 0 {
		r.notify(ctx, kinds)
	}
}

// notify wakes the other engines for requeued work of kinds.
func (r *run) notify(ctx context.Context, kinds []Kind) {
	names := make([]string, 0, len(kinds))
	for _, k := range kinds {
		if !slices.Contains(names, string(k)) {
			names = append(names, string(k))
		}
	}
	if _, err := r.e.pool.Exec(ctx, notifySQL, strings.Join(names, ",")); err != nil && ctx.Err() == nil {
		r.log.Warn("notify requeued jobs", "kinds", names, "err", err)
	}
}

// listen waits for notifications of inserted work on a dedicated connection and wakes produce
// for the kinds it handles; notifications of cancelled jobs cancel the handlers of those it holds. A lost connection is re-established with backoff; produce is woken
// after each reconnect, as notifications sent meanwhile are lost.
func (r *run) listen() {
	ctx := r.loopCtx
	conn := r.listener
	defer func() {
		if conn != nil {
			closeConn(conn)
		}
	}()
	failures := 0
	for {
		if conn == nil {
			if !sleepCtx(ctx, min(r.cfg.PollInterval, 100*time.Millisecond<<min(failures, 8))) {
				return
			}
			c, err := r.connectListener(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				failures++
				r.log.Warn("reconnect job listener", "err", err)
				continue
			}
			conn, failures = c, 0
			r.e.Wake()
		}
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.log.Warn("job listener lost its connection", "err", err)
			closeConn(conn)
			conn = nil
			failures++
			continue
		}
		if n.Channel == cancelChannel {
			if id, err := strconv.ParseInt(n.Payload, 10, 64); err == nil {
				r.cancelHeld(id)
			}
			continue
		}
		if r.handles(n.Payload) {
			r.e.Wake()
		}
	}
}

func (r *run) connectListener(ctx context.Context) (*pgx.Conn, error) {
	cfg := r.e.pool.Config().ConnConfig.Copy()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("jobs: connect listener: %w", err)
	}
	for _, ch := range []string{notifyChannel, cancelChannel} {
		if _, err := conn.Exec(ctx, "LISTEN "+ch); err != nil {
			closeConn(conn)
			return nil, fmt.Errorf("jobs: listen %s: %w", ch, err)
		}
	}
	return conn, nil
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

// handles reports whether a notification payload (comma-separated kinds) names a kind this run
// has a handler for.
func (r *run) handles(payload string) bool {
	for k := range strings.SplitSeq(payload, ",") {
		if _, ok := r.handlers[Kind(k)]; ok {
			return true
		}
	}
	return false
}
