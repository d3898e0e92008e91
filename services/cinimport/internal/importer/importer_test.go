package importer_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/testkit/pgtest"
	"cryptopill.dev/jobs/services/cinimport/internal/importer"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type bundle struct {
	ctx  context.Context
	pool *pgxpool.Pool
	im   *importer.SessionImporter
	t0   time.Time
}

func setup(t *testing.T) *bundle {
	t.Helper()
	d := pgtest.NewDB(t)
	return &bundle{ctx: context.Background(), pool: d.Pool, im: importer.New(d.Pool, importer.Config{}),
		t0: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
}

// statementLog is a pgx tracer that names the statements a pool runs.
type statementLog struct {
	mu    sync.Mutex
	names []string
}

func (l *statementLog) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	name := d.SQL
	if len(name) > 60 {
		name = name[:60]
	}
	for _, k := range []struct{ marker, name string }{
		{"pg_advisory_lock(", "lock"}, {"pg_advisory_unlock(", "unlock"},
		{"WITH RECURSIVE known", "markets"}, {"pg_current_snapshot()", "plan_sessions"},
		{"a.ingest_xid = ANY ($12::xid8[])", "import stored"}, {"WITH bounds AS", "new_trades_span"},
		{"session_import_cursor AS c", "advance_cursor"},
	} {
		if strings.Contains(d.SQL, k.marker) {
			name = k.name
			break
		}
	}
	l.mu.Lock()
	l.names = append(l.names, name)
	l.mu.Unlock()
	return ctx
}

