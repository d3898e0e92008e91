package events

import (
	"context"
	"fmt"
	"runtime/debug"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Handler processes one event. Returning nil acknowledges it; an error has it redelivered after
// the consumer's backoff, or dead-lettered on its last allowed delivery; an error wrapped with
// Permanent dead-letters it at once. Handlers must be idempotent: delivery is at least once.
type Handler func(ctx context.Context, ev Event) error

// Middleware wraps a Handler with cross-cutting behaviour.
type Middleware func(Handler) Handler

// Chain wraps h in mws; the first middleware is the outermost (it runs first).
func Chain(h Handler, mws ...Middleware) Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// Recover turns a panicking handler into an error wrapping ErrHandlerPanic, with the panic value
// and stack, so the message is retried like any failure instead of crashing the service.
func Recover() Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, ev Event) (err error) {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("%w: %v\n%s", ErrHandlerPanic, r, debug.Stack())
				}
			}()
			return next(ctx, ev)
		}
	}
}

// Timeout gives each handler call a deadline of d; d <= 0 adds none. The handler must honour
// its context: the deadline cancels it, it does not abandon it.
func Timeout(d time.Duration) Middleware {
	return func(next Handler) Handler {
		if d <= 0 {
			return next
		}
		return func(ctx context.Context, ev Event) error {
			ctx, cancel := context.WithTimeout(ctx, d)
			defer cancel()
			return next(ctx, ev)
		}
	}
}

// Trace runs each handler call in a consumer span named "process <subject>", a child of the
// publisher's span when the event carried a traceparent (Decode puts it in the context). A
// handler error is recorded on the span.
func Trace(tp trace.TracerProvider, consumer string) Middleware {
	tracer := tp.Tracer(instrumentationName)
	return func(next Handler) Handler {
		return func(ctx context.Context, ev Event) error {
			attrs := []attribute.KeyValue{
				attribute.String("messaging.system", "nats"),
				attribute.String("messaging.operation.type", "process"),
				attribute.String("messaging.destination.name", ev.Subject),
				attribute.String("messaging.message.id", ev.ID),
				attribute.String("messaging.consumer.group.name", consumer),
				attribute.String("cloudevents.event_type", ev.Type),
			}
			if md := ev.Metadata; md != nil {
				attrs = append(attrs,
					attribute.String("messaging.nats.stream", md.Stream),
					attribute.String("messaging.nats.stream_sequence", strconv.FormatUint(md.Sequence.Stream, 10)),
					attribute.Int64("messaging.nats.delivery_count", int64(md.NumDelivered)))
			}
			ctx, span := tracer.Start(ctx, "process "+ev.Subject,
				trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
			defer span.End()
			err := next(ctx, ev)
			if err != nil {
				recordErr(span, err)
			}
			return err
		}
	}
}
