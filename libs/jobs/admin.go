package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Operator actions on single jobs and kinds: retry, cancel, prune, pause and resume. cpctl jobs
// and the web console call them; they work through any Querier, inside a caller's transaction too.

// Errors of the operator actions. Match them with errors.Is; [LiveJobError] also carries the id.
var (
	// ErrJobNotFound: no job has the id.
	ErrJobNotFound = errors.New("jobs: no such job")
	// ErrNotRetryable: the job is not failed or cancelled (it is queued, running or succeeded).
	ErrNotRetryable = errors.New("jobs: job is not failed or cancelled")
	// ErrNotLive: the job is not queued or running, so there is nothing to cancel.
	ErrNotLive = errors.New("jobs: job is not queued or running")
	// ErrLiveJobExists: another job of the same kind and key is queued or running. The live-key
	// index allows only one, so the retry would duplicate that work; the live job does it.
	ErrLiveJobExists = errors.New("jobs: the same work is already queued or running")
)

// LiveJobError is the error Retry returns when another job holds the work's live key.
type LiveJobError struct {
	// ID is the job retried; Live the queued or running job holding its key (0 when it finished
	// before it could be read).
	ID, Live int64
}

func (e *LiveJobError) Error() string {
	if e.Live == 0 {
		return fmt.Sprintf("retry job %d: %v", e.ID, ErrLiveJobExists)
	}
	return fmt.Sprintf("retry job %d: %v as job %d", e.ID, ErrLiveJobExists, e.Live)
}

// Is makes errors.Is(err, ErrLiveJobExists) match.
func (e *LiveJobError) Is(target error) bool { return target == ErrLiveJobExists }

// Retry puts failed or cancelled job id back in the queue, due now, with a fresh attempt budget;
// engines are notified at once. Its last error stays on the row until a run succeeds.
//
// At most one job per (kind, key) may be queued or running (the live-key index): when another job
// holds the key, for example the live recurring job a failed occurrence belongs to, nothing
// changes and Retry returns a [*LiveJobError] naming it (errors.Is ErrLiveJobExists): that job
// already does the work. A queued, running or succeeded job gives ErrNotRetryable.
func Retry(ctx context.Context, q Querier, id int64) error {
	var (
		before   Status
		live     *int64
		retried  bool
		notified int64
	)
	err := q.QueryRow(ctx, retrySQL, id).Scan(&before, &live, &retried, &notified)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("retry job %d: %w", id, ErrJobNotFound)
	case isUniqueViolation(err):
		// A job of the same key was enqueued between the check and the update.
		liveID, _ := liveIDOf(ctx, q, id)
		return &LiveJobError{ID: id, Live: liveID}
	case err != nil:
		return fmt.Errorf("retry job %d: %w", id, err)
	case live != nil:
		return &LiveJobError{ID: id, Live: *live}
	case !retried:
		return fmt.Errorf("retry job %d: %w (it is %s)", id, ErrNotRetryable, before)
	}
	return nil
}