func (l *statementLog) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// countStatements makes the bundle's importer use a pool whose statements are logged, and returns
// the statements run since, without the session locks around each import.
func (b *bundle) countStatements(t *testing.T) func() []string {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(b.pool.Config().ConnString())
	require.NoError(t, err)
	log := &statementLog{}
	cfg.ConnConfig.Tracer = log
	pool, err := pgxpool.NewWithConfig(b.ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	b.im = importer.New(pool, importer.Config{})
	return func() []string {
		log.mu.Lock()
		defer log.mu.Unlock()
		var out []string
		for _, n := range log.names {
			if n != "lock" && n != "unlock" {
				out = append(out, n)
			}
		}
		log.names = nil
		return out
	}
}

type trade struct {
	symbol     string
	id         int64
	price, qty string
	quoteQty   string
	commission string
	feeAsset   string
	at         time.Time
	buyer      bool
	scope      string
}

func (b *bundle) trade(t *testing.T, tr trade) {
	t.Helper()
	if tr.scope == "" {
		tr.scope = "default"
	}
	_, err := b.pool.Exec(b.ctx, `INSERT INTO market.account_trades (symbol, trade_id, order_id, price, qty, quote_qty,
		commission, commission_asset, trade_time, is_buyer, is_maker, account_scope)
		VALUES ($1, $2, $2, $3, $4, $5, $6, $7, $8, $9, false, $10)`,
		tr.symbol, tr.id, tr.price, tr.qty, tr.quoteQty, tr.commission, tr.feeAsset, tr.at, tr.buyer, tr.scope)
	require.NoError(t, err)
}

func (b *bundle) session(t *testing.T, scope string, started time.Time) int64 {
	t.Helper()
	var id int64
	require.NoError(t, b.pool.QueryRow(b.ctx, `INSERT INTO cin_aux.rt_session (account_scope, started_at) VALUES ($1, $2)
		RETURNING session_id`, scope, started).Scan(&id))
	return id
}

func (b *bundle) importSessions(t *testing.T, opts importer.Options, sessions ...importer.Session) map[int64]importer.Result {
	t.Helper()
	res, err := b.im.Import(b.ctx, sessions, opts)
	require.NoError(t, err)
	out := map[int64]importer.Result{}
	for _, r := range res {
		out[r.SessionID] = r
	}
	return out
}

type move struct {
	Side, From, To           string
	FromQty, ToQty           string
	ExecutedUSDT, FeeUSDT    *string
	FeeAsset, FeeQty, Symbol string
}

func (b *bundle) moves(t *testing.T, session int64) map[int64]move {
	t.Helper()
	rows, err := b.pool.Query(b.ctx, `SELECT src_trade_id, side, from_asset, to_asset, from_qty::text, to_qty::text,
		trim_scale(executed_usdt)::text, trim_scale(fee_usdt)::text, fee_asset, fee_qty::text, src_symbol
		FROM cin_aux.rt_move WHERE session_id = $1`, session)
	require.NoError(t, err)
	defer rows.Close()
	out := map[int64]move{}
	for rows.Next() {
		var id int64
		var m move
		require.NoError(t, rows.Scan(&id, &m.Side, &m.From, &m.To, &m.FromQty, &m.ToQty, &m.ExecutedUSDT, &m.FeeUSDT, &m.FeeAsset, &m.FeeQty, &m.Symbol))
		out[id] = m
	}
	require.NoError(t, rows.Err())
	return out
}

func str(s string) *string { return &s }

func TestImportMath(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s := b.session(t, "default", b.t0.Add(-time.Hour))
	t1 := b.t0
	t2 := b.t0.Add(3 * time.Hour)
	// USDT legs: BTC from tickers, BNB from tickers, ETH from a 1h kline that contains t2 only.
	_, err := b.pool.Exec(b.ctx, `INSERT INTO market.tickers (symbol, ts, last_price) VALUES
		('BTCUSDT', $1::timestamptz - interval '10 s', 60000), ('BTCUSDT', $1::timestamptz + interval '10 s', 99999),
		('BNBUSDT', $1::timestamptz - interval '5 s', 600),
		('XRPUSDT', $1::timestamptz - interval '2 hours', 1)`, t1)
	require.NoError(t, err)
	_, err = b.pool.Exec(b.ctx, `INSERT INTO market.klines (symbol, interval, open_time, open, high, low, close, volume,
		close_time, quote_volume, trades, taker_buy_base_volume, taker_buy_quote_volume)
		VALUES ('ETHUSDT', '1h', $1::timestamptz - interval '30 min', 3000, 3200, 2900, 3100, 1,
		        $1::timestamptz + interval '30 min' - interval '1 ms', 1, 1, 1, 1)`, t2)
	require.NoError(t, err)

	b.trade(t, trade{symbol: "BTCUSDT", id: 1, price: "60000", qty: "0.5", quoteQty: "30000", commission: "0.0005", feeAsset: "BTC", at: t1, buyer: true})
	b.trade(t, trade{symbol: "BTCUSDT", id: 2, price: "61000", qty: "0.1", quoteQty: "6100", commission: "6.1", feeAsset: "USDT", at: t1})
	b.trade(t, trade{symbol: "ETHBTC", id: 3, price: "0.05", qty: "2", quoteQty: "0.1", commission: "0.002", feeAsset: "ETH", at: t1, buyer: true})
	b.trade(t, trade{symbol: "ETHBTC", id: 4, price: "0.05", qty: "1", quoteQty: "0.05", commission: "0.01", feeAsset: "BNB", at: t1})
	b.trade(t, trade{symbol: "SOLETH", id: 5, price: "0.05", qty: "10", quoteQty: "0.5", commission: "0.01", feeAsset: "SOL", at: t1, buyer: true})
	b.trade(t, trade{symbol: "SOLETH", id: 6, price: "0.05", qty: "10", quoteQty: "0.5", commission: "0.0005", feeAsset: "ETH", at: t2})
	b.trade(t, trade{symbol: "ADAUSDT", id: 7, price: "0.5", qty: "100", quoteQty: "50", commission: "1", feeAsset: "XRP", at: t1, buyer: true})

	res := b.importSessions(t, importer.Options{}, importer.Session{ID: s})
	require.Equal(t, int64(7), res[s].Moves)
	require.True(t, res[s].FirstTrade.Equal(t1))
	require.True(t, res[s].LastTrade.Equal(t2))

	m := b.moves(t, s)
	// BUY moves quote → base; the fee in the base asset is priced through the trade's price.
	require.Equal(t, move{Side: "BUY", From: "USDT", To: "BTC", FromQty: "30000", ToQty: "0.5",
		ExecutedUSDT: str("30000"), FeeUSDT: str("30"), FeeAsset: "BTC", FeeQty: "0.0005", Symbol: "BTCUSDT"}, m[1])
	// SELL moves base → quote.
	require.Equal(t, move{Side: "SELL", From: "BTC", To: "USDT", FromQty: "0.1", ToQty: "6100",
		ExecutedUSDT: str("6100"), FeeUSDT: str("6.1"), FeeAsset: "USDT", FeeQty: "6.1", Symbol: "BTCUSDT"}, m[2])
	// A BTC quote is priced through BTCUSDT at or before the trade (60000, not the later 99999).
	require.Equal(t, "ETH", m[3].To)
	require.Equal(t, str("6000"), m[3].ExecutedUSDT)
	require.Equal(t, str("6"), m[3].FeeUSDT) // 0.002 ETH × 0.05 BTC/ETH × 60000
	// A BNB fee is priced through BNBUSDT.
	require.Equal(t, "SELL", m[4].Side)
	require.Equal(t, str("3000"), m[4].ExecutedUSDT)
	require.Equal(t, str("6"), m[4].FeeUSDT)
	// No ETH price near t1: NULL, not a guess.
	require.Nil(t, m[5].ExecutedUSDT)
	require.Nil(t, m[5].FeeUSDT)
	// At t2 the ETHUSDT 1h kline containing the trade prices it by its open.
	require.Equal(t, str("1500"), m[6].ExecutedUSDT)
	require.Equal(t, str("1.5"), m[6].FeeUSDT)
	// USDT-quoted, but the XRP fee has only a price two hours old: NULL.
	require.Equal(t, str("50"), m[7].ExecutedUSDT)
	require.Nil(t, m[7].FeeUSDT)
}

func TestImportIsIdempotentAndIncremental(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s := b.session(t, "default", b.t0)
	tr := func(id int64, at time.Time) {
		b.trade(t, trade{symbol: "BTCUSDT", id: id, price: "100", qty: "1", quoteQty: "100", commission: "0", feeAsset: "USDT", at: at, buyer: id%2 == 0})
	}
	for i := int64(1); i <= 50; i++ {
		tr(i, b.t0.Add(time.Duration(i)*time.Minute))
	}
	tr(1000, b.t0.Add(-time.Minute)) // before the session's start: never imported
	require.Equal(t, int64(50), b.importSessions(t, importer.Options{}, importer.Session{ID: s})[s].Moves)
	require.Equal(t, int64(0), b.importSessions(t, importer.Options{}, importer.Session{ID: s})[s].Moves)
	require.Equal(t, int64(0), b.importSessions(t, importer.Options{Full: true}, importer.Session{ID: s})[s].Moves)

	// New trades after the watermark.
	tr(51, b.t0.Add(3*time.Hour))
	require.Equal(t, int64(1), b.importSessions(t, importer.Options{}, importer.Session{ID: s})[s].Moves)

	// Trades stored late behind the watermark, near it or far behind: found by the next import.
	tr(500, b.t0.Add(150*time.Minute))
	require.Equal(t, int64(1), b.importSessions(t, importer.Options{}, importer.Session{ID: s})[s].Moves)
	tr(501, b.t0.Add(90*time.Second))
	tr(502, b.t0.Add(100*time.Second))
	res := b.importSessions(t, importer.Options{}, importer.Session{ID: s})[s]
	require.Equal(t, int64(2), res.Moves)
	require.Equal(t, int64(2), res.Checked, "only the trades stored since the last import are read again")
	require.Equal(t, int64(0), b.importSessions(t, importer.Options{Full: true}, importer.Session{ID: s})[s].Moves)

	var moves, counted int64
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT (SELECT count(*) FROM cin_aux.rt_move WHERE session_id = $1),
		(SELECT moves_imported FROM cin_aux.session_import_cursor WHERE session_id = $1)`, s).Scan(&moves, &counted))
	require.Equal(t, int64(54), moves)
	require.Equal(t, int64(54), counted)
}

// A trade of a market whose quote asset cannot be told waits; it does not fail the import of
// every other trade (and, through the sweep, of every session).
func TestUnknownMarketDoesNotBlockTheImport(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s := b.session(t, "default", b.t0)
	b.trade(t, trade{symbol: "BTCXYZ", id: 1, price: "1", qty: "1", quoteQty: "1", commission: "0", feeAsset: "XYZ", at: b.t0.Add(time.Minute), buyer: true})
	b.trade(t, trade{symbol: "BTCUSDT", id: 2, price: "100", qty: "1", quoteQty: "100", commission: "0", feeAsset: "USDT", at: b.t0.Add(2 * time.Minute), buyer: true})
	res := b.importSessions(t, importer.Options{}, importer.Session{ID: s})[s]
	require.Equal(t, int64(1), res.Moves)
	require.Equal(t, []string{"BTCXYZ"}, res.PendingMarkets, "the market passed over is reported")
	m := b.moves(t, s)
	require.Len(t, m, 1)
	require.Equal(t, "BTCUSDT", m[2].Symbol)
	// Later trades move the watermark further past it.
	b.trade(t, trade{symbol: "BTCUSDT", id: 3, price: "100", qty: "1", quoteQty: "100", commission: "0", feeAsset: "USDT", at: b.t0.Add(3 * time.Minute), buyer: true})
	res = b.importSessions(t, importer.Options{}, importer.Session{ID: s})[s]
	require.Equal(t, int64(1), res.Moves)
	require.Equal(t, []string{"BTCXYZ"}, res.PendingMarkets, "still waiting")

	// Once the market is known, an ordinary import (not a full rescan) finds the trade it passed
	// over, and only once.
	_, err := b.pool.Exec(b.ctx, `INSERT INTO market.symbols (symbol, base_asset, quote_asset, status) VALUES ('BTCXYZ', 'BTC', 'XYZ', 'TRADING')`)
	require.NoError(t, err)
	res = b.importSessions(t, importer.Options{}, importer.Session{ID: s})[s]
	require.Equal(t, int64(1), res.Moves)
	require.Empty(t, res.PendingMarkets)
	m = b.moves(t, s)
	require.Len(t, m, 3)
	require.Equal(t, move{Side: "BUY", From: "XYZ", To: "BTC", FromQty: "1", ToQty: "1", FeeUSDT: str("0"),
		FeeAsset: "XYZ", FeeQty: "0", Symbol: "BTCXYZ"}, m[1])
	require.Equal(t, int64(0), b.importSessions(t, importer.Options{}, importer.Session{ID: s})[s].Moves)
	var pending int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM cin_aux.session_pending_market`).Scan(&pending))
	require.Zero(t, pending)
}

