package db

import (
	"context"
	_ "embed"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DevQuoteAsset quotes every symbol of the dev universe.
const DevQuoteAsset = "USDT"

// DevBaseAssets returns the coins of the five-coin dev universe, each traded against DevQuoteAsset.
func DevBaseAssets() []string { return []string{"BTC", "ETH", "BNB", "SOL", "ADA"} }

// SeedResult says what SeedDev did.
type SeedResult struct {
	// Inserted are the dev symbols this run added to settings.coin_universe.
	Inserted []string
	// Present are the dev symbols that were already there and were left untouched.
	Present []string
	// Windows are the labels in settings.windows. The defaults (30m, 1h, 4h) come from the
	// migrations, because every environment has them; the seed only reports them.
	Windows []string
}

//go:embed seed_dev_universe.sql
var seedDevUniverseSQL string

//go:embed list_windows.sql
var listWindowsSQL string

// SeedDev loads the dev universe (BTCUSDT, ETHUSDT, BNBUSDT, SOLUSDT, ADAUSDT) into
// settings.coin_universe. It is idempotent: existing rows, enabled or not, are not changed.
func SeedDev(ctx context.Context, pool *pgxpool.Pool) (SeedResult, error) {
	var res SeedResult
	rows, err := pool.Query(ctx, seedDevUniverseSQL, DevBaseAssets(), DevQuoteAsset)
	if err != nil {
		return res, fmt.Errorf("seed dev universe: %w", err)
	}
	type seeded struct {
		Symbol   string
		Inserted bool
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[seeded])
	if err != nil {
		return res, fmt.Errorf("seed dev universe: %w", err)
	}
	for _, s := range got {
		if s.Inserted {
			res.Inserted = append(res.Inserted, s.Symbol)
		} else {
			res.Present = append(res.Present, s.Symbol)
		}
	}
	rows, err = pool.Query(ctx, listWindowsSQL)
	if err != nil {
		return res, fmt.Errorf("list windows: %w", err)
	}
	if res.Windows, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return res, fmt.Errorf("list windows: %w", err)
	}
	return res, nil
}
