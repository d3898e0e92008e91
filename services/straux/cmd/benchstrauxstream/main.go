// Command benchstrauxstream measures straux's stream mode. It serves the simulated exchange in a
// child process (so this process's CPU is straux's alone): 2,000 symbols whose books change every
// 100 ms (10 diff-depth events a second each) and a 24-hour ticker stream per symbol, at the
// exchange's real weight limit (6,000 a minute) unless -weight-limit says otherwise. This process
// is one straux replica: its stream feed holds every symbol's diff-depth and ticker streams
// (connections of at most 1,024 streams, subscribes paced under 5 messages a second), keeps the
// local books by Binance's procedure (snapshots paced through the shared weight limiter), and its
// tick runner, on a private test-kit Postgres, runs 5 s ticks for a minute.
//
// Phases: warm-up (every book live: the snapshots' REST weight is spent here), a quiet window
// (the feed alone: feed_cpu_cores is this process's CPU time over it), then the ticks. It ends
// with the line
//
//	BENCH straux_stream symbols=<n> ticks=<t> coverage=<c> rest_weight_per_tick=<w> book_age_p99_ms=<a> feed_cpu_cores=<u> tick_seconds_p99=<s>
//
// coverage is the lowest share of the universe sampled from a local book in any tick;
// rest_weight_per_tick the REST weight spent per tick after the first, from the start of the
// second tick to the end of the run, divided by those ticks (resyncs, fallbacks and the
// once-a-minute symbol status read included; the most any one tick took is printed above it); book_age_p99_ms the 99th percentile of the
// sampled books' ages; tick_seconds_p99 that of the ticks' durations, from receipt to the period
// closed. Each tick's line also gives its book ages (p50, p99, max). BENCH_PG_SETTINGS adds
// postgresql.conf lines to the private cluster, "name=value;name=value" (e.g. to log every
// statement's duration). Run it with `make bench-straux-stream`.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"cryptopill.dev/jobs/libs/exchange"
	"cryptopill.dev/jobs/libs/simex"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
	"cryptopill.dev/jobs/services/straux/internal/feed"
	"cryptopill.dev/jobs/services/straux/internal/plan"
	"cryptopill.dev/jobs/services/straux/internal/store"
	"cryptopill.dev/jobs/services/straux/internal/ticks"
)

type options struct {
	symbols     int
	interval    time.Duration
	duration    time.Duration
	quiet       time.Duration
	weightLimit int
	resync      float64
	chunk       int
	workers     int
	cpuprofile  string
	tickprofile string
}

func main() {
	var o options
	serve := flag.Bool("serve-simex", false, "internal: serve the simulated exchange and print its URL")
	flag.IntVar(&o.symbols, "symbols", 2000, "universe size")
	flag.DurationVar(&o.interval, "interval", 5*time.Second, "tick interval")
	flag.DurationVar(&o.duration, "duration", time.Minute, "how long ticks run")
	flag.DurationVar(&o.quiet, "quiet", 15*time.Second, "feed-only window measured for feed_cpu_cores")
	flag.IntVar(&o.weightLimit, "weight-limit", 6000, "the simulated exchange's REQUEST_WEIGHT per minute (0 lifts it)")
	flag.Float64Var(&o.resync, "resync-per-second", 18, "book snapshots a second (18 × weight 5 is 90 % of a 6,000 budget)")
	flag.IntVar(&o.chunk, "chunk", 0, "symbols per claim (0: the runner's default)")
	flag.IntVar(&o.workers, "workers", 0, "chunks worked at once (0: the runner's default)")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the feed-alone window to this file")
	flag.StringVar(&o.tickprofile, "tickprofile", "", "write a CPU profile of the ticks to this file")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if *serve {
		err = serveSimex(ctx, o)
	} else {
		err = run(ctx, o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchstrauxstream:", err)
		os.Exit(1)
	}
}

// serveSimex is the child: the simulated exchange until stdin closes (the parent is gone).
func serveSimex(ctx context.Context, o options) error {
	limit := o.weightLimit
	if limit == 0 {
		limit = -1
	}
	ex, err := simex.New(simex.Config{Symbols: simex.GeneratedSymbols(o.symbols), WeightLimit: limit})
	if err != nil {
		return err
	}
	srv, err := simex.Listen("127.0.0.1:0", ex)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); cancel() }()
	fmt.Println(srv.URL())
	return srv.Serve(ctx)
}

// simexPID is the child's process id, for its CPU time.
var simexPID int

// childCPU is the simulated exchange's CPU time so far (Linux /proc; 0 elsewhere).
func childCPU() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", simexPID))
	if err != nil {
		return 0
	}
	// Fields after the command's closing parenthesis: state is the 3rd, utime the 14th, stime the 15th.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

func startSimex(ctx context.Context, o options) (baseURL string, stop func(), err error) {
	self, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.CommandContext(ctx, self, "-serve-simex", "-symbols", strconv.Itoa(o.symbols), "-weight-limit", strconv.Itoa(o.weightLimit))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	simexPID = cmd.Process.Pid
	stop = func() { _ = stdin.Close(); _ = cmd.Wait() }
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("simulated exchange did not start: %w", err)
	}
	return strings.TrimSpace(line), stop, nil
}

