package db_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/testkit/pgtest"
)

const (
	checkViolation  = "23514"
	uniqueViolation = "23505"
)

// requireViolation fails unless err is a Postgres error with code on the named constraint.
func requireViolation(t *testing.T, err error, code, constraint string) {
	t.Helper()
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "want %s on %s, got %v", code, constraint, err)
	require.Equal(t, code, pgErr.Code, pgErr.Message)
	require.Equal(t, constraint, pgErr.ConstraintName, pgErr.Message)
}

type schemaBundle struct {
	ctx context.Context
	db  *pgtest.DB
}

func setupSchema(t *testing.T) schemaBundle {
	t.Helper()
	t.Parallel()
	return schemaBundle{ctx: context.Background(), db: pgtest.NewDB(t)}
}

func (b schemaBundle) exec(sql string, args ...any) error {
	_, err := b.db.Pool.Exec(b.ctx, sql, args...)
	return err
}

func TestDefaultWindowsAreBinanceIntervals(t *testing.T) {
	b := setupSchema(t)
	rows, err := b.db.Pool.Query(b.ctx, `SELECT label, extract(epoch FROM duration)::int, cycles FROM settings.windows ORDER BY duration`)
	require.NoError(t, err)
	type window struct {
		label   string
		seconds int
		cycles  int
	}
	var got []window
	for rows.Next() {
		var w window
		require.NoError(t, rows.Scan(&w.label, &w.seconds, &w.cycles))
		got = append(got, w)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []window{{"30m", 1800, 45}, {"1h", 3600, 90}, {"4h", 14400, 360}}, got)
}

func TestWindowLabelMustBeBinanceInterval(t *testing.T) {
	b := setupSchema(t)
	for _, label := range []string{"3h", "2m", "1H", "", "30 m"} {
		err := b.exec(`INSERT INTO settings.windows (label, cycles) VALUES ($1, 10)`, label)
		requireViolation(t, err, checkViolation, "windows_label_binance_interval")
	}
	require.NoError(t, b.exec(`INSERT INTO settings.windows (label, cycles) VALUES ('1M', 64800), ('1w', 15120)`))
	var month, week string
	require.NoError(t, b.db.Pool.QueryRow(b.ctx,
		`SELECT (SELECT duration::text FROM settings.windows WHERE label = '1M'),
		        (SELECT duration::text FROM settings.windows WHERE label = '1w')`).Scan(&month, &week))
	require.Equal(t, "1 mon", month)
	require.Equal(t, "7 days", week)

	requireViolation(t, b.exec(`UPDATE settings.windows SET label = '3h' WHERE label = '4h'`),
		checkViolation, "windows_label_binance_interval")
	requireViolation(t, b.exec(`INSERT INTO settings.windows (label, cycles) VALUES ('2h', 0)`),
		checkViolation, "windows_cycles_positive")
}

func TestKlineIntervalMustBeBinanceInterval(t *testing.T) {
	b := setupSchema(t)
	const insert = `
		INSERT INTO market.klines (symbol, interval, open_time, open, high, low, close, volume, close_time,
		                           quote_volume, trades, taker_buy_base_volume, taker_buy_quote_volume)
		VALUES ('BTCUSDT', $1, '2024-01-01T00:00:00Z', 1, 2, 0.5, 1.5, 10, '2024-01-01T00:59:59.999Z', 15, 3, 5, 7.5)`
	requireViolation(t, b.exec(insert, "3h"), checkViolation, "klines_interval_binance")
	require.NoError(t, b.exec(insert, "1h"))
	requireViolation(t, b.exec(insert, "1h"), uniqueViolation, "klines_pkey")
	requireViolation(t, b.exec(`INSERT INTO market.kline_cursors (symbol, interval, last_open_time) VALUES ('BTCUSDT', '3h', now())`),
		checkViolation, "kline_cursors_interval_binance")
}

