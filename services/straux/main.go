// Command straux consumes ticks: samples order books, tickers and klines, computes str-aux vectors and works the market job kinds. See README.md and docs/events.md.
//
// main wires; the packages under internal/ do the work: ticks (the tick runner and its replica
// claims), plan (the weight budget), book, idhr, vectors and window (the math), store (SQL),
// universe (the current enabled set) and marketjobs (the job kinds).
package main

import (
	"context"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/timestamppb"

	"cryptopill.dev/jobs/libs/config"
	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/exchange"
	"cryptopill.dev/jobs/libs/jobs"
	"cryptopill.dev/jobs/libs/service"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
	"cryptopill.dev/jobs/services/straux/internal/feed"
	"cryptopill.dev/jobs/services/straux/internal/marketjobs"
	"cryptopill.dev/jobs/services/straux/internal/members"
	"cryptopill.dev/jobs/services/straux/internal/plan"
	"cryptopill.dev/jobs/services/straux/internal/store"
	"cryptopill.dev/jobs/services/straux/internal/ticks"
	"cryptopill.dev/jobs/services/straux/internal/universe"
)

func main() {
	cfg, err := LoadConfig(os.LookupEnv)
	if err != nil {
		config.Exit("straux", err)
	}
	os.Exit(service.Main(service.Options{Name: events.ServiceStraux, Common: cfg.Common}, func(ctx context.Context, p *service.Process) error {
		return run(ctx, p, cfg)
	}))
}

