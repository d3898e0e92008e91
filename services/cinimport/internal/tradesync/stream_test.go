package tradesync_test

import (
	"context"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/exchange"
	"cryptopill.dev/jobs/libs/simex"
	"cryptopill.dev/jobs/libs/testkit/clocktest"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
	"cryptopill.dev/jobs/services/cinimport/internal/tradesync"
)

// streamBundle is a running StreamSync and UserStream over the simulated exchange, on one
// manual clock.
type streamBundle struct {
	db     *pgtest.DB
	clock  *clocktest.Clock
	ex     *simex.Exchange
	stream *exchange.UserStream
	sync   *tradesync.StreamSync
	reg    *prometheus.Registry

	mu     sync.Mutex
	sweeps []string // reasons of the finished sweeps
}

var streamSymbols = [][3]string{{"BTCUSDT", "BTC", "USDT"}, {"ETHUSDT", "ETH", "USDT"}, {"ETHBTC", "ETH", "BTC"}}

func setupStream(t *testing.T) *streamBundle {
	t.Helper()
	ctx := context.Background()
	b := &streamBundle{db: pgtest.NewDB(t), clock: clocktest.NewClock(clocktest.Afternoon), reg: prometheus.NewRegistry()}
	var symbols []string
	for _, s := range streamSymbols {
		symbols = append(symbols, s[0])
	}
	ex, err := simex.New(simex.Config{Symbols: symbols, APIKey: "k", APISecret: "s", Seed: 5,
		TradesSince: clocktest.Afternoon.Add(-48 * time.Hour), TradeEvery: time.Minute, WeightLimit: -1, Now: b.clock.Now})
	require.NoError(t, err)
	b.ex = ex
	srv := httptest.NewServer(ex)
	t.Cleanup(srv.Close)
	client, err := exchange.New(exchange.Config{BaseURL: srv.URL, APIKey: "k", APISecret: "s", WeightLimit: 6000, Now: b.clock.Now})
	require.NoError(t, err)
	for _, s := range streamSymbols {
		_, err = b.db.Pool.Exec(ctx, `INSERT INTO settings.coin_universe (symbol, base_asset, quote_asset) VALUES ($1, $2, $3)`, s[0], s[1], s[2])
		require.NoError(t, err)
	}
	ts := tradesync.New(b.db.Pool, client, tradesync.Config{Lookback: 24 * time.Hour, Now: b.clock.Now})
	b.sync = tradesync.NewStreamSync(ts, tradesync.StreamConfig{Registerer: b.reg, Now: b.clock.Now,
		OnSweep: func(_ context.Context, reason string, _ tradesync.Result) {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.sweeps = append(b.sweeps, reason)
		}})
	wsURL, err := exchange.StreamURLFor(srv.URL)
	require.NoError(t, err)
	b.stream, err = exchange.NewUserStream(client, exchange.UserStreamConfig{URL: wsURL, Now: b.clock.Now,
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond}, b.sync)
	require.NoError(t, err)
	tradesync.RegisterStreamStats(b.reg, b.stream.Stats)
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = b.stream.Run(rctx) }()
	go func() { defer wg.Done(); _ = b.sync.Run(rctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	b.waitSweeps(t, tradesync.ReasonStart)
	return b
}

// waitSweeps waits until the finished sweeps are exactly reasons.
func (b *streamBundle) waitSweeps(t *testing.T, reasons ...string) {
	t.Helper()
	require.Eventually(t, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.sweeps) >= len(reasons)
	}, 10*time.Second, 5*time.Millisecond)
	b.mu.Lock()
	defer b.mu.Unlock()
	require.Equal(t, reasons, b.sweeps)
}

func (b *streamBundle) requests(path string) int64 { return b.ex.Stats().Requests[path] }

