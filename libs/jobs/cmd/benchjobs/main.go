// Command benchjobs measures the job engine. It starts a private Postgres cluster the way the test
// kit does (pgcluster, root-safe, test settings), migrates a database, enqueues N no-op jobs, works
// them down with one Engine on its default Config, checks every job succeeded exactly once, stops
// and removes the cluster, and ends with the line
//
//	BENCH jobs jobs=<n> seconds=<s> jobs_per_s=<x>
//
// where seconds is the work-down time (Start until every job's success is recorded). Run it with
// `make bench-jobs`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"cryptopill.dev/jobs/libs/db"
	"cryptopill.dev/jobs/libs/jobs"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
)

func main() {
	n := flag.Int("jobs", 200_000, "no-op jobs to enqueue and work down")
	chunk := flag.Int("enqueue-batch", 10_000, "jobs per EnqueueMany call")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *n, *chunk); err != nil {
		fmt.Fprintln(os.Stderr, "benchjobs:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, n, chunk int) (err error) {
	t := time.Now()
	scratch, err := pgtest.StartScratch(ctx, pgtest.ScratchConfig{Name: "bench_jobs"})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, scratch.Close()) }()
	cluster, url := scratch.Cluster, scratch.URL
	fmt.Printf("postgres: private cluster on port %d, migrated in %.2fs\n", cluster.Port, time.Since(t).Seconds())

	pool, err := db.Open(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()

	t = time.Now()
	batch := make([]jobs.NewJob, 0, chunk)
	for i := 0; i < n; i += chunk {
		batch = batch[:0]
		for k := i; k < min(i+chunk, n); k++ {
			batch = append(batch, jobs.NewJob{Kind: jobs.KindFetchTicker, Key: jobs.Key("bench", fmt.Sprintf("%07d", k))})
		}
		res, err := jobs.EnqueueMany(ctx, pool, batch)
		if err != nil {
			return err
		}
		if res.Inserted != len(batch) {
			return fmt.Errorf("enqueue: %d of %d inserted", res.Inserted, len(batch))
		}
	}
	enqueueSecs := time.Since(t).Seconds()
	fmt.Printf("enqueue: %d jobs in %.2fs (%.0f jobs/s, EnqueueMany of %d)\n", n, enqueueSecs, float64(n)/enqueueSecs, chunk)

	engine, err := jobs.New(pool, jobs.Config{}) // the defaults are what is measured
	if err != nil {
		return err
	}
	var runs atomic.Int64
	if err := engine.Register(jobs.KindFetchTicker, jobs.HandlerFunc(func(context.Context, jobs.Job) error {
		runs.Add(1)
		return nil
	})); err != nil {
		return err
	}
	cfg := engine.Config()
	fmt.Printf("engine: defaults Workers=%d BatchSize=%d Lease=%s PollInterval=%s\n", cfg.Workers, cfg.BatchSize, cfg.Lease, cfg.PollInterval)

	start := time.Now()
	if err := engine.Start(ctx); err != nil {
		return err
	}
	tick := time.NewTicker(10 * time.Millisecond)
	lastReport, lastDone := start, int64(0)
	for engine.Stats().Succeeded < int64(n) {
		select {
		case <-ctx.Done():
			_ = engine.Stop(context.Background())
			return ctx.Err()
		case now := <-tick.C:
			if now.Sub(lastReport) >= time.Second {
				done := engine.Stats().Succeeded
				fmt.Printf("progress: %6.1fs done=%d (%.0f jobs/s over the last %.1fs)\n", now.Sub(start).Seconds(), done,
					float64(done-lastDone)/now.Sub(lastReport).Seconds(), now.Sub(lastReport).Seconds())
				lastReport, lastDone = now, done
			}
		}
	}
	secs := time.Since(start).Seconds()
	tick.Stop()
	stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := engine.Stop(stopCtx); err != nil {
		return err
	}

	st := engine.Stats()
	var succeeded int64
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM ingest.jobs WHERE status = 'succeeded'").Scan(&succeeded); err != nil {
		return err
	}
	if succeeded != int64(n) || runs.Load() != int64(n) {
		return fmt.Errorf("check: %d rows succeeded, %d handler runs, want %d each", succeeded, runs.Load(), n)
	}
	fmt.Printf("check: %d rows succeeded, %d handler runs, %d retried, %d failed, %d stale\n",
		succeeded, runs.Load(), st.Retried, st.Failed, st.Stale)
	fmt.Printf("breakdown: %d claim statements (%.0f jobs, %.1f ms each; %.1fs in all), %d completion statements (%.0f jobs, %.1f ms each; %.1fs in all)\n",
		st.ClaimQueries, float64(st.Claimed)/float64(max(st.ClaimQueries, 1)),
		st.ClaimTime.Seconds()*1000/float64(max(st.ClaimQueries, 1)), st.ClaimTime.Seconds(),
		st.CompleteQueries, float64(n)/float64(max(st.CompleteQueries, 1)),
		st.CompleteTime.Seconds()*1000/float64(max(st.CompleteQueries, 1)), st.CompleteTime.Seconds())
	fmt.Printf("BENCH jobs jobs=%d seconds=%.2f jobs_per_s=%.0f\n", n, secs, float64(n)/secs)
	return nil
}
