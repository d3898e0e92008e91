// Command benchcinimport measures the session import (make bench-cinimport): it starts a private
// Postgres cluster (libs/pgcluster), loads 1,000,000 account trades across 20 symbols (4 quoted in
// BTC, ETH or BNB) and the USDT prices that value them, opens one session, imports it, then
// imports it again with nothing new. Its last line is
//
//	BENCH cinimport trades=<n> moves=<m> import_seconds=<s> moves_per_s=<x> rerun_ms=<r>
package main

import (
	"bytes"
	"context"
	_ "embed"
	"flag"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"cryptopill.dev/jobs/libs/db"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
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
		// A durable cluster (fsync and full-page writes on), sized as a small production server.
		log.Printf("starting a private postgres cluster")
		scratch, err := pgtest.StartScratch(ctx, pgtest.ScratchConfig{Name: "bench_cinimport", Durable: true,
			Settings: map[string]string{"shared_buffers": "512MB", "max_wal_size": "4GB"}})
		if err != nil {
			return err
		}
		defer func() { _ = scratch.Close() }()
		dsn = scratch.URL
	} else if _, err := db.MigrateUp(ctx, dsn); err != nil {
		return err
	}
	pcfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return err
	}
	// A fixed set of connections, all open before the import: their server processes' CPU time
	// is reported beside the wall-clock figures (on a shared machine the two differ).
	pcfg.MaxConns, pcfg.MinConns = 4, 4
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	// Open every connection now, so that the processes counted are the ones the import uses.
	var conns []*pgxpool.Conn
	for range pcfg.MaxConns {
		c, err := pool.Acquire(ctx)
		if err != nil {
			return err
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Release()
	}
	backends, err := serverProcesses(ctx, pool)
	if err != nil {
		return err
	}

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
	cpu0 := cpuTime(backends)
	start = time.Now()
	res, err := im.Import(ctx, session, importer.Options{})
	if err != nil {
		return err
	}
	importTime := time.Since(start)
	importCPU := cpuTime(backends) - cpu0
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
	if importCPU > 0 {
		log.Printf("import: %.3fs wall, %.3fs CPU of the server's processes (%.0f moves per CPU second); load average %s",
			importTime.Seconds(), importCPU.Seconds(), float64(moves)/importCPU.Seconds(), loadAverage())
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

// serverProcesses are the Postgres server's processes: the postmaster's children (the backends
// of the pool, the WAL writer, the checkpointer, ...).
func serverProcesses(ctx context.Context, pool *pgxpool.Pool) ([]int, error) {
	var backend int
	if err := pool.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		return nil, err
	}
	_, postmaster := procStat(backend)
	var out []int
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if _, ppid := procStat(pid); ppid == postmaster && postmaster != 0 {
			out = append(out, pid)
		}
	}
	return out, nil
}

// procStat returns a local process's user+system CPU time and its parent, from /proc.
func procStat(pid int) (time.Duration, int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0
	}
	// Fields after the command name (which may contain spaces) start after the last ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, 0
	}
	ppid, _ := strconv.Atoi(f[1])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100, ppid // USER_HZ
}

// cpuTime sums the CPU time of pids.
func cpuTime(pids []int) time.Duration {
	var d time.Duration
	for _, pid := range pids {
		t, _ := procStat(pid)
		d += t
	}
	return d
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
