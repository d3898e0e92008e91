// Command orchestrator is the gate of the background platform (RUN_JOBS), the tick publisher, the
// universe watcher and the Postgres change relay. See docs/orchestrator.md and docs/events.md.
package main

import (
	"context"
	"fmt"
	"github.com/jackc/pglogrepl"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/types/known/timestamppb"

	"cryptopill.dev/jobs/libs/config"
	"cryptopill.dev/jobs/libs/db"
	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/service"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
	"cryptopill.dev/jobs/services/orchestrator/internal/bus"
	"cryptopill.dev/jobs/services/orchestrator/internal/relay"
	"cryptopill.dev/jobs/services/orchestrator/internal/ticks"
	"cryptopill.dev/jobs/services/orchestrator/internal/universe"
)

func main() {
	logger := service.NewLogger(os.Getenv("LOG_LEVEL")).With("service", "orchestrator")
	os.Exit(orchestrate(os.LookupEnv, logger))
}

// orchestrate is main without the process exit: the gate, then the service.
func orchestrate(lookup func(string) (string, bool), logger *slog.Logger) int {
	if !runJobsEnabled(lookup) {
		// The seed's behaviour, kept: no background traffic unless explicitly enabled, and no
		// connection to Postgres or NATS either.
		v, _ := lookup("RUN_JOBS")
		logger.Info("background workers disabled: RUN_JOBS is not 1; set RUN_JOBS=1 to enable them", "RUN_JOBS", v)
		return 0
	}
	cfg, err := LoadConfig(lookup)
	if err != nil {
		config.Exit("orchestrator", err)
	}
	return service.Main(service.Options{Name: events.ServiceOrchestrator, Common: cfg.Common, Logger: logger, Topology: topology(cfg)}, func(ctx context.Context, p *service.Process) error {
		return run(ctx, p, cfg)
	})
}

// topology is the platform's declarations with the settings of the streams the orchestrator
// owns (CP_TICKS, CP_UNIVERSE, CP_CDC, CP_DLQ, the claim bucket CP_CLAIMS): their only source, since no other service
// changes them.
func topology(cfg Config) *events.Topology {
	t := events.NewTopology(events.TopologyConfig{
		Replicas: cfg.NATSReplicas,
		// Two orchestrators must de-duplicate each other's ticks of the longest period.
		TickDuplicateWindow: max(events.DefaultTickDuplicates, 2*max(cfg.StrauxInterval, cfg.CinImportInterval)),
		CDCDuplicateWindow:  cfg.CDCDuplicateWindow,
		ClaimMaxBytes:       cfg.ClaimsMaxBytes,
	})
	return &t
}

// runJobsEnabled is the gate: exactly "1" enables the orchestrator, as operators know it.
func runJobsEnabled(lookup func(string) (string, bool)) bool {
	v, _ := lookup("RUN_JOBS")
	return v == "1"
}

// modules are the tick schedules.
func modules(cfg Config) []ticks.Module {
	return []ticks.Module{
		{Name: events.ModuleStraux, Period: cfg.StrauxInterval, RunnerSessionID: cfg.RunnerSessionID},
		{Name: events.ModuleCinimport, Period: cfg.CinImportInterval, RunnerSessionID: cfg.CinImportRunnerSessionID},
	}
}

func run(ctx context.Context, p *service.Process, cfg Config) error {
	host, _ := os.Hostname()
	session := &eventsv1.OrchestratorSession{
		Id:        strconv.FormatInt(p.SessionID, 10),
		Host:      host,
		Pid:       int32(os.Getpid()),
		StartedAt: timestamppb.Now(),
		Version:   service.Version(),
	}
	pub := p.Publisher
	flags := ticks.NewFreezeFlags(ticks.FreezeConfig{JS: p.JS, Bucket: cfg.FlagsBucket, Replicas: cfg.NATSReplicas, Pool: p.Pool, Logger: p.Logger})
	tp, err := ticks.New(ticks.Config{Modules: modules(cfg), Publisher: pub, JS: p.JS, Flags: flags, Session: session, Logger: p.Logger, Registerer: p.Registry, TracerProvider: p.TracerProvider})
	if err != nil {
		return err
	}
	uw, err := universe.New(universe.Config{Pool: p.Pool, Publisher: pub, JS: p.JS, Logger: p.Logger, Registerer: p.Registry})
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return flags.Run(gctx) })
	g.Go(func() error { return tp.Run(gctx) })
	g.Go(func() error { return uw.Run(gctx) })
	if !cfg.CDCEnabled || !slices.Contains(cfg.CDCTables, universe.Table) {
		p.Logger.Warn("universe changes will not be published: they come from the change relay, which is off or does not stream " + universe.Table +
			"; the universe is still published at every start")
	}
	if cfg.CDCEnabled {
		stop, err := startRelay(gctx, g, p, cfg, uw)
		if err != nil {
			return err
		}
		defer stop()
	}
	p.Logger.Info("orchestrator running",
		slog.String("straux_interval", cfg.StrauxInterval.String()),
		slog.String("cinimport_interval", cfg.CinImportInterval.String()),
		slog.String("runner_session_id", cfg.RunnerSessionID),
		slog.Bool("cdc", cfg.CDCEnabled))
	return g.Wait()
}

