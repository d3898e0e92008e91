package db_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/db"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
)

// universeRows is the whole of settings.coin_universe, as text, for before/after comparisons.
func universeRows(t *testing.T, ctx context.Context, d *pgtest.DB) []string {
	t.Helper()
	rows, err := d.Pool.Query(ctx, `SELECT row(u.*)::text FROM settings.coin_universe u ORDER BY symbol`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

func TestSeedDevIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := pgtest.NewDB(t)
	dev := []string{"BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "ADAUSDT"}

	first, err := db.SeedDev(ctx, d.Pool)
	require.NoError(t, err)
	require.Equal(t, dev, first.Inserted)
	require.Empty(t, first.Present)
	require.Equal(t, []string{"30m", "1h", "4h"}, first.Windows)

	// An operator's change to a seeded row survives a re-seed.
	_, err = d.Pool.Exec(ctx, `UPDATE settings.coin_universe SET enabled = false WHERE symbol = 'SOLUSDT'`)
	require.NoError(t, err)
	before := universeRows(t, ctx, d)
	require.Len(t, before, 5)

	second, err := db.SeedDev(ctx, d.Pool)
	require.NoError(t, err)
	require.Empty(t, second.Inserted)
	require.Equal(t, dev, second.Present)
	require.Equal(t, first.Windows, second.Windows)
	require.Equal(t, before, universeRows(t, ctx, d), "re-running the seed changes nothing")
}

func TestSeedDevKeepsOtherSymbols(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := pgtest.NewDB(t)
	_, err := d.Pool.Exec(ctx, `INSERT INTO settings.coin_universe (symbol, base_asset, quote_asset) VALUES ('BTCUSDT', 'BTC', 'USDT'), ('XRPUSDT', 'XRP', 'USDT')`)
	require.NoError(t, err)

	res, err := db.SeedDev(ctx, d.Pool)
	require.NoError(t, err)
	require.Equal(t, []string{"ETHUSDT", "BNBUSDT", "SOLUSDT", "ADAUSDT"}, res.Inserted)
	require.Equal(t, []string{"BTCUSDT"}, res.Present)
	require.Len(t, universeRows(t, ctx, d), 6)
}
