package jobs_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"cryptopill.dev/jobs/libs/jobs"
)

func spanAttr(s sdktrace.ReadOnlySpan, key string) attribute.Value {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// A claim woken by WakeFrom is a child of the waking span (a consumed tick); each job it takes
// runs in a "job <kind>" span under it, holding the handler's work, with id, kind and outcome;
// the outcome handed to OnOutcome carries that span, so an event about it joins the trace.
func TestJobRunsAreSpansInTheWakingTrace(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	outcomes := make(chan jobs.Outcome, 4)
	handlerSpans := make(chan trace.SpanContext, 4)
	e, err := jobs.New(b.pool, jobs.Config{TracerProvider: tp, Logger: testLogger(t),
		OnOutcome: func(os []jobs.Outcome) {
			for _, o := range os {
				outcomes <- o
			}
		}})
	require.NoError(t, err)
	require.NoError(t, e.Register(jobs.KindFetchTicker, jobs.HandlerFunc(func(ctx context.Context, j jobs.Job) error {
		handlerSpans <- trace.SpanContextFromContext(ctx)
		if j.Key == "bad" {
			return jobs.Permanent(errors.New("no such symbol"))
		}
		return nil
	})))
	ids := enqueue(t, b.pool, ticker("BTCUSDT"), ticker("bad"))
	// Woken before it starts, so its first claim (the one that takes both jobs) is the woken one.
	tickCtx, tick := tp.Tracer("test").Start(context.Background(), "process cp.tick.straux")
	e.WakeFrom(tickCtx)
	require.NoError(t, e.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = e.Stop(ctx)
	})
	got := map[int64]jobs.Outcome{}
	for len(got) < 2 {
		select {
		case o := <-outcomes:
			got[o.Job.ID] = o
		case <-time.After(20 * time.Second):
			t.Fatalf("outcomes: %v", got)
		}
	}
	tick.End()

	var claim sdktrace.ReadOnlySpan
	runs := map[int64]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		switch s.Name() {
		case "jobs.claim":
			if s.Parent().SpanID() == tick.SpanContext().SpanID() {
				claim = s
			}
		case "job fetch_ticker":
			runs[spanAttr(s, "cp.job.id").AsInt64()] = s
		}
	}
	require.NotNil(t, claim, "no claim span under the waking span")
	require.EqualValues(t, 2, spanAttr(claim, "cp.jobs.claimed").AsInt64())
	require.Len(t, runs, 2)
	for i, id := range ids {
		run := runs[id]
		require.NotNil(t, run, "job %d has no run span", id)
		require.Equal(t, tick.SpanContext().TraceID(), run.SpanContext().TraceID())
		require.Equal(t, claim.SpanContext().SpanID(), run.Parent().SpanID())
		require.Equal(t, "fetch_ticker", spanAttr(run, "cp.job.kind").AsString())
		require.Equal(t, run.SpanContext(), got[id].SpanContext, "the outcome carries the run's span")
		if i == 0 {
			require.Equal(t, "succeeded", spanAttr(run, "cp.job.outcome").AsString())
			require.Equal(t, codes.Unset, run.Status().Code)
		} else {
			require.Equal(t, "failed", spanAttr(run, "cp.job.outcome").AsString())
			require.Equal(t, codes.Error, run.Status().Code)
		}
	}
	for range 2 {
		sc := <-handlerSpans
		require.Equal(t, tick.SpanContext().TraceID(), sc.TraceID(), "the handler runs in the job's span")
	}
}