func TestCoinUniverse(t *testing.T) {
	b := setupSchema(t)
	require.NoError(t, b.exec(`INSERT INTO settings.coin_universe (symbol, base_asset, quote_asset) VALUES ('BTCUSDT', 'BTC', 'USDT')`))
	require.NoError(t, b.exec(`INSERT INTO settings.coin_universe (symbol, base_asset, quote_asset, enabled) VALUES ('ETHUSDT', 'ETH', 'USDT', NULL)`))
	require.NoError(t, b.exec(`INSERT INTO settings.coin_universe (symbol, base_asset, quote_asset, enabled) VALUES ('BNBUSDT', 'BNB', 'USDT', false)`))

	var enabled []string
	rows, err := b.db.Pool.Query(b.ctx, `SELECT symbol FROM settings.coin_universe WHERE COALESCE(enabled, true) ORDER BY symbol`)
	require.NoError(t, err)
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		enabled = append(enabled, s)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"BTCUSDT", "ETHUSDT"}, enabled, "the default and NULL both mean enabled")

	requireViolation(t, b.exec(`INSERT INTO settings.coin_universe (symbol, base_asset, quote_asset) VALUES ('SOLUSDT', 'SOL', 'BUSD')`),
		checkViolation, "coin_universe_symbol_is_pair")
	requireViolation(t, b.exec(`INSERT INTO settings.coin_universe (symbol, base_asset, quote_asset) VALUES ('solusdt', 'sol', 'usdt')`),
		checkViolation, "coin_universe_symbol_format")

	var before, after time.Time
	require.NoError(t, b.db.Pool.QueryRow(b.ctx, `SELECT updated_at FROM settings.coin_universe WHERE symbol = 'BTCUSDT'`).Scan(&before))
	require.NoError(t, b.db.Pool.QueryRow(b.ctx,
		`UPDATE settings.coin_universe SET enabled = false WHERE symbol = 'BTCUSDT' RETURNING updated_at`).Scan(&after))
	require.True(t, after.After(before), "updates touch updated_at")
}

func TestReplicaIdentities(t *testing.T) {
	b := setupSchema(t)
	for table, want := range map[string]string{
		"settings.coin_universe": "f", // the change relay reports old values
		"cin_aux.rt_session":     "f",
		"market.account_trades":  "d", // its primary key
	} {
		var got string
		require.NoError(t, b.db.Pool.QueryRow(b.ctx, `SELECT relreplident::text FROM pg_class WHERE oid = $1::regclass`, table).Scan(&got))
		require.Equal(t, want, got, table)
	}
}

func TestAccountTradeIsUniquePerSymbolAndTradeID(t *testing.T) {
	b := setupSchema(t)
	const insert = `
		INSERT INTO market.account_trades (symbol, trade_id, order_id, price, qty, quote_qty, commission,
		                                   commission_asset, trade_time, is_buyer, is_maker, is_best_match, raw)
		VALUES ($1, $2, 100, 42000.5, 0.001, 42.0005, 0.000001, 'BTC', now(), true, false, true, '{"id": 1}')`
	require.NoError(t, b.exec(insert, "BTCUSDT", 1))
	requireViolation(t, b.exec(insert, "BTCUSDT", 1), uniqueViolation, "account_trades_pkey")
	require.NoError(t, b.exec(insert, "ETHUSDT", 1), "trade ids are per symbol")

	var scope string
	require.NoError(t, b.db.Pool.QueryRow(b.ctx, `SELECT account_scope FROM market.account_trades WHERE symbol = 'BTCUSDT'`).Scan(&scope))
	require.Equal(t, "default", scope)
}

func TestSessionLifecycle(t *testing.T) {
	b := setupSchema(t)
	var (
		id        int64
		status    string
		scope     string
		startedAt time.Time
		closedAt  *time.Time
	)
	require.NoError(t, b.db.Pool.QueryRow(b.ctx,
		`INSERT INTO cin_aux.rt_session DEFAULT VALUES RETURNING session_id, status, account_scope, started_at, closed_at`).
		Scan(&id, &status, &scope, &startedAt, &closedAt))
	require.Equal(t, "OPEN", status)
	require.Equal(t, "default", scope)
	require.WithinDuration(t, time.Now(), startedAt, time.Minute)
	require.Nil(t, closedAt)

	requireViolation(t, b.exec(`INSERT INTO cin_aux.rt_session (status) VALUES ('PAUSED')`), checkViolation, "rt_session_status")
	requireViolation(t, b.exec(`INSERT INTO cin_aux.rt_session (status) VALUES ('open')`), checkViolation, "rt_session_status")
	requireViolation(t, b.exec(`UPDATE cin_aux.rt_session SET status = 'CLOSED' WHERE session_id = $1`, id),
		checkViolation, "rt_session_closed_at")
	requireViolation(t, b.exec(`UPDATE cin_aux.rt_session SET closed_at = now() WHERE session_id = $1`, id),
		checkViolation, "rt_session_closed_at")
	requireViolation(t, b.exec(`UPDATE cin_aux.rt_session SET status = 'CLOSED', closed_at = started_at - interval '1 s' WHERE session_id = $1`, id),
		checkViolation, "rt_session_closed_at")
	require.NoError(t, b.exec(`UPDATE cin_aux.rt_session SET status = 'CLOSED', closed_at = now() WHERE session_id = $1`, id))

}