func liveIDOf(ctx context.Context, q Querier, id int64) (int64, error) {
	var live int64
	err := q.QueryRow(ctx, `SELECT l.id FROM ingest.jobs j JOIN ingest.jobs l USING (kind, dedup_key)
		WHERE j.id = $1 AND l.status IN ('queued', 'running') AND l.id <> j.id`, id).Scan(&live)
	return live, err
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// RetryResult says what RetryFailed did.
type RetryResult struct {
	// Retried counts failed jobs put back in the queue.
	Retried int64
	// Skipped counts failed jobs left failed because their work is queued or running already:
	// another job holds their key (a failed occurrence of a recurring job, whose job is queued for
	// its next period; an older failure of work retried or re-enqueued since).
	Skipped int64
}

// RetryBatchSize is how many failed jobs one statement of RetryFailed looks at.
const RetryBatchSize = 1000

// RetryFailed puts every failed job of kind back in the queue, as [Retry] does, and returns how
// many. Per key only the newest failed job is retried; a failed job whose key a live job holds
// stays failed (RetryFailedEach reports those as skipped). It works in batches of
// RetryBatchSize, each its own statement, so it can be interrupted and run again.
func RetryFailed(ctx context.Context, q Querier, kind Kind) (int64, error) {
	res, err := RetryFailedEach(ctx, q, kind, nil)
	return res.Retried, err
}

// RetryFailedEach is RetryFailed reporting, after every batch, the failed jobs looked at so far
// (retried plus skipped) to progress, which may be nil.
func RetryFailedEach(ctx context.Context, q Querier, kind Kind, progress func(done int64)) (RetryResult, error) {
	var res RetryResult
	if !kind.Valid() {
		return res, fmt.Errorf("retry failed jobs: %w: unknown kind %q", ErrInvalidJob, kind)
	}
	below := int64(1<<63 - 1)
	for {
		var seen, retried, lowest, notified int64
		err := q.QueryRow(ctx, retryFailedSQL, string(kind), below, RetryBatchSize).Scan(&seen, &retried, &lowest, &notified)
		if isUniqueViolation(err) {
			// A job of a key in the batch was enqueued meanwhile: that batch again sees it live.
			continue
		}
		if err != nil {
			return res, fmt.Errorf("retry failed %s jobs below id %d: %w", kind, below, err)
		}
		res.Retried += retried
		res.Skipped += seen - retried
		if progress != nil {
			progress(res.Retried + res.Skipped)
		}
		if seen < RetryBatchSize {
			return res, nil
		}
		below = lowest
	}
}

// CancelResult says what Cancel found.
type CancelResult struct {
	// Was is the job's status before: queued or running.
	Was Status
}

// Cancel cancels job id. A queued job is marked cancelled and never claimed. A running job is
// marked cancelled and its handler's context is cancelled in whichever engine runs it (told by
// a notification on the ingest_jobs_cancel channel, or, if that is lost, at its next lease
// renewal, within Lease/3); the run is recorded in ops.job_run as cancelled, not failed, and a
// cancelled recurring job is not rescheduled. A finished job gives ErrNotLive.
func Cancel(ctx context.Context, q Querier, id int64) (CancelResult, error) {
	var (
		before              Status
		cancelled, notified int64
	)
	err := q.QueryRow(ctx, cancelJobSQL, id).Scan(&before, &cancelled, &notified)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return CancelResult{}, fmt.Errorf("cancel job %d: %w", id, ErrJobNotFound)
	case err != nil:
		return CancelResult{}, fmt.Errorf("cancel job %d: %w", id, err)
	case cancelled == 0:
		return CancelResult{Was: before}, fmt.Errorf("cancel job %d: %w (it is %s)", id, ErrNotLive, before)
	}
	return CancelResult{Was: before}, nil
}

// pruneBatch is how many rows one prune statement deletes.
const pruneBatch = 10000

// Prune deletes finished jobs (succeeded, failed or cancelled) that finished before before, and
// returns how many. Periodic jobs are one row for life and are never pruned while live. It
// deletes in batches, each its own statement. Engines prune on their own (Config.Retention).
func Prune(ctx context.Context, q Querier, before time.Time) (int64, error) {
	return pruneLoop(ctx, q, pruneSQL, before, "jobs finished")
}

// PruneRuns deletes the ops.job_run rows of runs started before before, and returns how many.
func PruneRuns(ctx context.Context, q Querier, before time.Time) (int64, error) {
	return pruneLoop(ctx, q, pruneRunsSQL, before, "job runs started")
}

