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
}
