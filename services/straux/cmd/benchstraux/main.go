// Command benchstraux measures one straux tick. It starts a private Postgres cluster the way the
// test kit does (pgcluster, test settings), migrates a database, loads a 500-symbol universe
// (simex.GeneratedSymbols) and the default windows (30m, 1h, 4h), pre-fills the hour of samples
// before the tick (one per 40 s period), serves the simulated exchange with its weight limit
// lifted, and runs one tick with one replica: plan, order book and ticker for every symbol,
// statistics and vectors of every window, all written. It checks what the tick left, stops and
// removes the cluster, and ends with the line
//
//	BENCH straux symbols=<n> windows=<w> tick_seconds=<s> vectors_cpu_seconds=<c>
//
// tick_seconds is the wall time of the tick from its receipt to its period closed;
// vectors_cpu_seconds is the thread CPU time spent computing the samples, IDHR statistics and
// vectors. Run it with `make bench-straux`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"cryptopill.dev/jobs/libs/exchange"
	"cryptopill.dev/jobs/libs/simex"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
	"cryptopill.dev/jobs/services/straux/internal/plan"
	"cryptopill.dev/jobs/services/straux/internal/store"
	"cryptopill.dev/jobs/services/straux/internal/ticks"
)

func main() {
	n := flag.Int("symbols", 500, "universe size")
	prefill := flag.Duration("prefill", time.Hour, "history of samples before the tick")
	interval := flag.Duration("interval", 40*time.Second, "tick interval")
	workers := flag.Int("workers", 0, "chunks worked at once (0: the service default)")
	fetch := flag.Int("fetch", 0, "exchange calls in flight (0: the service default)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the tick to this file")
	flag.Parse()
	benchOpts = options{workers: *workers, fetch: *fetch, cpuprofile: *cpuprofile}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *n, *prefill, *interval); err != nil {
		fmt.Fprintln(os.Stderr, "benchstraux:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, n int, prefill, interval time.Duration) (err error) {
	t := time.Now()
	scratch, err := pgtest.StartScratch(ctx, pgtest.ScratchConfig{Name: "bench_straux"})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, scratch.Close()) }()
	cluster, url := scratch.Cluster, scratch.URL
	fmt.Printf("postgres: private cluster on port %d, migrated in %.2fs\n", cluster.Port, time.Since(t).Seconds())

	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return err
	}
	pc.MaxConns = 16 // the default DB_MAX_CONNS
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return err
	}
	defer pool.Close()

	symbols := simex.GeneratedSymbols(n)
	ex, err := simex.New(simex.Config{Symbols: symbols, WeightLimit: -1, MaxInFlight: -1})
	if err != nil {
		return err
	}
	srv, err := simex.Listen("127.0.0.1:0", ex)
	if err != nil {
		return err
	}
	sctx, stopSimex := context.WithCancel(ctx)
	defer stopSimex()
	go func() { _ = srv.Serve(sctx) }()
	client, err := exchange.New(exchange.Config{BaseURL: srv.URL()})
	if err != nil {
		return err
	}
	if err := client.Init(ctx); err != nil {
		return err
	}

	// The tick's period: the current one, unless it ends too soon to be sampled in time.
	p := time.Now().UTC().Truncate(interval)
	if time.Until(p.Add(interval)) < interval/2 {
		p = p.Add(interval)
	}
	t = time.Now()
	rows, err := loadFixtures(ctx, pool, symbols, p, prefill, interval)
	if err != nil {
		return err
	}
	fmt.Printf("fixtures: %d symbols, %d samples over the %s before the tick, in %.2fs\n", n, rows, prefill, time.Since(t).Seconds())

	st := store.New(pool)
	windows, err := st.Windows(ctx)
	if err != nil {
		return err
	}
	runner, err := ticks.New(ctx, st, client, staticUniverse(symbols), ticks.Config{
		Replica: "bench", Backfill: true, Workers: benchOpts.workers, FetchConcurrency: benchOpts.fetch,
		Budget: func() plan.Budget {
			s := client.Limiter().Stats()
			return plan.Budget{PerWindow: s.Budget, Window: s.Window}
		},
	})
	if err != nil {
		return err
	}
	defer runner.Stop()
	if d := time.Until(p); d > 0 {
		time.Sleep(d)
	}
	reqs := ex.Stats().Requests
	if benchOpts.cpuprofile != "" {
		f, err := os.Create(benchOpts.cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	if err := runner.HandleTick(ctx, ticks.Tick{PeriodStart: p, Period: interval}); err != nil {
		return err
	}
	tickSeconds := time.Since(start).Seconds()
	cpu := runner.VectorsCPU().Seconds()
	after := ex.Stats().Requests

	// What the tick left behind.
	var samples, vectors, stats, tickers, short int
	err = pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM str_aux.samples WHERE period_start = $1 AND mid IS NOT NULL),
		(SELECT count(*) FROM str_aux.window_vectors WHERE period_start = $1 AND reason IS NULL),
		(SELECT count(*) FROM str_aux.window_stats WHERE period_start = $1 AND gfm IS NOT NULL),
		(SELECT count(*) FROM market.tickers WHERE ts = $1),
		(SELECT count(*) FROM str_aux.window_vectors WHERE period_start = $1 AND reason IS NOT NULL)`, p).
		Scan(&samples, &vectors, &stats, &tickers, &short)
	if err != nil {
		return err
	}
	fmt.Printf("tick: %d samples, %d tickers, %d window stats, %d vectors (%d windows short of samples); "+
		"exchange calls: depth %d, ticker/24hr %d, klines %d\n", samples, tickers, stats, vectors, short,
		after["/api/v3/depth"]-reqs["/api/v3/depth"], after["/api/v3/ticker/24hr"]-reqs["/api/v3/ticker/24hr"],
		after["/api/v3/klines"]-reqs["/api/v3/klines"])
	if samples != n || tickers != n || vectors != n*len(windows) || stats != n*len(windows) {
		return fmt.Errorf("incomplete tick: want %d samples and tickers and %d stats and vectors", n, n*len(windows))
	}
	fmt.Printf("BENCH straux symbols=%d windows=%d tick_seconds=%.3f vectors_cpu_seconds=%.3f\n",
		n, len(windows), tickSeconds, cpu)
	return nil
}

type options struct {
	workers, fetch int
	cpuprofile     string
}

var benchOpts options

type staticUniverse []string

func (u staticUniverse) Current(context.Context) ([]string, error) { return u, nil }

// loadFixtures writes the universe and one sample per period of the prefill before p (a random
// walk per symbol, with book volumes) with COPY.
func loadFixtures(ctx context.Context, pool *pgxpool.Pool, symbols []string, p time.Time, prefill, interval time.Duration) (int64, error) {
	uni := make([][]any, len(symbols))
	for i, s := range symbols {
		uni[i] = []any{s, s[:len(s)-4], "USDT"}
	}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"settings", "coin_universe"},
		[]string{"symbol", "base_asset", "quote_asset"}, pgx.CopyFromRows(uni)); err != nil {
		return 0, fmt.Errorf("load universe: %w", err)
	}
	periods := int(prefill / interval)
	rng := rand.New(rand.NewPCG(1, 2))
	var rows [][]any
	for _, s := range symbols {
		px := 10 * math.Exp(rng.NormFloat64())
		for k := periods; k >= 1; k-- {
			px *= math.Exp(0.001 * rng.NormFloat64())
			mid := fmt.Sprintf("%.8f", px)
			vol := fmt.Sprintf("%.4f", 50+100*rng.Float64())
			rows = append(rows, []any{s, p.Add(-time.Duration(k) * interval), mid, mid, mid, 1, vol, vol})
		}
	}
	return pool.CopyFrom(ctx, pgx.Identifier{"str_aux", "samples"},
		[]string{"symbol", "period_start", "mid", "mid_min", "mid_max", "n_snapshots", "bid_vol", "ask_vol"},
		pgx.CopyFromRows(rows))
}