// A trade stored with a trade time days behind the session's watermark, and no trade-insert
// event to say so (dead-lettered, never relayed), is found by the next ordinary import: the
// sweep's. A re-run with nothing new reads no trade, writes nothing and runs a fixed handful
// of statements, however many trades the session has.
func TestLateTradesAreFoundWithoutRescanning(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s := b.session(t, "default", b.t0)
	_, err := b.pool.Exec(b.ctx, `INSERT INTO market.account_trades (symbol, trade_id, order_id, price, qty, quote_qty,
		commission, commission_asset, trade_time, is_buyer, is_maker)
		SELECT 'ETHUSDT', g, g, 10, 1, 10, 0, 'USDT', $1::timestamptz + g * interval '1 minute', true, false
		  FROM generate_series(1, 20000) g`, b.t0) // two weeks of trades
	require.NoError(t, err)
	require.Equal(t, int64(20000), b.importSessions(t, importer.Options{}, importer.Session{ID: s})[s].Moves)

	statements := b.countStatements(t)
	res := b.importSessions(t, importer.Options{}, importer.Session{ID: s})[s]
	require.Equal(t, int64(0), res.Moves)
	require.Equal(t, int64(0), res.Checked, "a re-run with nothing new reads no trade again")
	require.Equal(t, []string{"begin isolation level repeatable read", "SET LOCAL jit = off", "markets", "plan_sessions", "import stored",
		"new_trades_span", "commit"}, statements())
	var updated time.Time
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT updated_at FROM cin_aux.session_import_cursor WHERE session_id = $1`, s).Scan(&updated))

	// Three days behind the watermark, inserted without any event.
	b.trade(t, trade{symbol: "BTCUSDT", id: 30007, price: "100", qty: "1", quoteQty: "100", commission: "0", feeAsset: "USDT", at: b.t0.Add(24 * time.Hour)})
	res = b.importSessions(t, importer.Options{}, importer.Session{ID: s})[s]
	require.Equal(t, int64(1), res.Moves)
	require.Equal(t, int64(1), res.Checked, "only the late trade is read again, not the weeks behind the watermark")
	require.True(t, res.FirstTrade.Equal(b.t0.Add(24*time.Hour)))
	require.Contains(t, b.moves(t, s), int64(30007))

	res = b.importSessions(t, importer.Options{}, importer.Session{ID: s})[s]
	require.Equal(t, int64(0), res.Checked)
	require.Equal(t, int64(0), res.Moves)
	var after time.Time
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT updated_at FROM cin_aux.session_import_cursor WHERE session_id = $1`, s).Scan(&after))
	require.True(t, after.After(updated), "the import that found the late trade moved the watermarks")

	// A trade whose transaction commits after an import has read past it (later trades, stored
	// and committed meanwhile, moved the watermarks) is still found.
	slow, err := b.pool.Begin(b.ctx)
	require.NoError(t, err)
	defer func() { _ = slow.Rollback(b.ctx) }()
	_, err = slow.Exec(b.ctx, `INSERT INTO market.account_trades (symbol, trade_id, order_id, price, qty, quote_qty,
		commission, commission_asset, trade_time, is_buyer, is_maker) VALUES ('BTCUSDT', 30008, 30008, 100, 1, 100, 0, 'USDT', $1, true, false)`,
		b.t0.Add(48*time.Hour))
	require.NoError(t, err)
	b.trade(t, trade{symbol: "BTCUSDT", id: 30009, price: "100", qty: "1", quoteQty: "100", commission: "0", feeAsset: "USDT", at: b.t0.Add(30 * 24 * time.Hour)})
	require.Equal(t, int64(1), b.importSessions(t, importer.Options{}, importer.Session{ID: s})[s].Moves, "trade 30009; 30008 is not committed yet")
	require.NoError(t, slow.Commit(b.ctx))
	res = b.importSessions(t, importer.Options{}, importer.Session{ID: s})[s]
	require.Equal(t, int64(1), res.Moves)
	require.Contains(t, b.moves(t, s), int64(30008))
}

