package exchange_test

import (
	"context"
	"net/http"
	"strings"
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

// TestSignedCallSpansCarryNoSignature: a signed call's span records its URL with the signature
// redacted, and the exchange still receives the signed request (it answers 200).
func TestSignedCallSpansCarryNoSignature(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	var sent string
	b := setup(t, options{client: func(c *exchange.Config) { c.TracerProvider, c.WeightLimit = tp, 6000 },
		handler: func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/api/v3/myTrades" {
					sent = r.URL.RawQuery
				}
				h.ServeHTTP(w, r)
			})
		}})
	ctx, parent := tp.Tracer("test").Start(context.Background(), "sync")
	_, err := b.client.MyTrades(ctx, exchange.MyTradesRequest{Symbol: "ETHBTC", Limit: 10})
	require.NoError(t, err)
	parent.End()
	sig := ""
	for _, p := range strings.Split(sent, "&") {
		if v, ok := strings.CutPrefix(p, "signature="); ok {
			sig = v
		}
	}
	require.NotEmpty(t, sig, "the exchange got a signed request")
	var seen int
	for _, s := range rec.Ended() {
		if s.SpanKind() != trace.SpanKindClient {
			continue
		}
		seen++
		for _, kv := range s.Attributes() {
			require.NotContains(t, kv.Value.Emit(), sig, "attribute %s", kv.Key)
			if kv.Key == "url.full" {
				require.Contains(t, kv.Value.AsString(), "signature=REDACTED")
			}
		}
	}
	require.Positive(t, seen)
}
