package db

import (
	"context"

	"go.opentelemetry.io/otel/trace"
	otelembedded "go.opentelemetry.io/otel/trace/embedded"
)

// inSpanOnly is a tracer provider whose tracers make a span only under an existing one. The
// pool's statement tracer uses it: a statement run for a consumed event, a job or a tick shows in
// that trace, while the statements of background loops (lease renewals, polls, listeners) are
// not each a one-span trace of their own.
type inSpanOnly struct {
	otelembedded.TracerProvider
	tp trace.TracerProvider
}

func (p inSpanOnly) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return inSpanTracer{t: p.tp.Tracer(name, opts...)}
}

type inSpanTracer struct {
	otelembedded.Tracer
	t trace.Tracer
}

func (t inSpanTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		// The context's (non-recording) span: nothing is recorded, nothing is propagated.
		return ctx, trace.SpanFromContext(ctx)
	}
	return t.t.Start(ctx, name, opts...)
}
