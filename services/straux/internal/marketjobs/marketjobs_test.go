package marketjobs_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/exchange"
	"cryptopill.dev/jobs/libs/jobs"
	"cryptopill.dev/jobs/libs/simex"
	"cryptopill.dev/jobs/libs/testkit/clocktest"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
	"cryptopill.dev/jobs/services/straux/internal/feed"
	"cryptopill.dev/jobs/services/straux/internal/marketjobs"
	"cryptopill.dev/jobs/services/straux/internal/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type staticUniverse []string

func (u staticUniverse) Current(context.Context) ([]string, error) { return u, nil }

type bundle struct {
	now   func() time.Time // the exchange's clock, and the handlers' unless a test fixes one
	db    *pgtest.DB
	st    *store.Store
	simex *simex.Exchange
	ex    *exchange.Client
	url   string
}

func setup(t *testing.T, universe ...string) *bundle {
	t.Helper()
	b := &bundle{db: pgtest.NewDB(t), now: clocktest.Running(clocktest.Afternoon)}
	b.st = store.New(b.db.Pool)
	var err error
	b.simex, err = simex.New(simex.Config{Symbols: []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"}, Now: b.now})
	require.NoError(t, err)
	srv := httptest.NewServer(b.simex)
	t.Cleanup(srv.Close)
	b.url = srv.URL
	b.ex, err = exchange.New(exchange.Config{BaseURL: srv.URL, Now: b.now})
	require.NoError(t, err)
	for _, s := range universe {
		b.exec(t, `INSERT INTO settings.coin_universe (symbol, base_asset, quote_asset) VALUES ($1, left($1, -4), 'USDT')`, s)
	}
	return b
}

func (b *bundle) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	_, err := b.db.Pool.Exec(context.Background(), sql, args...)
	require.NoError(t, err)
}

func (b *bundle) float(t *testing.T, sql string, args ...any) *float64 {
	t.Helper()
	var v *float64
	require.NoError(t, b.db.Pool.QueryRow(context.Background(), sql, args...).Scan(&v))
	return v
}

func (b *bundle) handlers(ex marketjobs.Exchange, universe []string, now time.Time) *marketjobs.Handlers {
	if ex == nil {
		ex = b.ex
	}
	cfg := marketjobs.Config{Now: b.now}
	if !now.IsZero() {
		cfg.Now = func() time.Time { return now }
	}
	return marketjobs.New(b.st, ex, staticUniverse(universe), cfg)
}

// gappyExchange serves hourly candles with the 03:00 one missing; the last is still open.
type gappyExchange struct {
	marketjobs.Exchange
	t0     time.Time
	starts []time.Time
}

func (g *gappyExchange) Klines(_ context.Context, req exchange.KlinesRequest) ([]exchange.Kline, error) {
	g.starts = append(g.starts, req.StartTime)
	var out []exchange.Kline
	for h := 0; h <= 6; h++ {
		open := g.t0.Add(time.Duration(h) * time.Hour)
		if h == 3 || open.Before(req.StartTime) {
			continue
		}
		px := decimal.NewFromInt(int64(100 + h))
		out = append(out, exchange.Kline{OpenTime: open, CloseTime: open.Add(time.Hour - time.Millisecond),
			Open: px, High: px, Low: px, Close: px, Volume: decimal.NewFromInt(1)})
	}
	return out, nil
}

func TestFetchKlinesClosedOnlyCursorAndGaps(t *testing.T) {
	t.Parallel()
	b := setup(t)
	t0 := time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)
	// 06:30: the 06:00 candle is still open.
	now := t0.Add(6*time.Hour + 30*time.Minute)
	g := &gappyExchange{t0: t0}
	h := b.handlers(g, nil, now)

	gaps, err := h.FetchKlinesOf(context.Background(), "BTCUSDT", "1h")
	require.NoError(t, err)
	// Without a cursor the first candle starts the series; 00, 01, 02, 04, 05 are stored, 06 is
	// still open, and 03 is missing between 02 and 04.
	require.Equal(t, []marketjobs.Gap{{From: t0.Add(3 * time.Hour), To: t0.Add(4 * time.Hour), Candles: 1}}, gaps)
	var n int
	require.NoError(t, b.db.Pool.QueryRow(context.Background(),
		`SELECT count(*) FROM market.klines WHERE symbol = 'BTCUSDT' AND interval = '1h'`).Scan(&n))
	require.Equal(t, 5, n)
	require.InDelta(t, 105, *b.float(t, `SELECT close::float8 FROM market.klines WHERE open_time = $1`, t0.Add(5*time.Hour)), 0)
	var cursor time.Time
	require.NoError(t, b.db.Pool.QueryRow(context.Background(),
		`SELECT last_open_time FROM market.kline_cursors WHERE symbol = 'BTCUSDT' AND interval = '1h'`).Scan(&cursor))
	require.Equal(t, t0.Add(5*time.Hour), cursor.UTC())

	// From a cursor at 02:00 the next run starts at 03:00 and reports the missing 03:00 candle.
	b.exec(t, `UPDATE market.kline_cursors SET last_open_time = $1`, t0.Add(2*time.Hour))
	gaps, err = h.FetchKlinesOf(context.Background(), "BTCUSDT", "1h")
	require.NoError(t, err)
	require.Equal(t, t0.Add(3*time.Hour), g.starts[len(g.starts)-1].UTC())
	require.Equal(t, []marketjobs.Gap{{From: t0.Add(3 * time.Hour), To: t0.Add(4 * time.Hour), Candles: 1}}, gaps)
	require.NoError(t, b.db.Pool.QueryRow(context.Background(), `SELECT last_open_time FROM market.kline_cursors`).Scan(&cursor))
	require.Equal(t, t0.Add(5*time.Hour), cursor.UTC())
}