// holes counts the trade ids missing between each symbol's first and last stored trade, and
// returns the highest stored trade time.
func (b *streamBundle) holes(t *testing.T) (holes int64, latest time.Time) {
	t.Helper()
	require.NoError(t, b.db.Pool.QueryRow(context.Background(), `
		SELECT coalesce(sum(max_id - min_id + 1 - n), 0)::bigint, max(latest) FROM (
		  SELECT min(trade_id) AS min_id, max(trade_id) AS max_id, count(*) AS n, max(trade_time) AS latest
		    FROM market.account_trades GROUP BY symbol) s`).Scan(&holes, &latest))
	return holes, latest
}

func (b *streamBundle) stored(t *testing.T) int64 {
	var n int64
	require.NoError(t, b.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM market.account_trades`).Scan(&n))
	return n
}

func (b *streamBundle) cursorSum(t *testing.T) int64 {
	var n int64
	require.NoError(t, b.db.Pool.QueryRow(context.Background(), `SELECT coalesce(sum(last_trade_id), 0)::bigint FROM market.trade_cursors`).Scan(&n))
	return n
}

func TestStreamedTradesAreStoredWithoutPolling(t *testing.T) {
	t.Parallel()
	b := setupStream(t)
	bootstrapped, calls, cursors := b.stored(t), b.requests("/api/v3/myTrades"), b.cursorSum(t)
	require.Positive(t, bootstrapped)
	require.GreaterOrEqual(t, calls, int64(len(streamSymbols)), "the bootstrap: a call or more per symbol")
	require.Equal(t, float64(exchange.MyTradesWeight*calls),
		testutil.ToFloat64(mustCounter(t, b.reg, "cp_cinimport_reconcile_weight_total", tradesync.ReasonStart)))

	// Every trade stored came from a sweep or the stream (the clock runs on, so a trade can
	// happen during the bootstrap and come by both), and every pushed event was handled.
	counted := func(name string, labels ...string) int64 {
		return int64(testutil.ToFloat64(mustCounter(t, b.reg, name, labels...)))
	}
	settled := func() bool {
		streamed, dup := counted("cp_cinimport_stream_trades_total", "stored"), counted("cp_cinimport_stream_trades_total", "duplicate")
		events := b.ex.UserStreamStats().Events
		return events > 0 && streamed+dup == events && b.stored(t) == counted("cp_cinimport_reconcile_trades_total")+streamed
	}
	// Fifty minutes, in steps under the keepalive period: trades arrive from the stream only.
	for range 5 {
		b.clock.Jump(10 * time.Minute)
		require.Eventually(t, settled, 10*time.Second, 5*time.Millisecond)
		time.Sleep(1100 * time.Millisecond) // the stream's once-a-second keepalive check runs
	}
	require.Zero(t, counted("cp_cinimport_stream_trades_total", "failed"))
	holes, latest := b.holes(t)
	require.Zero(t, holes)
	require.True(t, latest.After(clocktest.Afternoon.Add(45*time.Minute)), "trades up to now: %s", latest)
	require.Greater(t, b.stored(t)-bootstrapped, int64(90), "about 50 minutes of 3 symbols' trades")
	require.Equal(t, calls, b.requests("/api/v3/myTrades"), "no myTrades call after the bootstrap")
	require.Equal(t, cursors, b.cursorSum(t), "streamed trades do not move the fromId cursors")
	b.waitSweeps(t, tradesync.ReasonStart)

	// Weight after start: one listenKey and one keepalive (2 each) in fifty minutes.
	require.Equal(t, int64(2), b.requests("/api/v3/userDataStream"))
	require.Equal(t, 1.0, gauge(t, b.reg, "cp_cinimport_user_stream_up"))

	// The hour passes: the periodic sweep pages from the cursors over the hour's trades, which
	// the stream has stored already.
	swept := counted("cp_cinimport_reconcile_trades_total")
	b.clock.Jump(15 * time.Minute)
	b.waitSweeps(t, tradesync.ReasonStart, tradesync.ReasonInterval)
	require.Equal(t, calls+int64(len(streamSymbols)), b.requests("/api/v3/myTrades"), "one page per symbol")
	require.Equal(t, swept, counted("cp_cinimport_reconcile_trades_total"), "the periodic sweep found nothing the stream had missed")
}

func TestReconnectSweepRecoversWhatTheStreamMissed(t *testing.T) {
	t.Parallel()
	b := setupStream(t)
	b.ex.SetStreamFaults(simex.StreamFaults{UserStreamDown: true})
	require.Eventually(t, func() bool { return !b.stream.Stats().Up }, 10*time.Second, 5*time.Millisecond)
	before := b.stored(t)
	b.clock.Jump(20 * time.Minute) // trades happen while the stream is down
	time.Sleep(200 * time.Millisecond)
	require.Equal(t, before, b.stored(t), "nothing arrives while the stream is down")
	require.Equal(t, 0.0, gauge(t, b.reg, "cp_cinimport_user_stream_up"))

	b.ex.SetStreamFaults(simex.StreamFaults{})
	b.waitSweeps(t, tradesync.ReasonStart, tradesync.ReasonReconnect)
	holes, latest := b.holes(t)
	require.Zero(t, holes, "the sweep filled the gap")
	require.True(t, latest.After(clocktest.Afternoon.Add(15*time.Minute)), "the trades made while it was down: %s", latest)
	require.Greater(t, b.stored(t)-before, int64(30))
	require.Positive(t, testutil.ToFloat64(mustCounter(t, b.reg, "cp_cinimport_reconcile_sweeps_total", tradesync.ReasonReconnect, "ok")))

	// The stream goes on after the sweep.
	after := b.stored(t)
	b.clock.Jump(5 * time.Minute)
	require.Eventually(t, func() bool { return b.stored(t) > after }, 10*time.Second, 5*time.Millisecond)
}

func TestExpiredListenKeyIsReplacedAndTheGapSwept(t *testing.T) {
	t.Parallel()
	b := setupStream(t)
	b.ex.ExpireListenKeys()
	b.waitSweeps(t, tradesync.ReasonStart, tradesync.ReasonReconnect)
	st := b.stream.Stats()
	require.Equal(t, int64(2), st.ListenKeys, "a new key")
	require.Equal(t, int64(1), st.Expired)
	require.True(t, st.Up)
	require.Equal(t, 2.0, testutil.ToFloat64(mustCounter(t, b.reg, "cp_cinimport_user_stream_listen_keys_total")))
	require.Equal(t, 1.0, testutil.ToFloat64(mustCounter(t, b.reg, "cp_cinimport_user_stream_listen_key_expiries_total")))
	before := b.stored(t)
	b.clock.Jump(5 * time.Minute)
	require.Eventually(t, func() bool { return b.stored(t) > before }, 10*time.Second, 5*time.Millisecond)
}

// A trade from the stream is stored but leaves the cursor: the ids the stream skipped before
// it are still fetched by the next sweep.
func TestStreamedTradeDoesNotMoveTheCursorPastMissedTrades(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := pgtest.NewDB(t)
	clock := clocktest.NewClock(clocktest.Afternoon)
	ex, err := simex.New(simex.Config{Symbols: []string{"BTCUSDT"}, APIKey: "k", APISecret: "s",
		TradesSince: clocktest.Afternoon.Add(-24 * time.Hour), TradeEvery: time.Minute, WeightLimit: -1, Now: clock.Now})
	require.NoError(t, err)
	srv := httptest.NewServer(ex)
	t.Cleanup(srv.Close)
	client, err := exchange.New(exchange.Config{BaseURL: srv.URL, APIKey: "k", APISecret: "s", WeightLimit: 6000, Now: clock.Now})
	require.NoError(t, err)
	s := tradesync.New(d.Pool, client, tradesync.Config{Symbols: []string{"BTCUSDT"}, Lookback: 24 * time.Hour, Now: clock.Now})
	_, err = s.Sync(ctx)
	require.NoError(t, err)

	// Half an hour of trades; the stream delivers only the last one.
	clock.Jump(30 * time.Minute)
	var cursor int64
	require.NoError(t, d.Pool.QueryRow(ctx, `SELECT last_trade_id FROM market.trade_cursors`).Scan(&cursor))
	from := cursor + 1
	missed, err := client.MyTrades(ctx, exchange.MyTradesRequest{Symbol: "BTCUSDT", FromID: &from})
	require.NoError(t, err)
	require.Greater(t, len(missed), 10)
	last := missed[len(missed)-1]
	stored, err := s.StoreStreamed(ctx, last)
	require.NoError(t, err)
	require.True(t, stored)
	stored, err = s.StoreStreamed(ctx, last)
	require.NoError(t, err)
	require.False(t, stored, "idempotent on the trade's key")

	res, err := s.Sync(ctx)
	require.NoError(t, err)
	require.Equal(t, len(missed)-1, res.Stored, "the sweep fetched the trades the stream missed")
	require.Equal(t, 1, res.Calls)
	require.Equal(t, exchange.MyTradesWeight, res.Weight)
}

// Sweeps are paced: WeightPerMinute 300 spaces myTrades calls (weight 20) four seconds apart.
func TestSweepIsPacedToItsWeightBudget(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := pgtest.NewDB(t)
	clock := clocktest.NewClock(clocktest.Afternoon)
	clock.Pause()
	syms := simex.GeneratedSymbols(10)
	ex, err := simex.New(simex.Config{Symbols: syms, APIKey: "k", APISecret: "s",
		TradesSince: clocktest.Afternoon.Add(-time.Hour), TradeEvery: time.Minute, WeightLimit: -1, Now: clock.Now})
	require.NoError(t, err)
	srv := httptest.NewServer(ex)
	t.Cleanup(srv.Close)
	client, err := exchange.New(exchange.Config{BaseURL: srv.URL, APIKey: "k", APISecret: "s", WeightLimit: 6000, Now: clock.Now})
	require.NoError(t, err)
	var slept time.Duration
	s := tradesync.New(d.Pool, client, tradesync.Config{Symbols: syms, Lookback: time.Hour, WeightPerMinute: 300, Now: clock.Now,
		Sleep: func(_ context.Context, d time.Duration) error { slept += d; clock.Jump(d); return nil }})
	start := clock.Now()
	res, err := s.Sync(ctx)
	require.NoError(t, err)
	require.Empty(t, res.Failed)
	require.GreaterOrEqual(t, res.Calls, len(syms), "at least one call per symbol")
	require.Equal(t, time.Duration(res.Calls-1)*4*time.Second, slept, "calls four seconds apart, the first at once")
	perMinute := float64(res.Weight) / clock.Now().Sub(start).Minutes()
	require.LessOrEqual(t, perMinute, 300*float64(res.Calls)/float64(res.Calls-1), "within the budget (one call's burst)")
}

func mustCounter(t *testing.T, reg *prometheus.Registry, name string, labels ...string) prometheus.Collector {
	t.Helper()
	return labelled{reg: reg, name: name, labels: labels, t: t}
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	return testutil.ToFloat64(labelled{reg: reg, name: name, t: t})
}

// labelled is the one series of a registry's metric family with these label values.
type labelled struct {
	reg    *prometheus.Registry
	name   string
	labels []string
	t      *testing.T
}

func (l labelled) Describe(chan<- *prometheus.Desc) {}

func (l labelled) Collect(ch chan<- prometheus.Metric) {
	mfs, err := l.reg.Gather()
	require.NoError(l.t, err)
	for _, mf := range mfs {
		if mf.GetName() != l.name {
			continue
		}
		for _, m := range mf.GetMetric() {
			ok := len(m.GetLabel()) == len(l.labels)
			for i, lp := range m.GetLabel() {
				ok = ok && lp.GetValue() == l.labels[i]
			}
			if !ok {
				continue
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(l.name, "", nil, nil), prometheus.UntypedValue, v)
			return
		}
	}
	l.t.Fatalf("no series %s%v", l.name, l.labels)
}

// sixHoursOfTrades is a sync of BTCUSDT alone on an exchange where the account has traded
// BTCUSDT and ETHUSDT every two minutes or so for six hours.
func sixHoursOfTrades(t *testing.T) (*pgtest.DB, *tradesync.TradeSync) {
	t.Helper()
	d := pgtest.NewDB(t)
	clock := clocktest.NewClock(clocktest.Afternoon)
	ex, err := simex.New(simex.Config{Symbols: []string{"BTCUSDT", "ETHUSDT"}, APIKey: "k", APISecret: "s",
		TradesSince: clocktest.Afternoon.Add(-6 * time.Hour), TradeEvery: 2 * time.Minute, WeightLimit: -1, Now: clock.Now})
	require.NoError(t, err)
	srv := httptest.NewServer(ex)
	t.Cleanup(srv.Close)
	client, err := exchange.New(exchange.Config{BaseURL: srv.URL, APIKey: "k", APISecret: "s", WeightLimit: 6000, Now: clock.Now})
	require.NoError(t, err)
	return d, tradesync.New(d.Pool, client, tradesync.Config{Symbols: []string{"BTCUSDT"}, Now: clock.Now})
}

// A symbol whose trades all fall in the look-back bootstraps from its oldest trade (fromId 0),
// one call per page, not a walk of the look-back's days.
func TestBootstrapFromTheOldestTrades(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, s := sixHoursOfTrades(t)
	res, err := s.Sync(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, res.Calls, "six hours of trades: one page from id 0, not seven day windows")
	require.Greater(t, res.Stored, 100)
	var holes int64
	require.NoError(t, d.Pool.QueryRow(ctx, `SELECT max(trade_id) - min(trade_id) + 1 - count(*) FROM market.account_trades`).Scan(&holes))
	require.Zero(t, holes)
}

// A symbol the stream brings trades of that the sweeps do not cover (here: not configured) is
// swept from then on, so what the stream missed of it is fetched too.
func TestStreamedSymbolOutsideTheSweepsIsSweptFromThenOn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, s := sixHoursOfTrades(t)
	res, err := s.Sync(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, res.Calls)
	require.False(t, s.Include("BTCUSDT"), "swept already")
	require.True(t, s.Include("ETHUSDT"))
	require.False(t, s.Include("ETHUSDT"), "added once")
	res, err = s.Sync(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, res.Calls, "BTCUSDT from its cursor, ETHUSDT bootstrapped")
	var eth int
	require.NoError(t, d.Pool.QueryRow(ctx, `SELECT count(*) FROM market.account_trades WHERE symbol = 'ETHUSDT'`).Scan(&eth))
	require.Greater(t, eth, 100)
}

// The measured problem: 200 symbols polled every minute cost ~4,000 weight a minute. In stream
// mode the bootstrap is one paced call a symbol, and after it the REST weight is the listenKey's.
func TestTwoHundredSymbolsCostAlmostNoWeightAfterStart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := pgtest.NewDB(t)
	clock := clocktest.NewClock(clocktest.Afternoon)
	clock.Pause() // time passes only by the pacing's and the test's jumps
	syms := simex.GeneratedSymbols(200)
	ex, err := simex.New(simex.Config{Symbols: syms, APIKey: "k", APISecret: "s",
		TradesSince: clocktest.Afternoon.Add(-time.Hour), TradeEvery: 10 * time.Minute, WeightLimit: -1, Now: clock.Now})
	require.NoError(t, err)
	srv := httptest.NewServer(ex)
	t.Cleanup(srv.Close)
	client, err := exchange.New(exchange.Config{BaseURL: srv.URL, APIKey: "k", APISecret: "s", WeightLimit: 6000, Now: clock.Now})
	require.NoError(t, err)
	var slept time.Duration
	var sleptMu sync.Mutex
	ts := tradesync.New(d.Pool, client, tradesync.Config{Symbols: syms, WeightPerMinute: 300, Now: clock.Now,
		Sleep: func(_ context.Context, d time.Duration) error {
			sleptMu.Lock()
			slept += d
			sleptMu.Unlock()
			clock.Jump(d)
			return nil
		}})
	sweeps := make(chan tradesync.Result, 4)
	ss := tradesync.NewStreamSync(ts, tradesync.StreamConfig{Now: clock.Now,
		OnSweep: func(_ context.Context, reason string, res tradesync.Result) {
			t.Logf("sweep %s: %d calls", reason, res.Calls)
			sweeps <- res
		}})
	wsURL, err := exchange.StreamURLFor(srv.URL)
	require.NoError(t, err)
	us, err := exchange.NewUserStream(client, exchange.UserStreamConfig{URL: wsURL, Now: clock.Now}, ss)
	require.NoError(t, err)
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = us.Run(rctx) }()
	go func() { defer wg.Done(); _ = ss.Run(rctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })

	var boot tradesync.Result
	select {
	case boot = <-sweeps:
	case <-time.After(60 * time.Second):
		t.Fatal("no bootstrap sweep")
	}
	require.Empty(t, boot.Failed)
	require.Equal(t, 200, boot.Calls, "one call a symbol")
	sleptMu.Lock()
	require.Equal(t, 199*4*time.Second, slept, "paced to 300 weight a minute")
	sleptMu.Unlock()
	after := ex.Stats().Requests
	weight := func() int64 {
		now := ex.Stats().Requests
		return 20*(now["/api/v3/myTrades"]-after["/api/v3/myTrades"]) + 2*(now["/api/v3/userDataStream"]-after["/api/v3/userDataStream"])
	}

	// Forty minutes after start: trades arrive from the stream; REST weight is one keepalive.
	events := ex.UserStreamStats().Events
	for range 2 {
		clock.Jump(20 * time.Minute)
		time.Sleep(1100 * time.Millisecond) // the stream's once-a-second keepalive check
	}
	require.Eventually(t, func() bool { return ex.UserStreamStats().Events > events+500 }, 30*time.Second, 10*time.Millisecond)
	require.LessOrEqual(t, weight(), int64(2), "at most a keepalive's weight in forty minutes")
	t.Logf("after start: %d REST weight in 40 minutes; %d trades streamed", weight(), ex.UserStreamStats().Events-events)
}

// passMinutes moves the clock on by n minutes in steps the stream's once-a-second keepalive
// check follows, so its listenKey stays alive.
func (b *streamBundle) passMinutes(n int) {
	for n > 0 {
		step := min(n, 10)
		b.clock.Jump(time.Duration(step) * time.Minute)
		time.Sleep(1100 * time.Millisecond)
		n -= step
	}
}

// unlistedSymbolMissed puts a symbol the exchange does not list in the universe, so every sweep
// misses it, and waits for the hourly sweep that first does.
func (b *streamBundle) unlistedSymbolMissed(t *testing.T) {
	t.Helper()
	_, err := b.db.Pool.Exec(context.Background(), `INSERT INTO settings.coin_universe (symbol, base_asset, quote_asset) VALUES ('NOPEUSDT', 'NOPE', 'USDT')`)
	require.NoError(t, err)
	b.passMinutes(60)
	b.waitSweeps(t, tradesync.ReasonStart, tradesync.ReasonInterval)
}

// A sweep that misses a symbol is retried a minute later, then two, then four, not an hour
// later: until it reaches every symbol, what the stream missed stays missing.
func TestIncompleteSweepIsRetriedSoon(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupStream(t)
	last := gauge(t, b.reg, "cp_cinimport_reconcile_last_success_timestamp_seconds")
	require.Positive(t, last)
	require.Equal(t, 3600.0, gauge(t, b.reg, "cp_cinimport_reconcile_interval_seconds"))
	require.InDelta(t, float64(clocktest.Afternoon.Unix()), gauge(t, b.reg, "cp_cinimport_reconcile_start_timestamp_seconds"), 1, "when the sync started")

	b.unlistedSymbolMissed(t)
	partial := func(reason string) float64 {
		return testutil.ToFloat64(mustCounter(t, b.reg, "cp_cinimport_reconcile_sweeps_total", reason, "partial"))
	}
	require.Equal(t, 1.0, partial(tradesync.ReasonInterval))

	calls := b.requests("/api/v3/myTrades")
	b.passMinutes(1)
	b.waitSweeps(t, tradesync.ReasonStart, tradesync.ReasonInterval, tradesync.ReasonRetry)
	require.Equal(t, calls+1, b.requests("/api/v3/myTrades"), "the retry sweeps the symbol missed alone")
	b.passMinutes(1) // the second retry waits two minutes
	b.waitSweeps(t, tradesync.ReasonStart, tradesync.ReasonInterval, tradesync.ReasonRetry)
	b.passMinutes(1)
	b.waitSweeps(t, tradesync.ReasonStart, tradesync.ReasonInterval, tradesync.ReasonRetry, tradesync.ReasonRetry)
	require.Equal(t, 2.0, partial(tradesync.ReasonRetry))
	require.Equal(t, last, gauge(t, b.reg, "cp_cinimport_reconcile_last_success_timestamp_seconds"), "no complete sweep yet")

	// The symbol goes: the next retry (four minutes on) reaches every symbol, and then the
	// sweeps are hourly again.
	_, err := b.db.Pool.Exec(ctx, `UPDATE settings.coin_universe SET enabled = false WHERE symbol = 'NOPEUSDT'`)
	require.NoError(t, err)
	b.passMinutes(4)
	b.waitSweeps(t, tradesync.ReasonStart, tradesync.ReasonInterval, tradesync.ReasonRetry, tradesync.ReasonRetry, tradesync.ReasonRetry)
	require.Equal(t, 1.0, testutil.ToFloat64(mustCounter(t, b.reg, "cp_cinimport_reconcile_sweeps_total", tradesync.ReasonRetry, "ok")))
	require.Greater(t, gauge(t, b.reg, "cp_cinimport_reconcile_last_success_timestamp_seconds"), last)
	b.passMinutes(10)
	b.waitSweeps(t, tradesync.ReasonStart, tradesync.ReasonInterval, tradesync.ReasonRetry, tradesync.ReasonRetry, tradesync.ReasonRetry)
}

// A symbol that always fails is retried alone, ever less often, and the hourly sweep of every
// symbol goes on regardless.
func TestSymbolThatAlwaysFailsDoesNotStopTheHourlySweep(t *testing.T) {
	t.Parallel()
	b := setupStream(t)
	b.unlistedSymbolMissed(t)
	// The clock moves in 10-minute steps: a retry at each of the first four (each waits twice
	// as long as the one before: 1, 2, 4, 8 minutes); the fifth (16) is not due at the fifth
	// step, and at the sixth the hour is up: every symbol is swept again.
	b.passMinutes(60)
	b.waitSweeps(t, tradesync.ReasonStart, tradesync.ReasonInterval, tradesync.ReasonRetry, tradesync.ReasonRetry,
		tradesync.ReasonRetry, tradesync.ReasonRetry, tradesync.ReasonInterval)
	require.Equal(t, 2.0, testutil.ToFloat64(mustCounter(t, b.reg, "cp_cinimport_reconcile_sweeps_total", tradesync.ReasonInterval, "partial")))
}