func TestMoveIsUniquePerSessionAndTrade(t *testing.T) {
	b := setupSchema(t)
	var s1, s2 int64
	require.NoError(t, b.db.Pool.QueryRow(b.ctx, `INSERT INTO cin_aux.rt_session DEFAULT VALUES RETURNING session_id`).Scan(&s1))
	require.NoError(t, b.db.Pool.QueryRow(b.ctx, `INSERT INTO cin_aux.rt_session (account_scope) VALUES ('alt') RETURNING session_id`).Scan(&s2))
	const insert = `
		INSERT INTO cin_aux.rt_move (session_id, src_symbol, src_trade_id, side, from_asset, to_asset,
		                             from_qty, to_qty, price, executed_usdt, trade_time)
		VALUES ($1, 'BTCUSDT', 7, $2, 'USDT', 'BTC', 42, 0.001, 42000, 42, now())`
	require.NoError(t, b.exec(insert, s1, "BUY"))
	requireViolation(t, b.exec(insert, s1, "BUY"), uniqueViolation, "rt_move_pkey")
	require.NoError(t, b.exec(insert, s2, "BUY"), "the same trade may be a move of another session")
	requireViolation(t, b.exec(`
		INSERT INTO cin_aux.rt_move (session_id, src_symbol, src_trade_id, side, from_asset, to_asset, from_qty, to_qty, price, trade_time)
		VALUES ($1, 'BTCUSDT', 8, 'HOLD', 'USDT', 'BTC', 1, 1, 1, now())`, s1), checkViolation, "rt_move_side")

	// Deleting a session deletes its moves (rt_move carries no foreign key; a trigger does this).
	require.NoError(t, b.exec(`DELETE FROM cin_aux.rt_session WHERE session_id = $1`, s1))
	var left []int64
	rows, err := b.db.Pool.Query(b.ctx, `SELECT session_id FROM cin_aux.rt_move`)
	require.NoError(t, err)
	for rows.Next() {
		var id int64
		require.NoError(t, rows.Scan(&id))
		left = append(left, id)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []int64{s2}, left)
}

func TestStrAuxRowsSayWhyTheyHaveNoValue(t *testing.T) {
	b := setupSchema(t)
	requireViolation(t, b.exec(`INSERT INTO str_aux.samples (symbol, period_start) VALUES ('BTCUSDT', now())`),
		checkViolation, "samples_value_or_reason")
	require.NoError(t, b.exec(`INSERT INTO str_aux.samples (symbol, period_start, reason, flags) VALUES ('BTCUSDT', now(), 'timeout', '{empty_book}')`))
	requireViolation(t, b.exec(`INSERT INTO str_aux.samples (symbol, period_start, mid, imbalance_top5) VALUES ('ETHUSDT', now(), 1, 1.5)`),
		checkViolation, "samples_imbalance_range")

	const vector = `INSERT INTO str_aux.window_vectors (symbol, window_label, period_start, n_samples, reason) VALUES ('BTCUSDT', $1, now(), 3, $2)`
	requireViolation(t, b.exec(vector, "30m", nil), checkViolation, "window_vectors_value_or_reason")
	requireViolation(t, b.exec(vector, "3h", "too few samples"), checkViolation, "window_vectors_window_binance")
	require.NoError(t, b.exec(vector, "30m", "too few samples: 3 < 64"))

	requireViolation(t, b.exec(`INSERT INTO str_aux.window_stats (symbol, window_label, period_start, n_samples) VALUES ('BTCUSDT', '1h', now(), 0)`),
		checkViolation, "window_stats_value_or_reason")
	requireViolation(t, b.exec(`INSERT INTO str_aux.matrices (ts, matrix_type, base, quote, value) VALUES (now(), 'id_pct', 'BTC', 'BTC', 0)`),
		checkViolation, "matrices_pair")
	requireViolation(t, b.exec(`INSERT INTO str_aux.matrices (ts, matrix_type, base, quote, value) VALUES (now(), 'nope', 'BTC', 'ETH', 0)`),
		checkViolation, "matrices_type")
}
