package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// KindOneShot is the ops.job_run kind of one-shot command runs (`cinimport once`, `seeder once`).
const KindOneShot = "oneshot"

// OneShotRun is one run of a one-shot command, recorded in ops.job_run as the engine records job
// runs: a row with status running at its start, succeeded or failed (with the error) at its end.
// A process that dies in between leaves the row running, with no finish time: visible, not lost.
type OneShotRun struct {
	q   Querier
	id  int64
	now func() time.Time
}

// StartOneShot records the start of one-shot command name (the command line, e.g.
// "cinimport once -full") run by session sessionID (its ops.session_log id; 0: unknown). now is
// the clock; nil is time.Now.
func StartOneShot(ctx context.Context, q Querier, name string, sessionID int64, now func() time.Time) (*OneShotRun, error) {
	if now == nil {
		now = time.Now
	}
	r := &OneShotRun{q: q, now: now}
	if err := q.QueryRow(ctx, oneShotStartSQL, name, sessionID, now()).Scan(&r.id); err != nil {
		return nil, fmt.Errorf("record start of %q in ops.job_run: %w", name, err)
	}
	return r, nil
}

// ID is the run's ops.job_run id.
func (r *OneShotRun) ID() int64 { return r.id }

// Finish records the run's end: succeeded when runErr is nil, else failed with its text. It
// returns an error only when the row could not be written.
func (r *OneShotRun) Finish(ctx context.Context, runErr error) error {
	status, msg := "succeeded", ""
	if runErr != nil {
		status, msg = "failed", truncate(runErr.Error())
	}
	if _, err := r.q.Exec(ctx, oneShotFinishSQL, r.id, r.now(), status, msg); err != nil {
		return fmt.Errorf("record end of one-shot run %d in ops.job_run: %w", r.id, err)
	}
	return nil
}

// RunOneShot runs fn as one-shot command name and records the run in ops.job_run (StartOneShot,
// Finish). A record that cannot be written is logged and does not stop or fail the run: the
// run's own work and its exit status matter more than its history row.
func RunOneShot(ctx context.Context, q Querier, name string, sessionID int64, log *slog.Logger, fn func(context.Context) error) error {
	rec, err := StartOneShot(ctx, q, name, sessionID, nil)
	if err != nil {
		log.Error("one-shot run not recorded", "run", name, "err", err)
	}
	runErr := fn(ctx)
	if rec != nil {
		// The run's end is recorded even when it ended because ctx was cancelled (a signal).
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := rec.Finish(fctx, runErr); err != nil {
			log.Error("one-shot run's end not recorded", "run", name, "job_run_id", rec.ID(), "err", err)
		}
	}
	return runErr
}
