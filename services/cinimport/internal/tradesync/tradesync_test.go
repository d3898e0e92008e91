package tradesync_test

import (
	"context"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/exchange"
	"cryptopill.dev/jobs/libs/simex"
	"cryptopill.dev/jobs/libs/testkit/clocktest"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
	"cryptopill.dev/jobs/services/cinimport/internal/tradesync"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestSyncBootstrapsThenFollowsTheCursor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := pgtest.NewDB(t)
	// One clock for the exchange, the client and the sync: a fixed instant, moved on by hand.
	now := clocktest.Afternoon
	running := clocktest.Running(now)
	var skipped atomic.Int64
	clock := func() time.Time { return running().Add(time.Duration(skipped.Load())) }
	ex, err := simex.New(simex.Config{Symbols: []string{"BTCUSDT", "ETHBTC"}, APIKey: "k", APISecret: "s",
		TradesSince: now.Add(-10 * 24 * time.Hour), TradeEvery: 10 * time.Minute, WeightLimit: -1, Now: clock})
	require.NoError(t, err)
	srv := httptest.NewServer(ex)
	t.Cleanup(srv.Close)
	client, err := exchange.New(exchange.Config{BaseURL: srv.URL, APIKey: "k", APISecret: "s", WeightLimit: 6000, Now: clock})
	require.NoError(t, err)
	_, err = d.Pool.Exec(ctx, `INSERT INTO settings.coin_universe (symbol, base_asset, quote_asset) VALUES ('BTCUSDT', 'BTC', 'USDT')`)
	require.NoError(t, err)

	// Symbols from the universe; a 2-day look-back (~288 trades), in pages of 100.
	s := tradesync.New(d.Pool, client, tradesync.Config{Lookback: 48 * time.Hour, PageSize: 100, Now: clock})
	res, err := s.Sync(ctx)
	require.NoError(t, err)
	require.Empty(t, res.Failed)
	require.Greater(t, res.Stored, 200)
	require.True(t, res.Earliest.After(now.Add(-49*time.Hour)), "nothing older than the look-back: %s", res.Earliest)

	var stored, maxID, cursor int64
	var oldest time.Time
	require.NoError(t, d.Pool.QueryRow(ctx, `SELECT count(*), max(trade_id), min(trade_time) FROM market.account_trades WHERE symbol = 'BTCUSDT'`).Scan(&stored, &maxID, &oldest))
	require.NoError(t, d.Pool.QueryRow(ctx, `SELECT last_trade_id FROM market.trade_cursors WHERE account_scope = 'default' AND symbol = 'BTCUSDT'`).Scan(&cursor))
	require.Equal(t, int64(res.Stored), stored)
	require.Equal(t, maxID, cursor)

	// Nothing new: nothing stored. Time passes: only the new trades, from the cursor.
	res, err = s.Sync(ctx)
	require.NoError(t, err)
	require.Zero(t, res.Stored)
	skipped.Add(int64(2 * time.Hour))
	res, err = s.Sync(ctx)
	require.NoError(t, err)
	require.Greater(t, res.Stored, 5)
	require.True(t, res.Earliest.After(now.Add(-time.Minute)), "the new trades start at the cursor")

	// Configured symbols; an unknown one fails alone.
	s = tradesync.New(d.Pool, client, tradesync.Config{Symbols: []string{"ETHBTC", "NOPEUSDT"}, Lookback: 24 * time.Hour, Now: clock})
	res, err = s.Sync(ctx)
	require.NoError(t, err)
	require.Greater(t, res.Stored, 100)
	require.Contains(t, res.Failed, "NOPEUSDT")
	var raw string
	require.NoError(t, d.Pool.QueryRow(ctx, `SELECT raw->>'symbol' FROM market.account_trades WHERE symbol = 'ETHBTC' LIMIT 1`).Scan(&raw))
	require.Equal(t, "ETHBTC", raw)
}
