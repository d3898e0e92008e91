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
	trig := trigger.New(im, pub, trigger.Config{Debounce: cfg.Debounce, Logger: p.Logger, Registerer: p.Registry})
	defer trig.Wait()

	changes, err := events.NewConsumer(ctx, p.JS, events.ConsumerConfig{
		Stream: events.StreamCDC, Durable: events.ConsumerCinimportChanges,
		Handler: trig.HandleChange,
		// Many handlers wait on one coalesced import per scope: a burst of trade inserts is one
		// import, not one per trade.
		Concurrency: 512,
		Source:      "cinimport",
		Logger:      p.Logger,
		Middleware:  []events.Middleware{p.WaitWhileUnavailable(events.ConsumerCinimportChanges)},
	})
	if err != nil {
		return err
	}
	p.Events.AddConsumer(changes)
	ticks, err := events.NewConsumer(ctx, p.JS, events.ConsumerConfig{
		Stream: events.StreamTicks, Durable: events.ConsumerCinimportTicks,
		Handler:    trig.HandleTick,
		Source:     "cinimport",
		Logger:     p.Logger,
		Middleware: []events.Middleware{p.WaitWhileUnavailable(events.ConsumerCinimportTicks)},
	})
	if err != nil {
		return err
	}
	p.Events.AddConsumer(ticks)

	// A component that fails stops the others: the process exits and is restarted.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
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
		client, err := exchange.New(exchange.Config{BaseURL: cfg.BaseURL, APIKey: cfg.APIKey, APISecret: cfg.APISecret, Logger: p.Logger})
		if err != nil {
			return err
		}
		p.Registry.MustRegister(exchange.NewCollector(client.Limiter()))
		sync := tradesync.New(p.Pool, client, tradesync.Config{Scope: cfg.Scope, Symbols: cfg.TradeSymbols, Lookback: cfg.TradeLookback, Logger: p.Logger})
		runPart(func() error { return syncLoop(ctx, p, cfg, sync, trig) })
		p.Logger.Info("trade sync on", "exchange", cfg.BaseURL, "scope", cfg.Scope,
			"interval", cfg.TradeSyncInterval.String(), "lookback", cfg.TradeLookback.String())
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
	nc, err := nats.Connect(cfg.NATSURL, nats.Name("cinimport-once"), nats.Timeout(5*time.Second))
	if err != nil {
		p.Logger.Warn("NATS unreachable: importing without publishing MovesImported events", "nats", cfg.NATSURL, "err", err)
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