func TestImportFindsOnlyOpenSessionsOfTheirScope(t *testing.T) {
	t.Parallel()
	b := setup(t)
	open := b.session(t, "alice", b.t0)
	other := b.session(t, "bob", b.t0)
	closed := b.session(t, "alice", b.t0)
	_, err := b.pool.Exec(b.ctx, `UPDATE cin_aux.rt_session SET status = 'CLOSED', closed_at = started_at + interval '1 day' WHERE session_id = $1`, closed)
	require.NoError(t, err)
	b.trade(t, trade{symbol: "BTCUSDT", id: 1, price: "100", qty: "1", quoteQty: "100", commission: "0", feeAsset: "USDT", at: b.t0.Add(time.Minute), scope: "alice"})
	b.trade(t, trade{symbol: "BTCUSDT", id: 2, price: "100", qty: "1", quoteQty: "100", commission: "0", feeAsset: "USDT", at: b.t0.Add(time.Minute), scope: "carol"})

	ids, err := b.im.OpenSessions(b.ctx)
	require.NoError(t, err)
	require.Equal(t, []int64{open, other}, ids)
	ids, err = b.im.OpenSessions(b.ctx, "bob")
	require.NoError(t, err)
	require.Equal(t, []int64{other}, ids)

	res := b.importSessions(t, importer.Options{}, importer.Session{ID: open}, importer.Session{ID: other}, importer.Session{ID: closed}, importer.Session{ID: 999})
	require.Len(t, res, 2, "the closed and the missing session are skipped")
	require.Equal(t, int64(1), res[open].Moves)
	require.Equal(t, int64(0), res[other].Moves)
}

