package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"go.opentelemetry.io/otel/trace"

	"cryptopill.dev/jobs/libs/config"
	"cryptopill.dev/jobs/libs/db"
	"cryptopill.dev/jobs/libs/events"
)

// version is set at build time with -ldflags "-X cryptopill.dev/jobs/libs/service.version=…".
var version string

// Version is the build's version: the ldflags value, else the VCS revision, else "dev".
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return s.Value[:12]
			}
		}
	}
	return "dev"
}

// buildInfo is cp_build_info{service,version,goversion} = 1: joined on `service` in queries, it
// says which version every replica runs (`count by (version) (cp_build_info)` during a rollout).
func buildInfo(name string) prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "cp_build_info",
		Help: "Always 1; the labels say the service, its version and the Go version it was built with."},
		[]string{"service", "version", "goversion"})
	g.WithLabelValues(name, Version(), runtime.Version()).Set(1)
	return g
}

// Options says what a service needs from its process.
type Options struct {
	// Name is the service name, used in logs, ce-source, metrics and ops.session_log.
	Name string
	// Common is the shared configuration.
	Common config.Common
	// NoDatabase skips Postgres (a service that needs none).
	NoDatabase bool
	// NoNATS skips the NATS connection.
	NoNATS bool
	// NoHTTP skips the /healthz, /readyz, /metrics server: one-shot runs (`cinimport once`) must
	// not collide with the daemon's port on the same host.
	NoHTTP bool
	// Logger overrides the JSON logger on stderr (tests).
	Logger *slog.Logger
	// Topology is the declared streams and durables; the service applies its own part of it
	// (events.Topology.ApplyAs with Name as the service) once NATS is connected, and runs only
	// once that part is in line: it creates or updates what it owns and waits, not ready, for the
	// streams it uses that their owners have not created yet. The zero value is
	// events.NewTopology with Common.NATSReplicas.
	Topology *events.Topology
	// Heartbeat is how often the process stamps ops.session_log.last_seen_at (stopped_at is
	// stamped when Start returns); zero is DefaultHeartbeat.
	Heartbeat time.Duration
}

// Process is what a running service gets: its connections, logger and metrics registry.
type Process struct {
	Name   string
	Env    config.Env
	Logger *slog.Logger
	Pool   *pgxpool.Pool
	NC     *nats.Conn
	JS     jetstream.JetStream
	// Publisher is the process's event publisher (ce-source = Name), counted in Events and
	// closed, its outstanding publishes awaited, after the run function returns. It offloads
	// events too large for a NATS message through Claims.
	Publisher *events.Publisher
	// Claims is the process's claim-check on the CP_CLAIMS bucket (bound once the topology is in
	// line: the orchestrator owns the bucket, other services wait for it), counted in Events;
	// consumers may share it (ConsumerConfig.ClaimCheck).
	Claims   *events.ClaimCheck
	Registry *prometheus.Registry
	// Events exports the counters of the publishers and consumers the service adds to it.
	Events    *events.Collector
	SessionID int64
	// Micro is this replica's registration with the NATS services API (nil without NATS): `nats
	// micro ls|info <service>` list it; AddOpsEndpoint adds operator endpoints to it.
	Micro micro.Service
	// TracerProvider makes the process's spans (also otel's global provider); the frame's
	// Publisher uses it, and so should the service's consumers and job engines.
	TracerProvider trace.TracerProvider
	// HTTPAddr is where /healthz, /readyz and /metrics listen (resolved, with the real port).
	HTTPAddr string

	mu     sync.Mutex
	checks map[string]func(context.Context) error
	// opsWG counts operator requests being served: awaited before the connections close.
	opsWG sync.WaitGroup
}

// AddReadyCheck adds a named check to /readyz.
func (p *Process) AddReadyCheck(name string, check func(context.Context) error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.checks[name] = check
}

// Run is a service's body: it returns when ctx is cancelled and its work has drained.
type Run func(ctx context.Context, p *Process) error