func TestFetchKlinesFromTheSimulatedExchange(t *testing.T) {
	t.Parallel()
	b := setup(t)
	h := b.handlers(nil, nil, time.Time{})
	job := jobs.Job{ID: 1, Kind: jobs.KindFetchKlines, Key: "ETHUSDT/30m", Payload: []byte(`{"symbol":"ETHUSDT","window":"30m"}`)}
	require.NoError(t, h.FetchKlines(context.Background(), job))
	var n int
	var last time.Time
	require.NoError(t, b.db.Pool.QueryRow(context.Background(),
		`SELECT count(*), max(close_time) FROM market.klines WHERE symbol = 'ETHUSDT' AND interval = '30m'`).Scan(&n, &last))
	require.InDelta(t, 500, n, 1)
	require.True(t, last.Before(b.now()), "closed candles only")
	// Again: nothing new, nothing duplicated.
	require.NoError(t, h.FetchKlines(context.Background(), job))
	var again int
	require.NoError(t, b.db.Pool.QueryRow(context.Background(),
		`SELECT count(*) FROM market.klines WHERE symbol = 'ETHUSDT'`).Scan(&again))
	require.LessOrEqual(t, again-n, 1)

	bad := jobs.Job{ID: 2, Kind: jobs.KindFetchKlines, Payload: []byte(`{"symbol":"ETHUSDT","window":"3h"}`)}
	require.True(t, jobs.IsPermanent(h.FetchKlines(context.Background(), bad)), "3h is not a Binance interval")
}