func run(ctx context.Context, p *service.Process, cfg Config) error {
	log := p.Logger
	pool := p.Pool

	client, err := exchange.New(exchange.Config{BaseURL: cfg.BinanceBaseURL, WeightLimit: cfg.WeightLimit,
		Logger: log.With("component", "exchange"), Now: cfg.Now, TracerProvider: p.TracerProvider})
	if err != nil {
		return err
	}
	// The ticks' share of the weight budget is reserved for them in the limiter, so market jobs
	// and backfill can never take it (they get the rest; ticks also use what the jobs leave idle).
	if err := client.Limiter().SetTickReserve(cfg.WeightSharePct); err != nil {
		return err
	}
	// Read the weight limit (exchangeInfo) and the clock offset now rather than on the first
	// call; an exchange that is down is retried in the background, not fatal.
	go initExchange(ctx, client, log)
	budget := func() plan.Budget {
		s := client.Limiter().Stats()
		return plan.Budget{PerWindow: s.Budget, Window: s.Window}
	}

	st := store.New(pool)
	uni := universe.New(p.JS, st.SettingsUniverse, log)

	pub := p.Publisher
	worker := fmt.Sprintf("straux/%d", p.SessionID)
	retention := cfg.JobsRetention
	if retention == 0 {
		retention = -1 // JOBS_RETENTION=0 keeps everything
	}
	engine, err := jobs.New(pool, jobs.Config{Workers: cfg.JobWorkers, Logger: log, SessionID: p.SessionID, Retention: retention,
		TracerProvider: p.TracerProvider,
		OnOutcome:      func(outcomes []jobs.Outcome) { publishJobOutcomes(ctx, pub, worker, outcomes, log) }})
	if err != nil {
		return err
	}
	p.Registry.MustRegister(jobs.NewCollector(engine), exchange.NewCollector(client.Limiter()),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cp_straux_universe_bad_messages_total",
			Help: "Messages on cp.universe.changed that were not universe events (straux used the newest good one before each)."},
			func() float64 { return float64(uni.Bad()) }))
	// Stream mode: local books of this replica's share of the universe.
	var (
		streams    ticks.Streams
		jobStreams marketjobs.Streams
		fd         *feed.Feed
		mem        *members.Members
	)
	replica := cfg.ReplicaID
	if replica == "" {
		host, _ := os.Hostname()
		replica = fmt.Sprintf("%s/%d/%04x", host, os.Getpid(), rand.IntN(1<<16))
	}
	if cfg.MarketData == "stream" {
		// Replicas share the universe's streams: each symbol is held by one live replica.
		mem, err = members.New(pool, members.Config{Replica: replica, TTL: cfg.MemberTTL, Every: cfg.MemberTTL / 3,
			SessionID: p.SessionID, Logger: log, Registerer: p.Registry})
		if err != nil {
			return err
		}
		fd, err = feed.New(feed.Config{URL: cfg.StreamURL, Members: mem,
			// Resyncs draw on the ticks' reserve: in stream mode they are the ticks' market data.
			Snapshot: func(ctx context.Context, symbol string, limit int) (*exchange.OrderBook, error) {
				return client.Depth(exchange.WithClass(ctx, exchange.ClassTicks), symbol, limit)
			},
			ResyncPerSecond: float64(cfg.ResyncPerSecond), Universe: uni.Current, Linger: lingerOf(cfg.HandoverLinger),
			Registerer: p.Registry, Logger: log, Now: cfg.Now})
		if err != nil {
			return err
		}
		streams, jobStreams = fd, fd
	}

	handlers := marketjobs.New(st, client, uni, marketjobs.Config{MaxBins: cfg.VectorMaxBins, Streams: jobStreams,
		Registerer: p.Registry, Logger: log, Now: cfg.Now})
	if err := handlers.Register(engine); err != nil {
		return err
	}

	// The runner's work outlives ctx: shutdown drains it (runner.Stop), it is not cut off.
	runner, err := ticks.New(context.WithoutCancel(ctx), st, client, uni, ticks.Config{
		Replica: replica, DepthLimit: cfg.DepthLimit, Snapshots: cfg.SnapshotsPerTick,
		SnapshotSpacing: cfg.SnapshotSpacing, ChunkSize: cfg.ChunkSize, Workers: cfg.Workers,
		FetchConcurrency: cfg.FetchConcurrency, Lease: cfg.ClaimLease, WeightSharePct: cfg.WeightSharePct,
		MaxBins: cfg.VectorMaxBins, Backfill: cfg.Backfill, Budget: budget, Streams: streams,
		// A finished tick is the cue for due market jobs.
		// The claim it causes, and the jobs it takes, join the tick's trace.
		OnPeriodDone:   func(ctx context.Context, _ time.Time) { engine.WakeFrom(ctx) },
		TracerProvider: p.TracerProvider,
		Registerer:     p.Registry, Logger: log, Now: cfg.Now,
	})
	if err != nil {
		return err
	}
	cons, err := events.NewConsumer(ctx, p.JS, events.ConsumerConfig{
		Stream: events.StreamTicks, Durable: events.ConsumerStrauxTicks,
		Handler: runner.Handler(), Concurrency: 2, Logger: log, ShutdownTimeout: cfg.ShutdownGrace, TracerProvider: p.TracerProvider,
		Middleware: []events.Middleware{p.WaitWhileUnavailable(events.ConsumerStrauxTicks)},
	})
	if err != nil {
		return err
	}
	p.Events.AddConsumer(cons)
	if err := engine.Start(ctx); err != nil {
		return fmt.Errorf("start job engine: %w", err)
	}
	log.Info("straux running", "replica", runner.Replica(), "exchange", cfg.BinanceBaseURL, "market_data", cfg.MarketData,
		"stream_url", cfg.StreamURL, "depth_limit", cfg.DepthLimit, "workers", cfg.Workers, "backfill", cfg.Backfill, "assist", cfg.Assist)

	var wg sync.WaitGroup
	errc := make(chan error, 2)
	// The feed outlives ctx until the runner and the job engine have drained: the chunks and
	// jobs in flight read its books.
	feedCtx, stopFeed := context.WithCancel(context.WithoutCancel(ctx))
	feedDone := make(chan struct{})
	go func() {
		defer close(feedDone)
		if fd == nil {
			return
		}
		// The membership ends with the feed: the row is deleted and the others take over.
		memDone := make(chan struct{})
		go func() {
			defer close(memDone)
			if err := mem.Run(feedCtx); err != nil {
				log.Error("stream membership stopped", "err", err)
			}
		}()
		defer func() { <-memDone }()
		// The feed ending early leaves every book not live: the ticks sample over REST.
		if err := fd.Run(feedCtx); err != nil && feedCtx.Err() == nil {
			log.Error("stream feed stopped; ticks fall back to REST sampling", "err", err)
		}
	}()
	wg.Add(1)
	go func() { defer wg.Done(); errc <- cons.Run(ctx) }()
	if cfg.Assist {
		wg.Add(1)
		go func() { defer wg.Done(); errc <- runner.AssistTicks(ctx, p.JS) }()
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		// The tick consumer cannot go on (its consumer was deleted, the connection closed).
	}
	// Drain: no new chunks; handlers waiting on unfinished periods return so their ticks are
	// redelivered to a replica that stays; chunks in flight are written.
	runner.Stop()
	wg.Wait()
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownGrace)
	defer cancel()
	if err := engine.Stop(stopCtx); err != nil {
		log.Warn("job engine stop", "err", err)
	}
	// Last: the chunks and jobs in flight read the books until they are done.
	stopFeed()
	<-feedDone
	return runErr
}