func TestConcurrentImportsOfOneSession(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s := b.session(t, "default", b.t0)
	for i := int64(1); i <= 200; i++ {
		b.trade(t, trade{symbol: "ETHUSDT", id: i, price: "10", qty: "1", quoteQty: "10", commission: "0", feeAsset: "USDT", at: b.t0.Add(time.Duration(i) * time.Second)})
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int64
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := b.im.Import(b.ctx, []importer.Session{{ID: s}}, importer.Options{})
			if !t.Failed() {
				require.NoError(t, err)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, r := range res {
				total += r.Moves
			}
		}()
	}
	wg.Wait()
	require.Equal(t, int64(200), total, "each trade imported exactly once across concurrent imports")
}

func TestImportRecoversFromALaggingWatermark(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s := b.session(t, "default", b.t0)
	b.trade(t, trade{symbol: "BTCUSDT", id: 1, price: "100", qty: "1", quoteQty: "100", commission: "0", feeAsset: "USDT", at: b.t0.Add(time.Minute)})
	b.trade(t, trade{symbol: "BTCUSDT", id: 2, price: "100", qty: "1", quoteQty: "100", commission: "0", feeAsset: "USDT", at: b.t0.Add(2 * time.Minute)})
	// A move written by something else, without a watermark.
	_, err := b.pool.Exec(b.ctx, `INSERT INTO cin_aux.rt_move (session_id, src_symbol, src_trade_id, side, from_asset, to_asset,
		from_qty, to_qty, price, trade_time) VALUES ($1, 'BTCUSDT', 2, 'SELL', 'BTC', 'USDT', 1, 100, 100, $2)`, s, b.t0.Add(2*time.Minute))
	require.NoError(t, err)
	require.Equal(t, int64(1), b.importSessions(t, importer.Options{}, importer.Session{ID: s})[s].Moves)
	require.Equal(t, int64(0), b.importSessions(t, importer.Options{}, importer.Session{ID: s})[s].Moves)
}

