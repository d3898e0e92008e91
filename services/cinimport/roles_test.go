package main

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/config"
	"cryptopill.dev/jobs/libs/events/eventstest"
	"cryptopill.dev/jobs/libs/exchange"
	"cryptopill.dev/jobs/libs/service"
	"cryptopill.dev/jobs/libs/simex"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
	"cryptopill.dev/jobs/libs/testkit/proctest"
)

// The account trade sync stores trades and their cursors as cinimport's own role (migration
// 00016), which may write nothing else of market.
func TestTradeSyncRunsAsItsRole(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := pgtest.NewDB(t)
	bus := eventstest.NewBus(t)
	ex, err := simex.New(simex.Config{Symbols: []string{"BTCUSDT", "ETHUSDT"}, APIKey: "k", APISecret: "s", TradeEvery: time.Minute})
	require.NoError(t, err)
	srv := httptest.NewServer(ex)
	t.Cleanup(srv.Close)
	_, err = d.Pool.Exec(ctx, `INSERT INTO settings.coin_universe (symbol, base_asset, quote_asset) VALUES ('BTCUSDT', 'BTC', 'USDT')`)
	require.NoError(t, err)

	cfg := Config{
		Common: config.Common{Env: config.EnvDev, DatabaseURL: d.RoleURL(t, "cp_cinimport"), NATSURL: bus.Server.URL,
			HTTPAddr: "127.0.0.1:0", ShutdownGrace: 20 * time.Second, LogLevel: "info"},
		BaseURL: srv.URL, APIKey: "k", APISecret: exchange.Secret("s"),
		TradeLookback: 24 * time.Hour, TradeSyncInterval: time.Hour,
		PriceMaxAge: time.Hour, Debounce: 100 * time.Millisecond,
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- service.Start(sctx, service.Options{Name: "cinimport", Common: cfg.Common, Logger: testLogger(t)},
			func(ctx context.Context, p *service.Process) error { return run(ctx, p, cfg) })
	}()
	count := func(sql string) int64 {
		var n int64
		require.NoError(t, d.Pool.QueryRow(ctx, sql).Scan(&n))
		return n
	}
	ok := proctest.Wait(ctx, 60*time.Second, func() bool {
		return count(`SELECT count(*) FROM market.trade_cursors WHERE symbol = 'BTCUSDT'`) == 1
	})
	cancel()
	require.NoError(t, <-done)
	require.True(t, ok, "the sync stored BTCUSDT's cursor")
	require.Positive(t, count(`SELECT count(*) FROM market.account_trades WHERE symbol = 'BTCUSDT'`))
}
