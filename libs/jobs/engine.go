package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"cryptopill.dev/jobs/libs/startstop"
)

// Engine works jobs from ingest.jobs with the handlers registered for their kinds. Any number of
// engines, in one process or many, can work the same table. Create one with [New].
type Engine struct {
	pool *pgxpool.Pool
	cfg  Config
	log  *slog.Logger

	base startstop.Base

	mu       sync.Mutex // guards handlers and cur; held for the whole of Start
	handlers map[Kind]Handler
	cur      *run // the current run; nil when not started

	wake    chan struct{} // capacity 1: a pending wake-up for the claim loop
	stats   counters
	streaks streaks
}

// Errors of the engine's lifecycle.
var (
	ErrNoHandlers = errors.New("jobs: no handler registered")
	ErrRunning    = errors.New("jobs: engine is running")
)

// New returns an engine over pool, with cfg's zero fields set to their defaults. It does not
// start it.
func New(pool *pgxpool.Pool, cfg Config) (*Engine, error) {
	if pool == nil {
		return nil, errors.New("jobs: nil pool")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Engine{
		pool:     pool,
		cfg:      cfg,
		log:      cfg.Logger.With("component", "jobs"),
		handlers: map[Kind]Handler{},
		wake:     make(chan struct{}, 1),
	}, nil
}

// Config returns the engine's configuration with defaults applied.
func (e *Engine) Config() Config { return e.cfg }

// Register sets the handler for kind. Register before Start: a running engine's handlers are
// fixed. An engine claims only jobs of kinds it has a handler for.
func (e *Engine) Register(kind Kind, h Handler) error {
	if !kind.Valid() {
		return fmt.Errorf("jobs: register: unknown kind %q", kind)
	}
	if h == nil {
		return fmt.Errorf("jobs: register %s: nil handler", kind)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cur != nil {
		return fmt.Errorf("jobs: register %s: %w", kind, ErrRunning)
	}
	if _, dup := e.handlers[kind]; dup {
		return fmt.Errorf("jobs: register %s: a handler is already registered", kind)
	}
	e.handlers[kind] = h
	e.streaks.init([]Kind{kind}) // its failure gauge reads 0, not absent, until a job fails
	return nil
}

// Start connects the notification listener and starts claiming and working jobs in the
// background. It returns startstop.ErrAlreadyStarted if the engine is running. Values of ctx are
// passed on to handlers; cancelling ctx stops the engine as Stop with no deadline would (prefer
// Stop, which bounds the wait).
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.handlers) == 0 {
		return ErrNoHandlers
	}
	loopCtx, ok, stopped := e.base.StartInit(ctx)
	if !ok {
		return startstop.ErrAlreadyStarted
	}
	r, err := newRun(loopCtx, e, maps.Clone(e.handlers))
	if err != nil {
		stopped()
		e.base.Stop()
		return err
	}
	// Drop a wake-up left from an earlier run: the new run claims first thing anyway.
	select {
	case <-e.wake:
	default:
	}
	e.cur = r
	go func() {
		defer stopped()
		r.loop()
	}()
	return nil
}

// Stop stops claiming, lets the handlers in flight finish until ctx is done, then cancels the
// rest and hands their jobs back to the queue (claimed jobs that had not started are handed back
// at once). It returns when every goroutine of the engine has exited: nil if all in-flight work
// finished, an error wrapping ctx.Err() if some was interrupted. A handler that ignores its
// context's cancellation delays Stop until it returns. Stop is safe to call concurrently and on
// a stopped engine; the engine can be started again afterwards.
func (e *Engine) Stop(ctx context.Context) error {
	e.mu.Lock()
	r := e.cur
	e.mu.Unlock()
	if r == nil {
		return nil
	}
	// Stop's deadline cuts the wait for handlers short; the watcher is waited for, so Stop leaves
	// no goroutine behind.
	finished, watched := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-ctx.Done():
			r.interrupt()
		case <-finished:
		}
	}()
	e.base.Stop()
	close(finished)
	<-watched
	e.mu.Lock()
	if e.cur == r {
		e.cur = nil
	}
	e.mu.Unlock()
	if r.interrupted.Load() {
		return fmt.Errorf("jobs: stop: in-flight jobs interrupted and released: %w", context.Cause(ctx))
	}
	return nil
}

