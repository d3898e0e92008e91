package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"cryptopill.dev/jobs/libs/config"
	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/exchange"
	"cryptopill.dev/jobs/libs/jobs"
	"cryptopill.dev/jobs/libs/progress"
	"cryptopill.dev/jobs/libs/service"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
	"cryptopill.dev/jobs/services/cinimport/internal/importer"
	"cryptopill.dev/jobs/services/cinimport/internal/tradesync"
	"cryptopill.dev/jobs/services/cinimport/internal/trigger"
)

// run is the service: the change and sweep consumers, and the trade sync loop.
func run(ctx context.Context, p *service.Process, cfg Config) error {
	im := importer.New(p.Pool, importer.Config{PriceMaxAge: cfg.PriceMaxAge})
	pub := p.Publisher
	trig := trigger.New(im, pub, trigger.Config{Debounce: cfg.Debounce, Logger: p.Logger, Registerer: p.Registry, TracerProvider: p.TracerProvider})
	defer trig.Wait()

	changes, err := events.NewConsumer(ctx, p.JS, events.ConsumerConfig{
		Stream: events.StreamCDC, Durable: events.ConsumerCinimportChanges,
		Handler: trig.HandleChange,
		// Many handlers wait on one coalesced import per scope: a burst of trade inserts is one
		// import, not one per trade.
		Concurrency:    512,
		Source:         "cinimport",
		Logger:         p.Logger,
		TracerProvider: p.TracerProvider,
		Middleware:     []events.Middleware{p.WaitWhileUnavailable(events.ConsumerCinimportChanges)},
	})
	if err != nil {
		return err
	}
	p.Events.AddConsumer(changes)
	ticks, err := events.NewConsumer(ctx, p.JS, events.ConsumerConfig{
		Stream: events.StreamTicks, Durable: events.ConsumerCinimportTicks,
		Handler:        trig.HandleTick,
		Source:         "cinimport",
		Logger:         p.Logger,
		TracerProvider: p.TracerProvider,
		Middleware:     []events.Middleware{p.WaitWhileUnavailable(events.ConsumerCinimportTicks)},
	})
	if err != nil {
		return err
	}
	p.Events.AddConsumer(ticks)

	// A component that fails stops the others: the process exits and is restarted.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	runPart := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				errs <- err
				stop()
			}
		}()
	}
	for _, c := range []*events.Consumer{changes, ticks} {
		runPart(func() error { return c.Run(ctx) })
	}
	if cfg.SyncEnabled() {
		client, err := exchange.New(exchange.Config{BaseURL: cfg.BaseURL, APIKey: cfg.APIKey, APISecret: cfg.APISecret, Logger: p.Logger, TracerProvider: p.TracerProvider})
		if err != nil {
			return err
		}
		p.Registry.MustRegister(exchange.NewCollector(client.Limiter()))
		if cfg.TradeSource == TradeSourceREST {
			sync := tradesync.New(p.Pool, client, tradesync.Config{Scope: cfg.Scope, Symbols: cfg.TradeSymbols, Lookback: cfg.TradeLookback, Logger: p.Logger})
			runPart(func() error { return syncLoop(ctx, p, cfg, sync, trig) })
			p.Logger.Info("trade sync on, polling myTrades", "exchange", cfg.BaseURL, "scope", cfg.Scope,
				"interval", cfg.TradeSyncInterval.String(), "lookback", cfg.TradeLookback.String())
		} else if err := startTradeStream(ctx, p, cfg, client, trig, runPart); err != nil {
			return err
		}
	} else {
		p.Logger.Info("trade sync off: BINANCE_API_KEY and BINANCE_API_SECRET are not set")
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// startTradeStream runs the stream mode: trades from the user data stream, stored as they come
// (the row changes import them), and myTrades sweeps as reconciliation at start, after every
// reconnect and every TradeReconcileInterval, paced to TradeSyncWeightPerMinute.
func startTradeStream(ctx context.Context, p *service.Process, cfg Config, client *exchange.Client, trig *trigger.ImportTrigger, runPart func(func() error)) error {
	sync := tradesync.New(p.Pool, client, tradesync.Config{Scope: cfg.Scope, Symbols: cfg.TradeSymbols, Lookback: cfg.TradeLookback,
		WeightPerMinute: cfg.TradeSyncWeightPerMinute, Logger: p.Logger})
	ss := tradesync.NewStreamSync(sync, tradesync.StreamConfig{ReconcileInterval: cfg.TradeReconcileInterval, Registerer: p.Registry, Logger: p.Logger,
		OnSweep: func(ctx context.Context, _ string, res tradesync.Result) {
			if res.Stored == 0 {
				return
			}
			if err := trig.ImportScope(ctx, res.Scope, eventsv1.MovesImported_TRIGGER_TRADES_INSERTED); err != nil && ctx.Err() == nil {
				p.Logger.Warn("import after trade reconciliation failed; the sweep retries", "err", err)
			}
		}})
	wsURL, err := exchange.StreamURLFor(cfg.BaseURL)
	if err != nil {
		return err
	}
	us, err := exchange.NewUserStream(client, exchange.UserStreamConfig{URL: wsURL, Logger: p.Logger}, ss)
	if err != nil {
		return err
	}
	tradesync.RegisterStreamStats(p.Registry, us.Stats)
	runPart(func() error { return us.Run(ctx) })
	runPart(func() error { return ss.Run(ctx) })
	p.Logger.Info("trade sync on, from the user data stream", "exchange", cfg.BaseURL, "stream", wsURL, "scope", cfg.Scope,
		"reconcile_interval", cfg.TradeReconcileInterval.String(), "sweep_weight_per_minute", cfg.TradeSyncWeightPerMinute,
		"lookback", cfg.TradeLookback.String())
	return nil
}

// syncLoop syncs the account's trades every interval and imports what arrived at once (the row
// changes would trigger the same import a moment later; both are coalesced and idempotent).
func syncLoop(ctx context.Context, p *service.Process, cfg Config, s *tradesync.TradeSync, trig *trigger.ImportTrigger) error {
	for {
		res, err := s.Sync(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			p.Logger.Warn("trade sync failed", "err", err)
		case res.Stored > 0:
			p.Logger.Info("trades synced", "scope", res.Scope, "stored", res.Stored, "earliest", res.Earliest, "failed_symbols", len(res.Failed))
			if err := trig.ImportScope(ctx, res.Scope, eventsv1.MovesImported_TRIGGER_TRADES_INSERTED); err != nil && ctx.Err() == nil {
				p.Logger.Warn("import after trade sync failed; the sweep retries", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(cfg.TradeSyncInterval):
		}
	}
}

// runOnce is `cinimport once`: every OPEN session, once, recorded in ops.job_run. -full shows
// its progress per session on stderr (a bar on a terminal, plain lines otherwise).
func runOnce(ctx context.Context, p *service.Process, cfg Config, full bool) error {
	name := "cinimport once"
	if full {
		name += " -full"
	}
	return jobs.RunOneShot(ctx, p.Pool, name, p.SessionID, p.Logger, func(ctx context.Context) error {
		return importOnce(ctx, p, cfg, full, os.Stderr)
	})
}

func importOnce(ctx context.Context, p *service.Process, cfg Config, full bool, progressOut io.Writer) error {
	im := importer.New(p.Pool, importer.Config{PriceMaxAge: cfg.PriceMaxAge})
	var pub trigger.Publisher
	// The cinimport identity: its permissions publish its imports.
	auth, err := service.NATSOptions(events.ServiceCinimport, cfg.Common)
	if err != nil {
		return err
	}
	nc, err := nats.Connect(cfg.NATSURL, append(auth, nats.Name("cinimport-once"), nats.Timeout(5*time.Second))...)
	if err != nil {
		p.Logger.Warn("NATS unreachable: importing without publishing MovesImported events", "nats", config.SafeNATSURL(cfg.NATSURL), "err", err)
	} else {
		defer nc.Close()
		ep, err := events.NewPublisher(nc, events.PublisherConfig{Source: "cinimport", RetryAttempts: 2})
		if err != nil {
			return err
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = ep.Close(cctx)
		}()
		pub = ep
	}
	trig := trigger.New(im, pub, trigger.Config{Logger: p.Logger})
	opts := importer.Options{Full: full}
	var bar *progress.Bar
	if full {
		done := 0
		opts.Progress = func(n, total int) {
			if bar == nil || n < done { // a retried import starts again
				bar = progress.New(progressOut, "sessions imported", int64(total))
				done = 0
			}
			bar.Add(int64(n - done))
			done = n
		}
	}
	results, err := trig.ImportAll(ctx, opts, eventsv1.MovesImported_TRIGGER_ONCE)
	if bar != nil {
		bar.Finish()
	}
	var total int64
	for _, r := range results {
		total += r.Moves
	}
	if err != nil {
		return fmt.Errorf("cinimport once: %w", err)
	}
	p.Logger.Info("cinimport once done", "sessions", len(results), "moves", total, "full", full)
	return nil
}
