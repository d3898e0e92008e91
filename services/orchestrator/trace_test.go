package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/simex"
	"cryptopill.dev/jobs/libs/testkit/natstest"
	"cryptopill.dev/jobs/libs/testkit/otlptest"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
	"cryptopill.dev/jobs/libs/testkit/proctest"
)

// isStatement reports whether s is a database statement span (otelpgx).
func isStatement(s otlptest.Span) bool { return s.Attrs["db.query.text"] != "" }

// TestTracesFollowATickAndARowChange is issue 11's acceptance: the real orchestrator, straux and
// cinimport binaries export over OTLP/HTTP, configured only by OTEL_EXPORTER_OTLP_ENDPOINT, to an
// in-process receiver, and
//   - one tick is one trace: the orchestrator's tick and its publish → straux's consume → the
//     period's work with its exchange HTTP calls and database statements, and the job engine's
//     claim the finished tick woke;
//   - one row change is one trace: the relay's publish (commit LSN and xid) → cinimport's
//     consume → its import with the import statements → the MovesImported publish.
func TestTracesFollowATickAndARowChange(t *testing.T) {
	t.Parallel()
	rx := otlptest.New(t)
	d := pgtest.NewDB(t)
	ns := natstest.NewServer(t)
	ex, err := simex.New(simex.Config{Symbols: []string{"BTCUSDT", "ETHUSDT"}})
	require.NoError(t, err)
	srv := httptest.NewServer(ex)
	t.Cleanup(srv.Close)
	ctx := context.Background()
	_, err = d.Pool.Exec(ctx, `INSERT INTO settings.coin_universe (symbol, base_asset, quote_asset)
		VALUES ('BTCUSDT', 'BTC', 'USDT'), ('ETHUSDT', 'ETH', 'USDT')`)
	require.NoError(t, err)

	common := []string{"CP_ENV=dev", "MIGRATE_ON_START=0", "LOG_LEVEL=info", "HTTP_ADDR=127.0.0.1:0",
		"DATABASE_URL=" + d.URL, "NATS_URL=" + ns.URL,
		// The spec's base endpoint; the exporter appends /v1/traces. Batches are sent every
		// 100 ms instead of 5 s, so the spans arrive while the test waits.
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + rx.URL, "OTEL_BSP_SCHEDULE_DELAY=100",
		"OTEL_RESOURCE_ATTRIBUTES=deployment.region=test"}
	// The orchestrator first: straux and cinimport wait for its streams.
	proctest.Orchestrator(t, d.URL, ns.URL, append(common, "STR_AUX_RUNNER_INTERVAL_MS=5000")...)
	proctest.Start(t, proctest.Build(t, "cryptopill.dev/jobs/services/straux"), append(common, "BINANCE_BASE_URL="+srv.URL)...)
	proctest.Start(t, proctest.Build(t, "cryptopill.dev/jobs/services/cinimport"), append(common, "CIN_IMPORT_DEBOUNCE=50ms")...)

	t.Run("tick", func(t *testing.T) {
		// The first ticks may be stored before straux's durable exists; any later one will do.
		var tick otlptest.Trace
		spans, ok := rx.Wait(ctx, 90*time.Second, func(spans []otlptest.Span) bool {
			var found bool
			tick, found = traceWith(spans, "orchestrator", "tick straux", "straux", "jobs.claim")
			return found
		})
		require.True(t, ok, "no tick trace reached straux's job engine; %d spans received", len(spans))
		t.Logf("tick trace:\n%s", tick)

		root := tick.Find("orchestrator", "tick straux")[0]
		require.Empty(t, root.ParentID, "the orchestrator's tick is the trace's root")
		require.Equal(t, "dev", root.Resource["deployment.environment.name"])
		require.Equal(t, "test", root.Resource["deployment.region"])
		require.NotEmpty(t, root.Resource["service.instance.id"])
		send := tick.Find("orchestrator", "send "+events.TickSubject(events.ModuleStraux))
		require.Len(t, send, 1)
		require.True(t, tick.Under(send[0], root))
		// The durable consumer's, and the assist consumer's when it saw the tick too: the period's
		// work runs under whichever started it.
		consumes := tick.Find("straux", "process "+events.TickSubject(events.ModuleStraux))
		require.NotEmpty(t, consumes)
		underConsume := func(s otlptest.Span) bool {
			for _, c := range consumes {
				if tick.Under(s, c) {
					return true
				}
			}
			return false
		}
		for _, c := range consumes {
			require.True(t, tick.Under(c, send[0]), "straux's consume continues the publish")
		}
		var calls, statements int
		for _, s := range tick.Spans {
			if s.Service != "straux" || !underConsume(s) {
				continue
			}
			if strings.HasPrefix(s.Name, "GET /api/v3/") {
				calls++
			}
			if isStatement(s) {
				statements++
			}
		}
		require.Positive(t, calls, "exchange HTTP client spans under the consume span")
		require.Positive(t, statements, "database statement spans under the consume span")
		for _, name := range []string{"straux.period", "straux.chunk", "jobs.claim"} {
			got := tick.Find("straux", name)
			require.NotEmpty(t, got, name)
			require.True(t, underConsume(got[0]), "%s under the consume span", name)
		}
	})

	t.Run("row change", func(t *testing.T) {
		// The session first, its (empty) import done, then the trade: the trade's row change is
		// the one whose import takes it.
		var session int64
		require.NoError(t, d.Pool.QueryRow(ctx, `INSERT INTO cin_aux.rt_session (account_scope, started_at)
			VALUES ('traced', now() - interval '1 hour') RETURNING session_id`).Scan(&session))
		imported := "send " + events.MovesImportedSubject(session)
		_, ok := rx.Wait(ctx, 60*time.Second, func(spans []otlptest.Span) bool {
			_, found := traceWith(spans, "orchestrator", "send cp.cdc.cin_aux.rt_session.insert", "cinimport", imported)
			return found
		})
		require.True(t, ok, "the session's row change was not imported")
		_, err := d.Pool.Exec(ctx, `INSERT INTO market.account_trades (symbol, trade_id, order_id, price, qty, quote_qty,
			commission, commission_asset, trade_time, is_buyer, is_maker, account_scope)
			VALUES ('BTCUSDT', 1, 1, 100, 1, 100, 0.1, 'USDT', now(), true, false, 'traced')`)
		require.NoError(t, err)
		changeSubject := "cp.cdc.market.account_trades.insert"

		var row otlptest.Trace
		spans, ok := rx.Wait(ctx, 60*time.Second, func(spans []otlptest.Span) bool {
			var found bool
			row, found = traceWith(spans, "orchestrator", "send "+changeSubject, "cinimport", imported)
			return found
		})
		require.True(t, ok, "no MovesImported publish of session %d in the trade's row change trace; %d spans received", session, len(spans))
		t.Logf("row change trace:\n%s", row)

		relay := row.Find("orchestrator", "send "+changeSubject)[0]
		require.Empty(t, relay.ParentID, "the row change starts the trace")
		require.Regexp(t, `^[0-9A-F]+/[0-9A-F]+$`, relay.Attrs["cp.commit_lsn"])
		require.NotEmpty(t, relay.Attrs["cp.xid"])
		require.NotEqual(t, "0", relay.Attrs["cp.xid"])
		consume := row.Find("cinimport", "process "+changeSubject)
		require.Len(t, consume, 1)
		require.True(t, row.Under(consume[0], relay))
		imp := row.Find("cinimport", "cinimport.import")
		require.Len(t, imp, 1)
		require.True(t, row.Under(imp[0], consume[0]))
		require.Equal(t, "1", imp[0].Attrs["cp.moves"])
		var statements int
		for _, s := range row.Spans {
			if isStatement(s) && row.Under(s, imp[0]) {
				statements++
			}
		}
		require.Positive(t, statements, "the import's statements under its span")
		pub := row.Find("cinimport", imported)
		require.True(t, row.Under(pub[0], imp[0]), "MovesImported is published inside the import")
	})
}

// traceWith returns a trace rooted at rootService's span named root that also holds a span of
// service named name.
func traceWith(spans []otlptest.Span, rootService, root, service, name string) (otlptest.Trace, bool) {
	for _, s := range spans {
		if s.Service != service || s.Name != name {
			continue
		}
		tr := otlptest.TraceOf(spans, s.TraceID)
		for _, r := range tr.Find(rootService, root) {
			if r.ParentID == "" {
				return tr, true
			}
		}
	}
	return otlptest.Trace{}, false
}