func TestFetchTickerAndOrderbook(t *testing.T) {
	t.Parallel()
	b := setup(t, "BTCUSDT", "ETHUSDT")
	h := b.handlers(nil, []string{"BTCUSDT", "ETHUSDT"}, time.Time{})
	at := time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)
	require.NoError(t, h.FetchTicker(context.Background(), jobs.Job{Kind: jobs.KindFetchTicker, ScheduledFor: at}))
	require.NoError(t, h.FetchOrderbook(context.Background(), jobs.Job{Kind: jobs.KindFetchOrderbook, ScheduledFor: at,
		Payload: []byte(`{"symbol":"BTCUSDT"}`)}))
	// A re-run of the same job rewrites its rows.
	require.NoError(t, h.FetchTicker(context.Background(), jobs.Job{Kind: jobs.KindFetchTicker, ScheduledFor: at}))
	var tickers, books, levels int
	require.NoError(t, b.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM market.tickers WHERE ts = $1`, at).Scan(&tickers))
	require.NoError(t, b.db.Pool.QueryRow(context.Background(),
		`SELECT count(*), max(jsonb_array_length(bids)) FROM market.orderbook_snapshots WHERE ts = $1 AND symbol = 'BTCUSDT'`, at).Scan(&books, &levels))
	require.Equal(t, 2, tickers)
	require.Equal(t, 1, books)
	require.Equal(t, 100, levels)
}

func TestComputeStrVectorsFromStoredSamples(t *testing.T) {
	t.Parallel()
	b := setup(t, "BTCUSDT")
	p := time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)
	// 30 samples 40 s apart ending at p; the tick interval comes from tick_periods.
	b.exec(t, `INSERT INTO str_aux.tick_periods (period_start, period, status, planned_by) VALUES ($1, '40 seconds', 'done', 't')`, p)
	b.exec(t, `INSERT INTO str_aux.samples (symbol, period_start, mid)
		SELECT 'BTCUSDT', $1::timestamptz - i * interval '40 seconds', 100 + (i % 5) FROM generate_series(0, 29) AS i`, p)
	h := b.handlers(nil, []string{"BTCUSDT"}, time.Time{})
	require.NoError(t, h.ComputeStrVectors(context.Background(), jobs.Job{Kind: jobs.KindComputeStrVectors, Key: "BTCUSDT"}))
	// 30m at 40 s: B = 45, 12 needed; 1h: B = 90, 23 needed; 4h: B = 256, 64 needed.
	for label, computed := range map[string]bool{"30m": true, "1h": true, "4h": false} {
		var reason *string
		var n int
		require.NoError(t, b.db.Pool.QueryRow(context.Background(),
			`SELECT n_samples, reason FROM str_aux.window_vectors WHERE symbol = 'BTCUSDT' AND window_label = $1 AND period_start = $2`,
			label, p).Scan(&n, &reason))
		require.Equal(t, computed, reason == nil, label)
		require.Equal(t, map[string]int{"30m": 30, "1h": 30, "4h": 30}[label], n, label)
	}
}

func TestMatricesFixture(t *testing.T) {
	t.Parallel()
	b := setup(t, "BTCUSDT", "ETHUSDT")
	h := b.handlers(nil, []string{"BTCUSDT", "ETHUSDT"}, time.Time{})
	t1 := time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)
	t2, t3 := t1.Add(time.Minute), t1.Add(2*time.Minute)
	for _, s := range []struct {
		at       time.Time
		btc, eth float64
	}{{t1, 100, 50}, {t2, 110, 50}, {t3, 121, 55}} {
		b.exec(t, `INSERT INTO str_aux.samples (symbol, period_start, mid) VALUES ('BTCUSDT', $1, $2), ('ETHUSDT', $1, $3)`, s.at, s.btc, s.eth)
	}
	ctx := context.Background()
	for _, ts := range []time.Time{t1, t2, t3} {
		n, err := h.ComputeMatricesAt(ctx, ts)
		require.NoError(t, err)
		require.EqualValues(t, 6*6, n, "3 coins: 6 ordered pairs × 6 matrix types")
	}
	val := func(ts time.Time, typ, base, quote string) *float64 {
		return b.float(t, `SELECT value::float8 FROM str_aux.matrices WHERE ts = $1 AND matrix_type = $2 AND base = $3 AND quote = $4`,
			ts, typ, base, quote)
	}
	// t1: the first grid. bm(BTC, ETH) = 100/50 = 2, through the USDT legs; nothing earlier, so
	// id_pct, pct_drv, ref and delta are undefined; the grid is its own open: pct_ref = 0.
	require.InDelta(t, 2, *val(t1, "benchmark", "BTC", "ETH"), 1e-12)
	require.InDelta(t, 0.01, *val(t1, "benchmark", "USDT", "BTC"), 1e-12)
	require.Nil(t, val(t1, "id_pct", "BTC", "ETH"))
	require.InDelta(t, 0, *val(t1, "pct_ref", "BTC", "ETH"), 1e-12)
	require.Nil(t, val(t1, "delta", "BTC", "ETH"))
	// t2: bm 2.2. id_pct = (2.2 − 2)/2 = 0.1; pct_drv undefined (no id_pct before);
	// pct_ref = (2 − 2.2)/2 = −0.1; ref = −0.1·0.1 = −0.01; delta = 2.2 − 2·(1 − 0.01) = 0.22.
	require.InDelta(t, 0.1, *val(t2, "id_pct", "BTC", "ETH"), 1e-12)
	require.Nil(t, val(t2, "pct_drv", "BTC", "ETH"))
	require.InDelta(t, -0.1, *val(t2, "pct_ref", "BTC", "ETH"), 1e-12)
	require.InDelta(t, -0.01, *val(t2, "ref", "BTC", "ETH"), 1e-12)
	require.InDelta(t, 0.22, *val(t2, "delta", "BTC", "ETH"), 1e-12)
	// t3: bm 121/55 = 2.2 again. id_pct = 0, pct_drv = 0 − 0.1 = −0.1, pct_ref = −0.1, ref = 0,
	// delta = 2.2 − 2 = 0.2.
	require.InDelta(t, 0, *val(t3, "id_pct", "BTC", "ETH"), 1e-12)
	require.InDelta(t, -0.1, *val(t3, "pct_drv", "BTC", "ETH"), 1e-12)
	require.InDelta(t, 0, *val(t3, "ref", "BTC", "ETH"), 1e-12)
	require.InDelta(t, 0.2, *val(t3, "delta", "BTC", "ETH"), 1e-12)
	// A re-run rewrites the grid.
	_, err := h.ComputeMatricesAt(ctx, t3)
	require.NoError(t, err)
	var rows int
	require.NoError(t, b.db.Pool.QueryRow(ctx, `SELECT count(*) FROM str_aux.matrices`).Scan(&rows))
	require.Equal(t, 3*36, rows)
}

func TestHandlersWorkJobsFromTheEngine(t *testing.T) {
	t.Parallel()
	b := setup(t, "BTCUSDT", "ETHUSDT")
	h := b.handlers(nil, []string{"BTCUSDT", "ETHUSDT"}, time.Time{})
	e, err := jobs.New(b.db.Pool, jobs.Config{Workers: 4, PollInterval: 200 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, h.Register(e))
	ctx := context.Background()
	require.NoError(t, e.Start(ctx))
	t.Cleanup(func() { _ = e.Stop(ctx) })
	_, err = jobs.EnqueueMany(ctx, b.db.Pool, []jobs.NewJob{
		{Kind: jobs.KindFetchKlines, Key: jobs.Key("BTCUSDT", "1h"), Payload: map[string]string{"symbol": "BTCUSDT", "window": "1h"}},
		{Kind: jobs.KindFetchTicker, Key: "BTCUSDT", Payload: map[string]string{"symbol": "BTCUSDT"}},
		{Kind: jobs.KindFetchOrderbook, Key: "ETHUSDT", Payload: map[string]string{"symbol": "ETHUSDT"}},
		{Kind: jobs.KindComputeStrVectors},
		{Kind: jobs.KindComputeMatrices},
		{Kind: jobs.KindComputeMEA},
	})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		var done int
		_ = b.db.Pool.QueryRow(ctx, `SELECT count(*) FROM ingest.jobs WHERE status = 'succeeded'`).Scan(&done)
		return done == 6
	}, 60*time.Second, 100*time.Millisecond, "every market kind has a worker")
}

// In stream mode fetch_orderbook and fetch_ticker take what this replica holds live from its
// local books and ticker streams, and only the rest over REST.
func TestFetchFromTheStreamsThisReplicaHolds(t *testing.T) {
	t.Parallel()
	b := setup(t, "BTCUSDT", "ETHUSDT", "SOLUSDT")
	url, err := exchange.StreamURLFor(b.url)
	require.NoError(t, err)
	held := []string{"BTCUSDT", "ETHUSDT"}
	f, err := feed.New(feed.Config{URL: url, Snapshot: b.ex.Depth, ResyncPerSecond: 100, Now: b.now,
		Universe: func(context.Context) ([]string, error) { return held, nil }})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = f.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	require.Eventually(t, func() bool {
		for _, s := range held {
			if _, _, ok := f.Ticker(s); !ok {
				return false
			}
		}
		return len(f.Live()) == len(held)
	}, 30*time.Second, 20*time.Millisecond)

	h := marketjobs.New(b.st, b.ex, staticUniverse([]string{"BTCUSDT", "ETHUSDT", "SOLUSDT"}), marketjobs.Config{Now: b.now, Streams: f})
	at := time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)
	depth, tickers := b.simex.Stats().Requests["/api/v3/depth"], b.simex.Stats().Requests["/api/v3/ticker/24hr"]
	require.NoError(t, h.FetchOrderbook(context.Background(), jobs.Job{Kind: jobs.KindFetchOrderbook, ScheduledFor: at}))
	require.NoError(t, h.FetchTicker(context.Background(), jobs.Job{Kind: jobs.KindFetchTicker, ScheduledFor: at}))
	require.Equal(t, depth+1, b.simex.Stats().Requests["/api/v3/depth"], "one depth call: SOLUSDT")
	require.Equal(t, tickers+1, b.simex.Stats().Requests["/api/v3/ticker/24hr"], "one ticker batch: SOLUSDT")
	var books, levels, tick int
	require.NoError(t, b.db.Pool.QueryRow(context.Background(),
		`SELECT count(*), min(jsonb_array_length(bids)) FROM market.orderbook_snapshots WHERE ts = $1`, at).Scan(&books, &levels))
	require.NoError(t, b.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM market.tickers WHERE ts = $1 AND last_price > 0`, at).Scan(&tick))
	require.Equal(t, 3, books)
	require.Equal(t, 100, levels)
	require.Equal(t, 3, tick)
}