func pruneLoop(ctx context.Context, q Querier, query string, before time.Time, what string) (int64, error) {
	var total int64
	for {
		tag, err := q.Exec(ctx, query, before, pruneBatch)
		if err != nil {
			return total, fmt.Errorf("prune %s before %s: %w", what, before.Format(time.RFC3339), err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < pruneBatch {
			return total, nil
		}
	}
}

// PausedByOperator is the source of a pause made by hand (cpctl jobs pause); a freeze pauses
// under its flag key ("freeze", "freeze.straux").
const PausedByOperator = "operator"

// KindPause is one pause of a kind. A kind is paused while it has at least one.
type KindPause struct {
	Kind Kind `json:"kind"`
	// Source is PausedByOperator or the freeze flag key whose freeze paused the kind.
	Source   string    `json:"source"`
	Reason   string    `json:"reason"`
	PausedAt time.Time `json:"paused_at"`
	PausedBy string    `json:"paused_by"`
}

// Pause pauses kind by hand: from the commit on, no engine claims a job of it until it is
// resumed. Jobs claimed before run to their end (cancel them to stop them). It reports false
// when the operator had paused the kind already.
func Pause(ctx context.Context, q Querier, kind Kind, reason string) (bool, error) {
	paused, err := PauseFor(ctx, q, PausedByOperator, []Kind{kind}, reason)
	return len(paused) == 1, err
}

// Resume lifts the operator's pause of kind and returns the pauses left on it (those of
// freezes, lifted by unfreezing): the kind is claimed again only when none is left. It reports
// whether there was an operator's pause to lift.
func Resume(ctx context.Context, q Querier, kind Kind) (lifted bool, left []KindPause, err error) {
	kinds, err := ResumeFor(ctx, q, PausedByOperator, []Kind{kind})
	if err != nil {
		return false, nil, err
	}
	all, err := Paused(ctx, q)
	if err != nil {
		return len(kinds) == 1, nil, err
	}
	for _, p := range all {
		if p.Kind == kind {
			left = append(left, p)
		}
	}
	return len(kinds) == 1, left, nil
}

// PauseFor pauses kinds on behalf of source (PausedByOperator or a freeze flag key) and returns
// the kinds it paused: a kind source had paused already is left as it was, with its reason.
func PauseFor(ctx context.Context, q Querier, source string, kinds []Kind, reason string) ([]Kind, error) {
	names, err := kindStrings(kinds)
	if err != nil {
		return nil, fmt.Errorf("pause kinds for %s: %w", source, err)
	}
	rows, err := q.Query(ctx, pauseSQL, names, source, reason)
	if err != nil {
		return nil, fmt.Errorf("pause kinds %v for %s: %w", kinds, source, err)
	}
	paused, err := pgx.CollectRows(rows, pgx.RowTo[Kind])
	if err != nil {
		return nil, fmt.Errorf("pause kinds %v for %s: %w", kinds, source, err)
	}
	return paused, nil
}

// ResumeFor lifts source's pauses of kinds (of every kind when kinds is nil) and returns the
// kinds lifted. Engines are woken for them; a kind another source paused stays paused.
func ResumeFor(ctx context.Context, q Querier, source string, kinds []Kind) ([]Kind, error) {
	var names []string
	if kinds != nil {
		var err error
		if names, err = kindStrings(kinds); err != nil {
			return nil, fmt.Errorf("resume kinds for %s: %w", source, err)
		}
	}
	rows, err := q.Query(ctx, resumeSQL, names, source)
	if err != nil {
		return nil, fmt.Errorf("resume kinds %v for %s: %w", kinds, source, err)
	}
	var (
		lifted []Kind
		kind   Kind
		n      int64
	)
	if _, err := pgx.ForEachRow(rows, []any{&kind, &n}, func() error {
		lifted = append(lifted, kind)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("resume kinds %v for %s: %w", kinds, source, err)
	}
	return lifted, nil
}

// Paused returns every pause, by kind and source.
func Paused(ctx context.Context, q Querier) ([]KindPause, error) {
	rows, err := q.Query(ctx, pausedSQL)
	if err != nil {
		return nil, fmt.Errorf("list paused kinds: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[KindPause])
	if err != nil {
		return nil, fmt.Errorf("list paused kinds: %w", err)
	}
	return out, nil
}

func kindStrings(kinds []Kind) ([]string, error) {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		if !k.Valid() {
			return nil, fmt.Errorf("%w: unknown kind %q", ErrInvalidJob, k)
		}
		out[i] = string(k)
	}
	return out, nil
}
