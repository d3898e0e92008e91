// Command benchcinimport measures the session import (make bench-cinimport): it starts a private
// Postgres cluster (libs/pgcluster), loads 1,000,000 account trades across 20 symbols (4 quoted in
// BTC, ETH or BNB) and the USDT prices that value them, opens one session, imports it, then
// imports it again with nothing new. Its last line is
//
//	BENCH cinimport trades=<n> moves=<m> import_seconds=<s> moves_per_s=<x> rerun_ms=<r>
package main

import (
	"context"
	_ "embed"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"cryptopill.dev/jobs/libs/db"
	"cryptopill.dev/jobs/libs/pgcluster"
	"cryptopill.dev/jobs/services/cinimport/internal/importer"
)

//go:embed seed_trades.sql
var seedTradesSQL string

func main() {
	trades := flag.Int64("trades", 1_000_000, "account trades to import (a multiple of 20)")
	days := flag.Int("days", 60, "days the trades span, ending now")
	dsn := flag.String("dsn", "", "use this (empty, migrated or not) database instead of a private cluster")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("benchcinimport: ")
	if err := run(*dsn, *trades, *days); err != nil {
		log.Fatal(err)
	}
}

func run(dsn string, trades int64, days int) error {
	ctx := context.Background()
	if dsn == "" {
		dir, err := os.MkdirTemp("", "cinimport-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		// A durable cluster (fsync and full-page writes on), sized as a small production server.
		c, err := pgcluster.New(pgcluster.Config{Dir: filepath.Join(dir, "pg"), Durable: true, Settings: map[string]string{
			"shared_buffers": "512MB",
			"max_wal_size":   "4GB",
		}})
		if err != nil {
			return err
		}
		log.Printf("starting a private postgres cluster in %s", dir)
		if err := c.Start(ctx); err != nil {
			return err
		}
		defer func() { _ = c.Stop(context.Background()) }()
		dsn = c.DSN("postgres")
	}
	if _, err := db.MigrateUp(ctx, dsn); err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return err
	}
	defer pool.Close()

	log.Printf("loading %d trades over %d days", trades, days)
	start := time.Now()
	if _, err := pool.Exec(ctx, seedTradesSQL, trades, days); err != nil {
		return fmt.Errorf("load trades: %w", err)
	}
	for _, t := range []string{"market.account_trades", "market.tickers", "market.symbols", "cin_aux.rt_move"} {
		if _, err := pool.Exec(ctx, "VACUUM ANALYZE "+t); err != nil {
			return fmt.Errorf("vacuum %s: %w", t, err)
		}
	}
	// Settle the load's WAL so that its checkpoint does not land inside the measurement.
	if _, err := pool.Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	log.Printf("loaded in %s", time.Since(start).Round(time.Millisecond))

	var sessionID int64
	if err := pool.QueryRow(ctx, `INSERT INTO cin_aux.rt_session (account_scope, label, started_at)
		VALUES ('default', 'bench', now() - make_interval(days => $1::integer + 1)) RETURNING session_id`, days).Scan(&sessionID); err != nil {
		return fmt.Errorf("open session: %w", err)
	}

	im := importer.New(pool, importer.Config{})
	session := []importer.Session{{ID: sessionID}}
	start = time.Now()
	res, err := im.Import(ctx, session, importer.Options{})
	if err != nil {
		return err
	}
	importTime := time.Since(start)
	moves := total(res)

	start = time.Now()
	res, err = im.Import(ctx, session, importer.Options{})
	if err != nil {
		return err
	}
	rerun := time.Since(start)
	if again := total(res); again != 0 {
		return fmt.Errorf("re-run imported %d moves, want 0", again)
	}

	var stored int64
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM cin_aux.rt_move WHERE session_id = $1", sessionID).Scan(&stored); err != nil {
		return err
	}
	if stored != trades || moves != trades {
		return fmt.Errorf("imported %d moves (%d stored) for %d trades", moves, stored, trades)
	}
	fmt.Printf("BENCH cinimport trades=%d moves=%d import_seconds=%.3f moves_per_s=%.0f rerun_ms=%.1f\n",
		trades, moves, importTime.Seconds(), float64(moves)/importTime.Seconds(), float64(rerun.Microseconds())/1000)
	return nil
}

func total(rs []importer.Result) int64 {
	var n int64
	for _, r := range rs {
		n += r.Moves
	}
	return n
}