// startRelay runs the change relay in g on a NATS connection of its own: without a reconnect
// buffer, so nothing published while disconnected can land after what the drop lost.
func startRelay(ctx context.Context, g *errgroup.Group, p *service.Process, cfg Config, uw *universe.Watcher) (stop func(), err error) {
	auth, err := service.NATSOptions(p.Name, cfg.Common)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(cfg.NATSURL, append(auth,
		nats.Name("orchestrator-relay"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ReconnectBufSize(-1),
		nats.RetryOnFailedConnect(true),
	)...)
	if err != nil {
		return nil, fmt.Errorf("connect nats %s for the change relay: %w", config.SafeNATSURL(cfg.NATSURL), err)
	}
	// Row changes are what can outgrow a NATS message: the relay offloads through the frame's
	// claim-check, on the bucket the orchestrator's topology declares (CLAIMS_MAX_MB, replicas).
	pub, err := bus.New(nc, bus.Config{MaxInFlight: cfg.CDCMaxInFlight, Claims: p.Claims, TracerProvider: p.TracerProvider})
	if err != nil {
		nc.Close()
		return nil, err
	}
	// The relay's own role (CDC_DATABASE_URL) has REPLICATION and nothing else; it manages the
	// slot on a small pool of its own.
	relayPool := p.Pool
	if cfg.CDCDatabaseURL != cfg.DatabaseURL {
		if relayPool, err = db.OpenPool(ctx, cfg.CDCDatabaseURL, 3); err != nil {
			_ = pub.Close(context.Background())
			nc.Close()
			return nil, fmt.Errorf("change relay (CDC_DATABASE_URL): %w", err)
		}
	}
	closePool := func() {
		if relayPool != p.Pool {
			relayPool.Close()
		}
	}
	r, err := relay.New(relay.Config{
		ConnString:       cfg.CDCDatabaseURL,
		Pool:             relayPool,
		Publisher:        pub,
		Slot:             cfg.CDCSlot,
		Publication:      cfg.CDCPublication,
		Tables:           cfg.CDCTables,
		MaxInFlight:      cfg.CDCMaxInFlight,
		MaxInFlightBytes: cfg.CDCMaxInFlightBytes,
		RecreateLostSlot: cfg.CDCRecreateLostSlot,
		StatusInterval:   cfg.CDCStatusInterval,
		OnCommit: func(c relay.Commit) {
			if slices.Contains(c.Tables, universe.Table) {
				uw.Notify(universe.Change{CommitLSN: c.CommitLSN, CommitTime: c.CommitTime})
			}
		},
		// The universe published at start was read before the slot may have existed: a change
		// committed in between would never be relayed. Publish it again once streaming; unchanged,
		// it is dropped as a duplicate of the start event.
		OnStreaming: func(from pglogrepl.LSN) {
			if slices.Contains(cfg.CDCTables, universe.Table) {
				uw.Notify(universe.Change{CommitLSN: uint64(from), CommitTime: time.Now(), Resync: true})
			}
		},
		Logger:     p.Logger,
		Registerer: p.Registry,
	})
	if err != nil {
		closePool()
		_ = pub.Close(context.Background())
		nc.Close()
		return nil, err
	}
	done := make(chan struct{})
	g.Go(func() error {
		defer close(done)
		return r.Run(ctx)
	})
	return func() {
		<-done
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = pub.Close(cctx)
		nc.Close()
		closePool()
	}, nil
}
