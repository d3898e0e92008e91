package trigger

import (
	"context"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
	"cryptopill.dev/jobs/services/cinimport/internal/importer"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// The sweep, on a real database, finds what no trade-insert event announced: a trade stored
// days behind its session's watermark, and one of a market that has become known since it was
// passed over.
func TestSweepFindsTradesNoEventAnnounced(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDB(t)
	ctx := context.Background()
	pub := &fakePublisher{}
	reg := prometheus.NewRegistry()
	tr := New(importer.New(d.Pool, importer.Config{}), pub, Config{Logger: slog.New(slog.DiscardHandler), Registerer: reg})
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	var session int64
	require.NoError(t, d.Pool.QueryRow(ctx, `INSERT INTO cin_aux.rt_session (started_at) VALUES ($1) RETURNING session_id`, t0).Scan(&session))
	insert := func(symbol string, id int64, at time.Time) {
		t.Helper()
		_, err := d.Pool.Exec(ctx, `INSERT INTO market.account_trades (symbol, trade_id, order_id, price, qty, quote_qty,
			commission, commission_asset, trade_time, is_buyer, is_maker) VALUES ($1, $2, $2, 10, 1, 10, 0, 'USDT', $3, true, false)`,
			symbol, id, at)
		require.NoError(t, err)
	}
	sweep := func() int64 {
		t.Helper()
		pub.mu.Lock()
		n := len(pub.evs)
		pub.mu.Unlock()
		require.NoError(t, tr.HandleTick(ctx, events.Event{Payload: &eventsv1.Tick{}}))
		pub.mu.Lock()
		defer pub.mu.Unlock()
		require.Len(t, pub.evs, n+1, "one MovesImported per sweep of the session")
		return pub.evs[n].Payload.(*eventsv1.MovesImported).GetMoves()
	}
	insert("ETHUSDT", 1, t0.Add(time.Minute))
	insert("ETHUSDT", 2, t0.Add(10*24*time.Hour))
	insert("ABCXYZ", 1, t0.Add(2*time.Minute)) // a market nobody knows yet
	require.Equal(t, int64(2), sweep())
	require.Equal(t, int64(0), sweep())
	require.InDelta(t, 1, promtestutil.ToFloat64(tr.waiting.WithLabelValues(strconv.FormatInt(session, 10))), 0, "ABCXYZ waits")

	insert("ETHUSDT", 3, t0.Add(3*24*time.Hour)) // a week behind the watermark, no event
	require.Equal(t, int64(1), sweep())
	_, err := d.Pool.Exec(ctx, `INSERT INTO market.symbols (symbol, base_asset, quote_asset, status) VALUES ('ABCXYZ', 'ABC', 'XYZ', 'TRADING')`)
	require.NoError(t, err)
	require.Equal(t, int64(1), sweep())
	require.Equal(t, int64(0), sweep())
	require.Zero(t, promtestutil.CollectAndCount(reg, "cp_cinimport_pending_markets"), "nothing waits")
	var moves int
	require.NoError(t, d.Pool.QueryRow(ctx, `SELECT count(*) FROM cin_aux.rt_move WHERE session_id = $1`, session).Scan(&moves))
	require.Equal(t, 4, moves)

	// The cursor restored from another cluster: its snapshot is not trusted, and that is counted.
	_, err = d.Pool.Exec(ctx, `UPDATE cin_aux.session_import_cursor SET seen_system_id = seen_system_id + 1 WHERE session_id = $1`, session)
	require.NoError(t, err)
	require.Equal(t, int64(0), sweep())
	require.InDelta(t, 1, promtestutil.ToFloat64(tr.distrust.WithLabelValues("other_cluster")), 0)
	require.Equal(t, int64(0), sweep())
	require.InDelta(t, 1, promtestutil.ToFloat64(tr.distrust.WithLabelValues("other_cluster")), 0, "once")
}

// A session's cp_cinimport_pending_markets series goes when the session is no longer OPEN,
// whichever way the trigger learns it: its closing change, an import that finds it closed, or
// a sweep that no longer lists it. A stale series would keep a warning up for good.
func TestPendingMarketsSeriesGoesWithItsSession(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDB(t)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	tr := New(importer.New(d.Pool, importer.Config{}), &fakePublisher{}, Config{Logger: slog.New(slog.DiscardHandler), Registerer: reg})
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	var a, b, c int64
	for _, id := range []*int64{&a, &b, &c} {
		require.NoError(t, d.Pool.QueryRow(ctx, `INSERT INTO cin_aux.rt_session (started_at) VALUES ($1) RETURNING session_id`, t0).Scan(id))
	}
	_, err := d.Pool.Exec(ctx, `INSERT INTO market.account_trades (symbol, trade_id, order_id, price, qty, quote_qty,
		commission, commission_asset, trade_time, is_buyer, is_maker) VALUES ('ABCXYZ', 1, 1, 10, 1, 10, 0, 'XYZ', $1, true, false)`,
		t0.Add(time.Minute)) // a market nobody knows
	require.NoError(t, err)
	series := func() map[string]float64 {
		t.Helper()
		mfs, err := reg.Gather()
		require.NoError(t, err)
		out := map[string]float64{}
		for _, mf := range mfs {
			if mf.GetName() != "cp_cinimport_pending_markets" {
				continue
			}
			for _, m := range mf.GetMetric() {
				out[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
			}
		}
		return out
	}
	id := func(s int64) string { return strconv.FormatInt(s, 10) }
	closeSession := func(s int64) {
		t.Helper()
		_, err := d.Pool.Exec(ctx, `UPDATE cin_aux.rt_session SET status = 'CLOSED', closed_at = started_at + interval '1 day' WHERE session_id = $1`, s)
		require.NoError(t, err)
	}
	change := func(s int64, status string) events.Event {
		return events.Event{Payload: &eventsv1.RowChange{Schema: "cin_aux", Table: "rt_session", Op: eventsv1.RowChange_OP_UPDATE,
			NewValues: map[string]*eventsv1.Value{
				"session_id": {Kind: &eventsv1.Value_Text{Text: id(s)}},
				"status":     {Kind: &eventsv1.Value_Text{Text: status}},
			}}}
	}
	require.NoError(t, tr.HandleTick(ctx, events.Event{Payload: &eventsv1.Tick{}}))
	require.Equal(t, map[string]float64{id(a): 1, id(b): 1, id(c): 1}, series())

	closeSession(a) // its closing change arrives
	require.NoError(t, tr.HandleChange(ctx, change(a, "CLOSED")))
	require.Equal(t, map[string]float64{id(b): 1, id(c): 1}, series())

	closeSession(b) // a replayed change from when it was OPEN: the import finds it closed
	require.NoError(t, tr.HandleChange(ctx, change(b, "OPEN")))
	require.Equal(t, map[string]float64{id(c): 1}, series())

	closeSession(c) // no change event: the next sweep no longer lists it
	require.NoError(t, tr.HandleTick(ctx, events.Event{Payload: &eventsv1.Tick{}}))
	require.Empty(t, series())
}