// Main runs a service and returns the process exit status: 0 after a clean shutdown, 1 on error.
func Main(opts Options, run Run) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if opts.Logger == nil {
		opts.Logger = NewLogger(opts.Common.LogLevel).With("service", opts.Name)
	}
	if err := Start(ctx, opts, run); err != nil {
		opts.Logger.Error("service failed", "err", err)
		return 1
	}
	return 0
}

// Start is Main without signal handling and exit codes, for tests and embedding: it runs until
// ctx is cancelled and run returns.
func Start(ctx context.Context, opts Options, run Run) (err error) {
	logger := opts.Logger
	if logger == nil {
		logger = NewLogger(opts.Common.LogLevel).With("service", opts.Name)
	}
	// A logger handed in (tests, embedding) joins traces too.
	logger = WithTraceIDs(logger)
	p := &Process{
		Name:     opts.Name,
		Env:      opts.Common.Env,
		Logger:   logger,
		Registry: prometheus.NewRegistry(),
		Events:   events.NewCollector(),
		checks:   map[string]func(context.Context) error{},
	}
	p.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), p.Events,
		buildInfo(opts.Name))
	logger.Info("starting", "version", Version(), "env", opts.Common.Env, "pid", os.Getpid(), "nats", config.SafeNATSURL(opts.Common.NATSURL),
		"nats_auth", opts.Common.NATS, "database", db.SafeURL(opts.Common.DatabaseURL))

	tr, err := setupTracing(ctx, opts.Name, opts.Common.Env, opts.Common.Tracing, logger, p.Registry)
	if err != nil {
		return err
	}
	p.TracerProvider = tr.provider
	defer func() {
		// Flushes the spans still batched: the last ones of a drain are often the interesting ones.
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tr.shutdown(sctx); err != nil {
			logger.Warn("flush traces at shutdown", "err", err)
		}
	}()

	if !opts.NoDatabase {
		// A binary older or newer than the schema would fail later in ways that say less.
		applied, err := db.EnsureSchema(ctx, opts.Common.DatabaseURL, opts.Common.MigrateOnStart)
		if err != nil {
			return err
		}
		if opts.Common.MigrateOnStart {
			logger.Info("migrations applied", "versions", applied)
		}
		if p.Pool, err = db.OpenPool(ctx, opts.Common.DatabaseURL, opts.Common.DBMaxConns, db.WithTracerProvider(tr.provider)); err != nil {
			return err
		}
		defer p.Pool.Close()
		p.SessionID, err = db.StampSession(ctx, p.Pool, db.SessionStamp{Service: opts.Name, Version: Version(), Env: string(opts.Common.Env)})
		if err != nil {
			return fmt.Errorf("stamp ops.session_log (is the schema migrated? run `cpctl migrate up` or set MIGRATE_ON_START=1): %w", err)
		}
		logger = logger.With("session_id", p.SessionID)
		p.Logger = logger
		// Deferred after the pool's Close, so it runs before it: stopped_at is stamped on return.
		hb := startHeartbeat(p.Pool, p.SessionID, opts.Heartbeat, logger, p.Registry)
		defer hb.close()
		pool := p.Pool
		p.AddReadyCheck("postgres", func(ctx context.Context) error { return pool.Ping(ctx) })
	}
	var topo *topologyState
	if !opts.NoNATS {
		if p.NC, err = connectNATS(opts.Name, opts.Common, logger, p.Registry); err != nil {
			return err
		}
		defer p.NC.Close()
		if p.JS, err = jetstream.New(p.NC); err != nil {
			return fmt.Errorf("jetstream on %s: %w", config.SafeNATSURL(opts.Common.NATSURL), err)
		}
		nc := p.NC
		p.AddReadyCheck("nats", func(context.Context) error {
			if !nc.IsConnected() {
				return fmt.Errorf("nats %s", nc.Status())
			}
			return nil
		})
		topo = newTopologyState(p.Registry)
		p.AddReadyCheck("topology", topo.check)
	}

	// Served before the topology is in line, so /readyz can say what the service waits for.
	if !opts.NoHTTP {
		srv, err := p.serveHTTP(opts.Common.HTTPAddr)
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
	}

	if !opts.NoNATS {
		// Registered before the topology is in line, so a replica waiting for its streams is
		// still listed by `nats micro ls`.
		if p.Micro, err = p.registerService(p.NC, opts.Common); err != nil {
			return err
		}
		defer func() { _ = p.Micro.Stop() }()
		// Every consumer the service adds to p.Events is reachable here by its durable.
		if err := p.AddOpsEndpoint(DeliverEndpoint, p.deliverHandler(ctx)); err != nil {
			return err
		}
		decl := opts.Topology
		if decl == nil {
			t := events.NewTopology(events.TopologyConfig{Replicas: opts.Common.NATSReplicas})
			decl = &t
		}
		if err := topo.apply(ctx, p.JS, decl, opts.Name, logger); err != nil {
			if ctx.Err() != nil {
				// Stopped while waiting (for an owner's stream, an operator's fix): not a failure.
				logger.Info("stopped before streams and consumers were in line", "err", err)
				return nil
			}
			return err
		}
		// Bound, never created here: the bucket is in the topology (owned by the orchestrator),
		// which is in line by now.
		if p.Claims, err = events.NewClaimCheck(ctx, p.JS, events.ClaimConfig{Logger: logger}); err != nil {
			return fmt.Errorf("claim bucket: %w", err)
		}
		p.Events.AddClaimCheck(opts.Name, p.Claims)
		if p.Publisher, err = events.NewPublisher(p.NC, events.PublisherConfig{Source: opts.Name, ClaimCheck: p.Claims, TracerProvider: tr.provider}); err != nil {
			return err
		}
		p.Events.AddPublisher(opts.Name, p.Publisher)
	}
	logger.Info("ready", "http", p.HTTPAddr)

	done := make(chan error, 1)
	go func() { done <- run(ctx, p) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		logger.Info("shutting down: draining in-flight work", "grace", opts.Common.ShutdownGrace.String())
		select {
		case err = <-done:
		case <-time.After(opts.Common.ShutdownGrace):
			err = fmt.Errorf("shutdown grace %s exceeded; in-flight work abandoned (it will be redelivered)", opts.Common.ShutdownGrace)
		}
	}
	if p.Micro != nil {
		// No new operator requests; those being served end with ctx (their handlers got it).
		_ = p.Micro.Stop()
		served := make(chan struct{})
		go func() { p.opsWG.Wait(); close(served) }()
		select {
		case <-served:
		case <-time.After(opts.Common.ShutdownGrace):
			logger.Warn("operator requests still running at shutdown; their requesters time out and may send them again",
				"grace", opts.Common.ShutdownGrace.String())
		}
	}
	if p.Publisher != nil {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = p.Publisher.Close(cctx)
		cancel()
	}
	if p.Micro != nil {
		// Off the services API before the connection drains: a stopping replica is not listed.
		_ = p.Micro.Stop()
	}
	if p.NC != nil {
		// Drain flushes what is buffered and unsubscribes before the connection closes.
		_ = p.NC.Drain()
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	logger.Info("stopped")
	return nil
}

func (p *Process) serveHTTP(addr string) (*http.Server, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		p.mu.Lock()
		checks := make(map[string]func(context.Context) error, len(p.checks))
		for k, v := range p.checks {
			checks[k] = v
		}
		p.mu.Unlock()
		status, body := http.StatusOK, ""
		for name, check := range checks {
			if err := check(ctx); err != nil {
				status = http.StatusServiceUnavailable
				body += fmt.Sprintf("%s: %v\n", name, err)
			} else {
				body += name + ": ok\n"
			}
		}
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(p.Registry, promhttp.HandlerOpts{Registry: p.Registry}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen HTTP_ADDR=%s: %w", addr, err)
	}
	p.HTTPAddr = ln.Addr().String()
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv, nil
}
