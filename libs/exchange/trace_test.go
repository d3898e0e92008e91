package exchange_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"cryptopill.dev/jobs/libs/exchange"
)

// Each HTTP request to the exchange is a client span under the caller's span, named by method
// and endpoint (never the query: symbols, signatures), with the response status.
func TestExchangeCallsAreClientSpans(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	b := setup(t, options{client: func(c *exchange.Config) { c.TracerProvider, c.WeightLimit = tp, 6000 }})
	ctx, parent := tp.Tracer("test").Start(context.Background(), "process cp.tick.straux")
	_, err := b.client.Depth(ctx, "BTCUSDT", 100)
	require.NoError(t, err)
	parent.End()

	var calls []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.SpanKind() == trace.SpanKindClient {
			calls = append(calls, s)
		}
	}
	require.Len(t, calls, 1)
	require.Equal(t, "GET /api/v3/depth", calls[0].Name())
	require.Equal(t, parent.SpanContext().SpanID(), calls[0].Parent().SpanID())
	status := attribute.Value{}
	for _, kv := range calls[0].Attributes() {
		if kv.Key == "http.response.status_code" {
			status = kv.Value
		}
	}
	require.EqualValues(t, 200, status.AsInt64())
}
