// Command seeder keeps ingest.jobs in step with the coin universe. See README.md and docs/events.md.
//
//	seeder        run the service: converge the jobs on every cp.universe.changed
//	seeder once   seed the enabled universe once, print inserted vs already present per kind
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"cryptopill.dev/jobs/libs/config"
	"cryptopill.dev/jobs/libs/db"
	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/jobs"
	"cryptopill.dev/jobs/libs/service"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
	"cryptopill.dev/jobs/services/seeder/internal/seeding"
)

func main() {
	cfg, err := LoadConfig(os.LookupEnv)
	if err != nil {
		config.Exit("seeder", err)
	}
	args := os.Args[1:]
	switch {
	case len(args) == 0:
		os.Exit(service.Main(service.Options{Name: events.ServiceSeeder, Common: cfg.Common}, func(ctx context.Context, p *service.Process) error {
			return run(ctx, p, cfg)
		}))
	case len(args) == 1 && args[0] == "once":
		// A one-shot run needs no NATS and must not collide with the service's /metrics port.
		cfg.HTTPAddr = "127.0.0.1:0"
		os.Exit(service.Main(service.Options{Name: "seeder-once", Common: cfg.Common, NoNATS: true, NoHTTP: true}, func(ctx context.Context, p *service.Process) error {
			return runOnce(ctx, p, cfg, os.Stdout)
		}))
	default:
		fmt.Fprintf(os.Stderr, "seeder: unknown command %q\nusage: seeder [once]\n", strings.Join(args, " "))
		os.Exit(2)
	}
}

// run converges ingest.jobs on every universe change, one event at a time.
func run(ctx context.Context, p *service.Process, cfg Config) error {
	// The seeder runs whatever RUN_JOBS says, so it is where a replication slot nobody reads
	// (the orchestrator off or down) shows: read from Postgres at every scrape.
	p.Registry.MustRegister(db.NewSlotCollector(p.Pool, p.Logger))
	s, err := seeding.New(p.Pool, seeding.Config{Windows: cfg.Windows, Period: cfg.JobPeriod})
	if err != nil {
		return err
	}
	c, err := events.NewConsumer(ctx, p.JS, events.ConsumerConfig{
		Stream: events.StreamUniverse, Durable: events.ConsumerSeederUniverse,
		Source: "seeder", Logger: p.Logger,
		Middleware: []events.Middleware{p.WaitWhileUnavailable(events.ConsumerSeederUniverse)},
		Handler: func(ctx context.Context, ev events.Event) error {
			uc, ok := ev.Payload.(*eventsv1.UniverseChanged)
			if !ok {
				return events.Permanent(fmt.Errorf("%s: payload %T, want UniverseChanged", ev.Subject, ev.Payload))
			}
			rep, err := s.Converge(ctx)
			if err != nil {
				return err
			}
			p.Logger.Info("jobs converged on the universe", "version", uc.GetVersion(),
				"added_hint", uc.GetAdded(), "removed_hint", uc.GetRemoved(),
				"symbols", len(rep.Symbols), "windows", rep.Windows, "inserted", rep.Inserted(),
				"cancelled", rep.Cancelled, "cancelled_symbols", rep.CancelledSymbols)
			return nil
		},
	})
	if err != nil {
		return err
	}
	p.Events.AddConsumer(c)
	return c.Run(ctx)
}

// runOnce is `seeder once`, recorded in ops.job_run.
func runOnce(ctx context.Context, p *service.Process, cfg Config, out io.Writer) error {
	return jobs.RunOneShot(ctx, p.Pool, "seeder once", p.SessionID, p.Logger, func(ctx context.Context) error {
		s, err := seeding.New(p.Pool, seeding.Config{Windows: cfg.Windows, Period: cfg.JobPeriod})
		if err != nil {
			return err
		}
		rep, err := s.SeedOnce(ctx)
		if err != nil {
			return fmt.Errorf("seeder once: %w", err)
		}
		PrintReport(out, rep)
		return nil
	})
}

// PrintReport writes one line per kind: inserted and already present.
func PrintReport(w io.Writer, rep seeding.Report) {
	fmt.Fprintf(w, "seeded %d symbols × %d windows (%s)\n", len(rep.Symbols), len(rep.Windows), strings.Join(rep.Windows, ", "))
	for _, k := range rep.Kinds {
		fmt.Fprintf(w, "%-20s inserted=%d already_present=%d\n", k.Kind, k.Inserted, k.Present)
	}
}