// publishJobOutcomes puts each recorded job outcome on cp.job.<kind>.<status> for operators.
// The publishes are asynchronous: a failure is counted by the publisher, never blocks the engine
// beyond its in-flight bound, and loses no job (the job table is the record).
func publishJobOutcomes(ctx context.Context, pub *events.Publisher, worker string, outcomes []jobs.Outcome, log *slog.Logger) {
	ctx = context.WithoutCancel(ctx) // the last outcomes are recorded during shutdown
	for _, o := range outcomes {
		status := map[jobs.Status]eventsv1.JobStatus{jobs.StatusSucceeded: eventsv1.JobStatus_JOB_STATUS_SUCCEEDED,
			jobs.StatusQueued: eventsv1.JobStatus_JOB_STATUS_QUEUED, jobs.StatusFailed: eventsv1.JobStatus_JOB_STATUS_FAILED}[o.Status]
		attempts := int32(o.Job.Attempt)
		// Under the job's run span: the outcome event is part of the job's trace.
		octx := trace.ContextWithSpanContext(ctx, o.SpanContext)
		_, err := pub.PublishAsync(octx, events.Event{
			Subject: events.JobSubject(string(o.Job.Kind), status),
			ID:      events.JobEventID(o.Job.ID, attempts, status, o.Job.ScheduledFor),
			Payload: &eventsv1.JobLifecycle{JobId: o.Job.ID, Kind: string(o.Job.Kind), Status: status, Attempts: attempts,
				Error: o.Err, OccurredAt: timestamppb.Now(), Worker: worker, Key: o.Job.Key},
		})
		if err != nil {
			log.WarnContext(octx, "publish job outcome", "job_id", o.Job.ID, "kind", o.Job.Kind, "err", err)
		}
	}
}

func initExchange(ctx context.Context, client *exchange.Client, log *slog.Logger) {
	for attempt := 1; ; attempt++ {
		ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := client.Init(ictx)
		cancel()
		if err == nil {
			s := client.Limiter().Stats()
			log.Info("exchange ready", "weight_limit", s.Limit, "budget", s.Budget, "window", s.Window,
				"clock_offset", client.ClockOffset())
			return
		}
		if ctx.Err() != nil {
			return
		}
		log.Warn("exchange init failed; retrying", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(min(time.Duration(attempt)*2*time.Second, 30*time.Second)):
		}
	}
}

// lingerOf is STRAUX_HANDOVER_LINGER as feed.Config reads it: 0 there is the default, so "no
// linger" (0 here) is negative.
func lingerOf(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