// Wake makes the engine look for due work now. Services call it on tick events; inserts are
// announced by notification already. Cheap and non-blocking; a no-op on a stopped engine.
func (e *Engine) Wake() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Stats counts what the engine has done since New, by outcome. Outcomes are counted when they
// are recorded in the database.
type Stats struct {
	// Claimed counts jobs taken by claim statements.
	Claimed int64
	// Succeeded counts runs whose handler returned nil (periodic jobs are rescheduled).
	Succeeded int64
	// Retried counts failed attempts scheduled for another try.
	Retried int64
	// Failed counts jobs failed for good (last attempt, or a Permanent error).
	Failed int64
	// Released counts jobs handed back to the queue unfinished (at Stop).
	Released int64
	// Stale counts outcomes dropped because the job was no longer this engine's: cancelled, or
	// rescued after a lost lease.
	Stale int64
	// Rescued counts jobs with expired leases this engine recovered (requeued or failed).
	Rescued int64
	// Cancelled counts held jobs an operator cancelled (Cancel): handlers whose context was
	// cancelled, and claimed jobs never started.
	Cancelled int64
	// PrunedJobs and PrunedRuns count finished jobs and ops.job_run rows deleted past the
	// retention; PruneErrors the prunes that failed.
	PrunedJobs, PrunedRuns, PruneErrors int64
	// RunRecordErrors counts batches of runs that could not be written to ops.job_run.
	RunRecordErrors int64
	// InFlight is the number of jobs claimed and not yet finished by a handler, now.
	InFlight int64
	// ConsecutiveFailures is, per kind this engine has handled or has a handler for, the number
	// of jobs of the kind it recorded as failed (all attempts used; for a periodic job, one
	// failed occurrence) since it last recorded a success of the kind.
	ConsecutiveFailures map[Kind]int64
	// ClaimQueries and CompleteQueries count the statements that claimed and recorded jobs;
	// ClaimTime and CompleteTime are the time spent in them.
	ClaimQueries    int64
	CompleteQueries int64
	ClaimTime       time.Duration
	CompleteTime    time.Duration
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	s := Stats{
		Claimed:         e.stats.claimed.Load(),
		Succeeded:       e.stats.succeeded.Load(),
		Retried:         e.stats.retried.Load(),
		Failed:          e.stats.failed.Load(),
		Released:        e.stats.released.Load(),
		Stale:           e.stats.stale.Load(),
		Rescued:         e.stats.rescued.Load(),
		Cancelled:       e.stats.cancelled.Load(),
		PrunedJobs:      e.stats.prunedJobs.Load(),
		PrunedRuns:      e.stats.prunedRuns.Load(),
		PruneErrors:     e.stats.pruneErrors.Load(),
		RunRecordErrors: e.stats.runRecordErrors.Load(),
		ClaimQueries:    e.stats.claimQueries.Load(),
		CompleteQueries: e.stats.completeQueries.Load(),
		ClaimTime:       time.Duration(e.stats.claimNanos.Load()),
		CompleteTime:    time.Duration(e.stats.completeNanos.Load()),
	}
	s.InFlight = e.stats.inFlight.Load()
	s.ConsecutiveFailures = e.streaks.snapshot()
	return s
}

// streaks counts, per kind, the jobs failed since the kind's last success.
type streaks struct {
	mu     sync.Mutex
	byKind map[Kind]int64
}

func (s *streaks) init(kinds []Kind) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byKind == nil {
		s.byKind = map[Kind]int64{}
	}
	for _, k := range kinds {
		if _, ok := s.byKind[k]; !ok {
			s.byKind[k] = 0
		}
	}
}

func (s *streaks) failed(k Kind) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byKind == nil {
		s.byKind = map[Kind]int64{}
	}
	s.byKind[k]++
	return s.byKind[k]
}

func (s *streaks) succeeded(k Kind) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byKind == nil {
		s.byKind = map[Kind]int64{}
	}
	s.byKind[k] = 0
}

func (s *streaks) snapshot() map[Kind]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.byKind)
}

type counters struct {
	claimed, succeeded, retried, failed, released, stale, rescued   atomic.Int64
	cancelled, prunedJobs, prunedRuns, pruneErrors, runRecordErrors atomic.Int64
	claimQueries, completeQueries                                   atomic.Int64
	claimNanos, completeNanos                                       atomic.Int64
	// inFlight is claimed jobs whose handler has not returned. Runs never overlap (a new one
	// starts after the previous one's goroutines have exited), so it lives here, not per run.
	inFlight atomic.Int64
}

func kindNames(m map[Kind]Handler) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, string(k))
	}
	slices.Sort(out)
	return out
}