func TestLargeImportsRunInShares(t *testing.T) {
	t.Parallel()
	for _, maxConns := range []int32{4, 1} { // 1: no connection to spare, the importer does every share
		b := setup(t)
		cfg, err := pgxpool.ParseConfig(b.pool.Config().ConnString())
		require.NoError(t, err)
		cfg.MaxConns = maxConns
		pool, err := pgxpool.NewWithConfig(b.ctx, cfg)
		require.NoError(t, err)
		defer pool.Close()
		im := importer.New(pool, importer.Config{Parallel: 3, ParallelFrom: 10})
		s := b.session(t, "default", b.t0)
		_, err = b.pool.Exec(b.ctx, `INSERT INTO market.account_trades (symbol, trade_id, order_id, price, qty, quote_qty,
			commission, commission_asset, trade_time, is_buyer, is_maker)
			SELECT sym, g, g, 10, 1, 10, 0, 'USDT', $1::timestamptz + g * interval '1 s', true, false
			  FROM generate_series(1, 100) g, unnest('{AUSDT,BUSDT,CUSDT,DUSDT,EUSDT,FUSDT,GUSDT}'::text[]) sym`, b.t0)
		require.NoError(t, err)
		res, err := im.Import(b.ctx, []importer.Session{{ID: s}}, importer.Options{})
		require.NoError(t, err)
		require.Equal(t, int64(700), res[0].Moves, "max conns %d", maxConns)
		res, err = im.Import(b.ctx, []importer.Session{{ID: s}}, importer.Options{})
		require.NoError(t, err)
		require.Equal(t, int64(0), res[0].Moves)

		// A late trade (the late part writes first) and a large increment (in shares, on a
		// snapshot exported after that write).
		b.trade(t, trade{symbol: "ZUSDT", id: 1, price: "10", qty: "1", quoteQty: "10", commission: "0", feeAsset: "USDT", at: b.t0.Add(50 * time.Second)})
		_, err = b.pool.Exec(b.ctx, `INSERT INTO market.account_trades (symbol, trade_id, order_id, price, qty, quote_qty,
			commission, commission_asset, trade_time, is_buyer, is_maker)
			SELECT sym, g, g, 10, 1, 10, 0, 'USDT', $1::timestamptz + g * interval '1 s', true, false
			  FROM generate_series(101, 150) g, unnest('{AUSDT,BUSDT,CUSDT,DUSDT,EUSDT,FUSDT,GUSDT}'::text[]) sym`, b.t0)
		require.NoError(t, err)
		res, err = im.Import(b.ctx, []importer.Session{{ID: s}}, importer.Options{})
		require.NoError(t, err)
		require.Equal(t, int64(351), res[0].Moves)
		require.Len(t, b.moves(t, s), 150, "trade ids 1..150") // moves keyed by trade id across symbols
		var n int64
		require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM cin_aux.rt_move WHERE session_id = $1`, s).Scan(&n))
		require.Equal(t, int64(1051), n)
	}
}

// A session whose start moves earlier gets the trades between the new and the old start from
// the next ordinary import, whatever triggered it (the sweep carries no start): the cursor
// records the start it covers, and only the uncovered span is read again.
func TestAStartMovedEarlierIsImportedWithoutAnEvent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s := b.session(t, "default", b.t0.Add(-time.Hour))
	tr := func(id int64, at time.Time) {
		b.trade(t, trade{symbol: "BTCUSDT", id: id, price: "100", qty: "1", quoteQty: "100", commission: "0", feeAsset: "USDT", at: at, buyer: true})
	}
	tr(1, b.t0.Add(-2*time.Hour))
	tr(2, b.t0.Add(-30*time.Minute))
	tr(3, b.t0)
	require.Equal(t, int64(2), b.importSessions(t, importer.Options{}, importer.Session{ID: s})[s].Moves)
	move := func(start time.Time) {
		t.Helper()
		_, err := b.pool.Exec(b.ctx, `UPDATE cin_aux.rt_session SET started_at = $2 WHERE session_id = $1`, s, start)
		require.NoError(t, err)
	}

	move(b.t0.Add(-3 * time.Hour))
	res := b.importSessions(t, importer.Options{}, importer.Session{ID: s})[s]
	require.Equal(t, int64(1), res.Moves, "the trade between the new and the old start")
	require.Equal(t, int64(1), res.Checked, "only the span the cursor did not cover is read again")
	require.True(t, res.FirstTrade.Equal(b.t0.Add(-2*time.Hour)))
	require.Len(t, b.moves(t, s), 3)
	res = b.importSessions(t, importer.Options{}, importer.Session{ID: s})[s]
	require.Equal(t, movesChecked{}, movesChecked{res.Moves, res.Checked}, "covered now")

	// Moved later, imported, then back: the span is read again, nothing is doubled.
	move(b.t0.Add(-10 * time.Minute))
	tr(4, b.t0.Add(time.Minute)) // something new, so that the cursor records the later start
	require.Equal(t, int64(1), b.importSessions(t, importer.Options{}, importer.Session{ID: s})[s].Moves)
	move(b.t0.Add(-3 * time.Hour))
	res = b.importSessions(t, importer.Options{}, importer.Session{ID: s})[s]
	require.Equal(t, movesChecked{0, 2}, movesChecked{res.Moves, res.Checked}, "trades 1 and 2 checked again, already imported")

	// A cursor from before covered_from was recorded rescans from the start once.
	_, err := b.pool.Exec(b.ctx, `UPDATE cin_aux.session_import_cursor SET covered_from = NULL WHERE session_id = $1`, s)
	require.NoError(t, err)
	res = b.importSessions(t, importer.Options{}, importer.Session{ID: s})[s]
	require.Equal(t, movesChecked{0, 4}, movesChecked{res.Moves, res.Checked})
	res = b.importSessions(t, importer.Options{}, importer.Session{ID: s})[s]
	require.Equal(t, movesChecked{0, 0}, movesChecked{res.Moves, res.Checked})
	require.Len(t, b.moves(t, s), 4)
}

// movesChecked pairs an import's moves and checked trades for one comparison.
type movesChecked struct{ Moves, Checked int64 }

// A stored snapshot is trusted only in the cluster it was taken in and while it is not ahead of
// the cluster's transaction ids. After a dump restored into another cluster, new xids are lower
// than the stored snapshot's: a trade stored late would look seen and be passed over until they
// caught up. Such a snapshot is treated as none: the import looks at every trade once.
func TestASnapshotOfAnotherClusterOrAheadOfItIsNotTrusted(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		reason string
		// sets the cursor's snapshot; $2 is the late trade's ingest_xid + 1
		set string
	}{
		{"other_cluster", `UPDATE cin_aux.session_import_cursor SET seen_snapshot = format('%s:%s:', $2::bigint, $2::bigint)::pg_snapshot,
			seen_system_id = (SELECT system_identifier + 1 FROM pg_control_system()) WHERE session_id = $1`},
		{"ahead_of_cluster", `UPDATE cin_aux.session_import_cursor SET seen_snapshot = format('%s:%s:', x, x)::pg_snapshot
			FROM (SELECT greatest($2::bigint, pg_snapshot_xmax(pg_current_snapshot())::text::bigint) + 1000000 AS x) f WHERE session_id = $1`},
		{"unrecorded_cluster", `UPDATE cin_aux.session_import_cursor SET seen_snapshot = format('%s:%s:', $2::bigint, $2::bigint)::pg_snapshot,
			seen_system_id = NULL WHERE session_id = $1`},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			s := b.session(t, "default", b.t0)
			for i := int64(1); i <= 3; i++ {
				b.trade(t, trade{symbol: "BTCUSDT", id: i, price: "100", qty: "1", quoteQty: "100", commission: "0", feeAsset: "USDT", at: b.t0.Add(time.Duration(i) * time.Hour), buyer: true})
			}
			res := b.importSessions(t, importer.Options{}, importer.Session{ID: s})[s]
			require.Equal(t, int64(3), res.Moves)
			require.Empty(t, res.SnapshotDiscarded)

			// The trades imported so far came with the dump: their xids are the old cluster's,
			// beyond this one's.
			_, err := b.pool.Exec(b.ctx, `UPDATE market.account_trades
				SET ingest_xid = (pg_snapshot_xmax(pg_current_snapshot())::text::bigint + 2000000)::text::xid8`)
			require.NoError(t, err)
			// Stored late, behind the watermark, as the restored cluster's first transactions.
			b.trade(t, trade{symbol: "BTCUSDT", id: 10, price: "100", qty: "1", quoteQty: "100", commission: "0", feeAsset: "USDT", at: b.t0.Add(time.Minute), buyer: true})
			var next int64
			require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT ingest_xid::text::bigint + 1 FROM market.account_trades WHERE trade_id = 10`).Scan(&next))
			_, err = b.pool.Exec(b.ctx, tc.set, s, next)
			require.NoError(t, err)

			res = b.importSessions(t, importer.Options{}, importer.Session{ID: s})[s]
			require.Equal(t, tc.reason, res.SnapshotDiscarded)
			require.Equal(t, movesChecked{1, 4}, movesChecked{res.Moves, res.Checked}, "every trade looked at once, the late one imported")
			require.Contains(t, b.moves(t, s), int64(10))
			res = b.importSessions(t, importer.Options{}, importer.Session{ID: s})[s]
			require.Empty(t, res.SnapshotDiscarded, "the cursor holds this cluster's snapshot now")
			require.Equal(t, movesChecked{0, 0}, movesChecked{res.Moves, res.Checked}, "the restored trades' xids are not read again")
			b.trade(t, trade{symbol: "BTCUSDT", id: 11, price: "100", qty: "1", quoteQty: "100", commission: "0", feeAsset: "USDT", at: b.t0.Add(2 * time.Minute), buyer: true})
			res = b.importSessions(t, importer.Options{}, importer.Session{ID: s})[s]
			require.Equal(t, movesChecked{1, 1}, movesChecked{res.Moves, res.Checked}, "a trade stored late after the restore")
		})
	}
}
