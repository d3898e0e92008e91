package db_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"cryptopill.dev/jobs/libs/db"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
)

// A statement run inside a span is a client span under it, with the statement text and not its
// parameters; one run outside any span is not traced.
func TestPoolStatementsAreSpansUnderTheCaller(t *testing.T) {
	t.Parallel()
	d := pgtest.NewEmptyDB(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	ctx := context.Background()
	pool, err := db.OpenPool(ctx, d.URL, 2, db.WithTracerProvider(tp))
	require.NoError(t, err)
	defer pool.Close()

	var n int
	require.NoError(t, pool.QueryRow(ctx, "SELECT 1 + $1", 41).Scan(&n)) // no span: not traced
	require.Empty(t, rec.Ended())

	sctx, parent := tp.Tracer("test").Start(ctx, "process cp.tick.straux")
	require.NoError(t, pool.QueryRow(sctx, "SELECT 2 + $1", 40).Scan(&n))
	parent.End()
	var stmt sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		for _, kv := range s.Attributes() {
			if kv.Key == "db.query.text" && kv.Value.AsString() == "SELECT 2 + $1" {
				stmt = s
			}
		}
		for _, kv := range s.Attributes() {
			require.NotContains(t, string(kv.Key), "parameters", "query parameters are not recorded")
		}
	}
	require.NotNil(t, stmt, "no statement span: %v", rec.Ended())
	require.Equal(t, parent.SpanContext().SpanID(), stmt.Parent().SpanID())
}
