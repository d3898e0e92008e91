package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Job is one claimed job, as a handler sees it.
type Job struct {
	ID   int64
	Kind Kind
	// Key is the job's dedup key within its kind.
	Key     string
	Payload json.RawMessage
	// Attempt is this run's attempt number, from 1; the job fails after MaxAttempts.
	Attempt     int
	MaxAttempts int
	// ScheduledFor is when this run was due.
	ScheduledFor time.Time
	// Period is the interval of a periodic job, zero for a one-shot job.
	Period    time.Duration
	CreatedAt time.Time

	// claimSpan is the span of the claim that took the job (invalid when the claim was not
	// traced): the job's run span is its child.
	claimSpan trace.SpanContext
}

// DecodePayload unmarshals the job's payload into v.
func (j Job) DecodePayload(v any) error {
	if err := json.Unmarshal(j.Payload, v); err != nil {
		return fmt.Errorf("job %d (%s): decode payload: %w", j.ID, j.Kind, err)
	}
	return nil
}

// Handler works jobs of one kind. Work returns nil when the job is done; an error schedules a
// retry (or fails the job after its last attempt, or at once if the error is [Permanent]). ctx is
// cancelled when the job times out (Config.JobTimeout) or when Stop's deadline passes; handlers
// must return promptly then. A handler may run more than once for the same job if its worker dies
// or loses its lease, so its effects should be idempotent (upserts on natural keys).
type Handler interface {
	Work(ctx context.Context, job Job) error
}

// HandlerFunc adapts a function to [Handler].
type HandlerFunc func(ctx context.Context, job Job) error

// Work calls f.
func (f HandlerFunc) Work(ctx context.Context, job Job) error { return f(ctx, job) }

// Permanent marks err as not worth retrying: the job fails at once, whatever attempts it has left.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err (or an error it wraps) was marked with [Permanent].
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Outcome is a recorded result of one run of a job, as Config.OnOutcome reports it.
type Outcome struct {
	// Job is the job as it was claimed for the run (Attempt counts this run).
	Job Job
	// Status is what the run ended in: StatusSucceeded (a periodic job is queued again for its
	// next period), StatusQueued (a retry after a failed attempt) or StatusFailed.
	Status Status
	// Err is the failed attempt's error; empty on success.
	Err string
	// ConsecutiveFailures is, for a periodic job, how many of its occurrences have failed in a
	// row, this one included (0 after a success). A failed occurrence of a periodic job is
	// recorded as a failed row of its own while the job is queued for its next period.
	ConsecutiveFailures int
	// SpanContext is the span of the run ("job <kind>"): an event about the outcome published
	// with it as parent (trace.ContextWithSpanContext) joins the job's trace.
	SpanContext trace.SpanContext
}