// weighed counts the request weight of every REST call this process makes, by Binance's table.
type weighed struct {
	next   http.RoundTripper
	weight atomic.Int64
}

func (w *weighed) RoundTrip(req *http.Request) (*http.Response, error) {
	w.weight.Add(int64(requestWeight(req.URL)))
	return w.next.RoundTrip(req)
}

func requestWeight(u *url.URL) int {
	q := u.Query()
	switch u.Path {
	case "/api/v3/depth":
		limit, _ := strconv.Atoi(q.Get("limit"))
		return exchange.DepthWeight(limit)
	case "/api/v3/ticker/24hr":
		switch {
		case q.Get("symbol") != "":
			return exchange.Ticker24hWeight(1)
		case q.Get("symbols") != "":
			return exchange.Ticker24hWeight(strings.Count(q.Get("symbols"), ",") + 1)
		}
		return exchange.Ticker24hWeight(0)
	case "/api/v3/klines":
		return exchange.KlinesWeight
	case "/api/v3/exchangeInfo":
		return 20
	}
	return 1
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func run(ctx context.Context, o options) (err error) {
	t := time.Now()
	pgs := map[string]string{}
	if v := os.Getenv("BENCH_PG_SETTINGS"); v != "" {
		for _, kv := range strings.Split(v, ";") {
			k, val, _ := strings.Cut(kv, "=")
			pgs[k] = val
		}
	}
	scratch, err := pgtest.StartScratch(ctx, pgtest.ScratchConfig{Name: "bench_straux_stream", Settings: pgs})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, scratch.Close()) }()
	fmt.Printf("postgres: private cluster on port %d, migrated in %.2fs\n", scratch.Cluster.Port, time.Since(t).Seconds())
	pc, err := pgxpool.ParseConfig(scratch.URL)
	if err != nil {
		return err
	}
	pc.MaxConns = 16
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return err
	}
	defer pool.Close()

	base, stopSimex, err := startSimex(ctx, o)
	if err != nil {
		return err
	}
	defer stopSimex()
	symbols := simex.GeneratedSymbols(o.symbols)
	if err := loadUniverse(ctx, pool, symbols); err != nil {
		return err
	}
	w := &weighed{next: http.DefaultTransport}
	client, err := exchange.New(exchange.Config{BaseURL: base, HTTPClient: &http.Client{Transport: w, Timeout: 30 * time.Second}})
	if err != nil {
		return err
	}
	if err := client.Init(ctx); err != nil {
		return err
	}
	if err := client.Limiter().SetTickReserve(70); err != nil {
		return err
	}
	streamURL, err := exchange.StreamURLFor(base)
	if err != nil {
		return err
	}
	fd, err := feed.New(feed.Config{URL: streamURL, ResyncPerSecond: o.resync,
		Snapshot: func(ctx context.Context, symbol string, limit int) (*exchange.OrderBook, error) {
			return client.Depth(exchange.WithClass(ctx, exchange.ClassTicks), symbol, limit)
		},
		Universe: func(context.Context) ([]string, error) { return symbols, nil }})
	if err != nil {
		return err
	}
	fctx, stopFeed := context.WithCancel(ctx)
	feedDone := make(chan error, 1)
	go func() { feedDone <- fd.Run(fctx) }()
	defer func() { stopFeed(); <-feedDone }()

	// Warm-up: every book live.
	t = time.Now()
	for last := time.Now(); len(fd.Live()) < len(symbols); {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-feedDone:
			return fmt.Errorf("feed stopped: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Since(last) >= 5*time.Second {
			last = time.Now()
			fs, bs := fd.Stats()
			fmt.Printf("warm-up: %d/%d books live after %.0fs (%d connections, %d resyncs, %d gaps)\n",
				len(fd.Live()), len(symbols), time.Since(t).Seconds(), fs.Connections, bs.Resyncs, bs.Gaps)
		}
	}
	fs, bs := fd.Stats()
	fmt.Printf("warm-up: %d books live in %.1fs over %d connections; REST weight %d (%d snapshots)\n",
		len(symbols), time.Since(t).Seconds(), fs.Connections, w.weight.Load(), bs.Resyncs)

	// The feed alone.
	stopQuietProfile, err := startProfile(o.cpuprofile)
	if err != nil {
		return err
	}
	msgs0, cpu0, wall0, child0 := fs.Messages, cpuTime(), time.Now(), childCPU()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(o.quiet):
	}
	stopQuietProfile()
	fs, _ = fd.Stats()
	quietWall := time.Since(wall0)
	feedCores := (cpuTime() - cpu0).Seconds() / quietWall.Seconds()
	fmt.Printf("feed alone: %.0f messages/s, %.3f cores over %.0fs (%.1f µs CPU a message); the simulated exchange used %.3f cores\n",
		float64(fs.Messages-msgs0)/quietWall.Seconds(), feedCores, quietWall.Seconds(),
		(cpuTime()-cpu0).Seconds()*1e6/float64(max(1, fs.Messages-msgs0)), (childCPU()-child0).Seconds()/quietWall.Seconds())

	st := store.New(pool)
	runner, err := ticks.New(ctx, st, client, staticUniverse(symbols), ticks.Config{Replica: "bench", Streams: fd,
		ChunkSize: o.chunk, Workers: o.workers,
		Budget: func() plan.Budget {
			s := client.Limiter().Stats()
			return plan.Budget{PerWindow: s.Budget, Window: s.Window}
		}})
	if err != nil {
		return err
	}
	defer runner.Stop()

	var (
		periods   []time.Time
		durations []float64
		weights   []int64
	)
	p := time.Now().Truncate(o.interval).Add(o.interval)
	stopTickProfile, err := startProfile(o.tickprofile)
	if err != nil {
		return err
	}
	defer stopTickProfile()
	cpuTicks0, wallTicks0 := cpuTime(), time.Now()
	for end := p.Add(o.duration); p.Before(end); p = p.Add(o.interval) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Until(p)):
		}
		w0 := w.weight.Load()
		start := time.Now()
		if err := runner.HandleTick(ctx, ticks.Tick{PeriodStart: p, Period: o.interval}); err != nil {
			return fmt.Errorf("tick %s: %w", p.Format(time.RFC3339), err)
		}
		durations = append(durations, time.Since(start).Seconds())
		periods = append(periods, p)
		if len(weights) > 0 {
			weights[len(weights)-1] += w.weight.Load() - w0 // up to this tick's start
		}
		weights = append(weights, w.weight.Load()-w0)
	}
	ticksCores := (cpuTime() - cpuTicks0).Seconds() / time.Since(wallTicks0).Seconds()

	// What the ticks left.
	coverage := 1.0
	for i, p := range periods {
		var fromStream, rest, failed int
		var ageP50, ageP99, ageMax float64
		if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE source = 'stream' AND mid IS NOT NULL),
			count(*) FILTER (WHERE source = 'rest' AND mid IS NOT NULL), count(*) FILTER (WHERE mid IS NULL),
			coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY book_age_ms) FILTER (WHERE source = 'stream'), 'NaN'),
			coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY book_age_ms) FILTER (WHERE source = 'stream'), 'NaN'),
			coalesce(max(book_age_ms) FILTER (WHERE source = 'stream'), 'NaN')
			FROM str_aux.samples WHERE period_start = $1`, p).Scan(&fromStream, &rest, &failed, &ageP50, &ageP99, &ageMax); err != nil {
			return err
		}
		c := float64(fromStream) / float64(len(symbols))
		coverage = min(coverage, c)
		fmt.Printf("tick %2d %s: %.3fs, %d from books, %d over REST, %d without a sample, REST weight %d, book age p50 %.0f p99 %.0f max %.0f ms\n",
			i+1, p.Format("15:04:05"), durations[i], fromStream, rest, failed, weights[i], ageP50, ageP99, ageMax)
	}
	var ageP99 float64
	if err := pool.QueryRow(ctx, `SELECT coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY book_age_ms), 'NaN')
		FROM str_aux.samples WHERE period_start = ANY($1) AND source = 'stream'`, periods).Scan(&ageP99); err != nil {
		return err
	}
	restPerTick, restMax := 0.0, int64(0)
	if len(weights) > 1 {
		var sum int64
		for _, w := range weights[1:] {
			sum += w
		}
		restPerTick, restMax = float64(sum)/float64(len(weights)-1), slices.Max(weights[1:])
	}
	fs, bs = fd.Stats()
	fmt.Printf("during the ticks: this process used %.3f cores (feed and ticks); feed: %d connections, %d disconnects, %d gaps, %d resyncs, %d bad messages; REST weight per tick after the first: mean %.1f, most %d\n",
		ticksCores, fs.Connections, fs.Disconnects, bs.Gaps, bs.Resyncs, fs.BadMessages, restPerTick, restMax)
	fmt.Printf("BENCH straux_stream symbols=%d ticks=%d coverage=%s rest_weight_per_tick=%.1f book_age_p99_ms=%.0f feed_cpu_cores=%.3f tick_seconds_p99=%.3f\n",
		len(symbols), len(periods), strconv.FormatFloat(coverage, 'f', -1, 64), restPerTick, ageP99, feedCores, p99(durations))
	return nil
}

// startProfile writes a CPU profile to path until stop (no path: nothing, stop does nothing).
func startProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); _ = f.Close() }, nil
}

func p99(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[int(math.Ceil(0.99*float64(len(s))))-1]
}

type staticUniverse []string

func (u staticUniverse) Current(context.Context) ([]string, error) { return u, nil }

func loadUniverse(ctx context.Context, pool *pgxpool.Pool, symbols []string) error {
	rows := make([][]any, len(symbols))
	for i, s := range symbols {
		rows[i] = []any{s, s[:len(s)-4], "USDT"}
	}
	_, err := pool.CopyFrom(ctx, pgx.Identifier{"settings", "coin_universe"},
		[]string{"symbol", "base_asset", "quote_asset"}, pgx.CopyFromRows(rows))
	return err
}
