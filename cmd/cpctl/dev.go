package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"cryptopill.dev/jobs/libs/db"
	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/pgcluster"
	"cryptopill.dev/jobs/libs/service"
)

// devServices are the daemons `cpctl dev` runs from bin/, with their /metrics ports.
var devServices = []struct {
	name string
	http int
}{
	{"orchestrator", 9101},
	{"straux", 9102},
	{"cinimport", 9103},
	{"seeder", 9104},
}

// The simulated exchange's dev credentials; they exist only on this machine.
const (
	devAPIKey    = "dev-key"
	devAPISecret = "dev-secret"
	devDatabase  = "cryptopill"
	devSymbols   = "BTCUSDT,ETHUSDT,BNBUSDT,SOLUSDT,ADAUSDT"
)

func runDev(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	dataDir := fs.String("data", ".data", "directory for the dev cluster, NATS storage, logs and dev.env")
	natsPort := fs.Int("nats-port", envInt("CP_DEV_NATS_PORT", 4222), "NATS client port (env CP_DEV_NATS_PORT)")
	pgPort := fs.Int("pg-port", envInt("CP_DEV_PG_PORT", 55432), "Postgres port (env CP_DEV_PG_PORT)")
	simexPort := fs.Int("simex-port", envInt("CP_DEV_SIMEX_PORT", 8090), "simulated exchange port (env CP_DEV_SIMEX_PORT)")
	binDir := fs.String("bin", "bin", "directory holding the service binaries (make build)")
	var knobs devFlags
	knobs.register(fs)
	prom := addDevPrometheusFlags(fs) // dev_prometheus.go
	if err := fs.Parse(args); err != nil {
		return 2
	}
	knobs.ownExchange(*simexPort)
	if err := knobs.validate(); err != nil {
		fmt.Fprintf(os.Stderr, "cpctl dev: %v\n", err)
		return 2
	}
	log := slog.New(service.NewLogHandler(os.Stderr, service.LogFormatAuto, "info")).With("component", "cpctl dev")
	stack := &devStack{log: log, dataDir: *dataDir, binDir: *binDir, flags: knobs, prom: prom}
	if err := stack.up(ctx, *natsPort, *pgPort, *simexPort); err != nil {
		log.Error("dev stack failed to start", "err", err)
		stack.down()
		return 1
	}
	<-ctx.Done()
	log.Info("stopping the dev stack")
	stack.down()
	log.Info("dev stack stopped")
	return 0
}

type devStack struct {
	log     *slog.Logger
	dataDir string
	binDir  string
	flags   devFlags
	prom    *devPrometheusConfig // nil: no Prometheus

	nats     *server.Server
	pg       *pgcluster.Cluster
	mu       sync.Mutex
	children []*devChild
}

func (s *devStack) up(ctx context.Context, natsPort, pgPort, simexPort int) error {
	abs, err := filepath.Abs(s.dataDir)
	if err != nil {
		return err
	}
	s.dataDir = abs
	if err := os.MkdirAll(filepath.Join(abs, "logs"), 0o755); err != nil {
		return err
	}

	// NATS with JetStream, storage kept in .data/nats, an identity per service (dev_auth.go).
	auth, natsOpts, err := newDevNATS(abs, natsPort)
	if err != nil {
		return err
	}
	s.nats, err = server.NewServer(natsOpts)
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	go s.nats.Start()
	if !s.nats.ReadyForConnections(15 * time.Second) {
		return fmt.Errorf("nats: not ready on port %d (is it in use? set CP_DEV_NATS_PORT)", natsPort)
	}
	natsURL := s.nats.ClientURL()
	if err := declareTopology(ctx, natsURL, auth); err != nil {
		return err
	}

	// Postgres, initialised on first run and reused after.
	s.pg, err = pgcluster.New(pgcluster.Config{Dir: filepath.Join(abs, "pg"), Port: pgPort, Durable: true,
		// A replication slot nobody reads (the orchestrator stopped) must not fill the disk:
		// past this much retained WAL Postgres invalidates it (docs/orchestrator.md).
		Settings: map[string]string{"max_slot_wal_keep_size": "2GB"}, HBA: devHBA})
	if err != nil {
		return err
	}
	fresh := !s.pg.Initialized()
	if err := s.pg.Start(ctx); err != nil {
		return err
	}
	if err := ensureDatabase(ctx, s.pg.DSN("postgres"), devDatabase); err != nil {
		return err
	}
	dbURL := s.pg.DSN(devDatabase)
	applied, err := db.MigrateUp(ctx, dbURL)
	if err != nil {
		return err
	}
	s.log.Info("postgres ready", "fresh", fresh, "migrations_applied", len(applied))
	pool, err := db.Open(ctx, dbURL)
	if err != nil {
		return err
	}
	seeded, err := db.SeedDev(ctx, pool)
	pool.Close()
	if err != nil {
		return fmt.Errorf("dev seed: %w", err)
	}
	s.log.Info("dev seed loaded", "result", fmt.Sprintf("%+v", seeded))
	if err := s.applyUniverse(ctx, dbURL); err != nil {
		return err
	}
	// Every service as its own Postgres role (dev_pgroles.go); dev.env keeps the owner's URL.
	roleEnv, err := provisionDevRoles(ctx, dbURL, filepath.Join(abs, "secrets"))
	if err != nil {
		return err
	}

	self, err := os.Executable()
	if err != nil {
		return err
	}
	simexURL, err := s.startExchange(ctx, self, simexPort)
	if err != nil {
		return err
	}
	env := []string{
		"CP_ENV=dev",
		"DATABASE_URL=" + dbURL,
		"NATS_URL=" + natsURL,
		"BINANCE_BASE_URL=" + simexURL,
	}
	if err := s.writeEnvFile(append(append(env, s.flags.credentials()...), auth.operatorEnv()...)); err != nil {
		return err
	}

	var running []string
	for _, svc := range devServices {
		bin := filepath.Join(s.binDir, svc.name)
		if _, err := os.Stat(bin); err != nil {
			s.log.Warn("service binary missing, not started (run make build)", "service", svc.name, "path", bin)
			continue
		}
		senv := append(append(append([]string{}, env...), auth.serviceEnv(svc.name)...),
			fmt.Sprintf("HTTP_ADDR=127.0.0.1:%d", svc.http),
			"RUN_JOBS=1", "MIGRATE_ON_START=0")
		senv = append(senv, s.flags.credentials()...)
		senv = append(senv, roleEnv[svc.name]...)
		if err := s.start(ctx, svc.name, bin, nil, senv); err != nil {
			return err
		}
		running = append(running, fmt.Sprintf("%s http://127.0.0.1:%d/metrics", svc.name, svc.http))
	}

	promLine := s.prometheusLine(ctx)
	fmt.Fprintf(os.Stderr, `
CryptoPill dev stack is up (Ctrl-C stops everything)
  NATS (JetStream)   %s   monitoring http://127.0.0.1:%d
  Postgres           %s   data %s
  simulated exchange %s   key %s
  services           %s
  NATS identities    %s   (one nkey per service; the operator's in dev.env)
  prometheus         %s
  logs               %s
  environment        %s   (set -a; . %s; set +a)
`, natsURL, natsPort+4000, db.SafeURL(dbURL), s.pg.DataDir(), simexURL, devAPIKey,
		strings.Join(running, "\n                     "), auth.keys.Dir, promLine, filepath.Join(abs, "logs"),
		filepath.Join(abs, "dev.env"), filepath.Join(s.dataDir, "dev.env"))
	return s.startDevConsole(ctx, self, env)
}

func (s *devStack) writeEnvFile(env []string) error {
	body := "# written by `cpctl dev`; source it to point cpctl and the nats CLI at the dev stack\n" +
		strings.Join(env, "\n") + "\n"
	return os.WriteFile(filepath.Join(s.dataDir, "dev.env"), []byte(body), 0o644)
}

// start runs a child process with its output teed to .data/logs/<name>.log and to stderr, and
// restarts it (with a pause) if it dies while the stack is up.
func (s *devStack) start(ctx context.Context, name, bin string, args, extraEnv []string) error {
	logf, err := os.OpenFile(filepath.Join(s.dataDir, "logs", name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	c := &devChild{name: name, bin: bin, args: args, env: append(os.Environ(), extraEnv...), out: io.MultiWriter(devConsole(), logf), logf: logf}
	s.mu.Lock()
	s.children = append(s.children, c)
	s.mu.Unlock()
	return c.run(ctx, s.log)
}

func (s *devStack) down() {
	s.mu.Lock()
	children := s.children
	s.mu.Unlock()
	var wg sync.WaitGroup
	// Services first (they drain into NATS and Postgres), then the simulated exchange.
	for i := len(children) - 1; i >= 0; i-- {
		wg.Add(1)
		go func(c *devChild) { defer wg.Done(); c.stop(30 * time.Second) }(children[i])
	}
	wg.Wait()
	if s.nats != nil {
		s.nats.Shutdown()
		s.nats.WaitForShutdown()
	}
	if s.pg != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.pg.Stop(ctx); err != nil {
			s.log.Error("postgres stop", "err", err)
		}
	}
}

type devChild struct {
	name, bin string
	args, env []string
	out       io.Writer
	logf      *os.File

	mu       sync.Mutex
	cmd      *exec.Cmd
	stopping bool
	exited   chan struct{}
}

func (c *devChild) run(ctx context.Context, log *slog.Logger) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		return nil
	}
	cmd := exec.Command(c.bin, c.args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = c.env, c.out, c.out
	// Own process group: Ctrl-C reaches cpctl, which stops children in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", c.name, err)
	}
	log.Info("started", "process", c.name, "pid", cmd.Process.Pid)
	c.cmd, c.exited = cmd, make(chan struct{})
	exited := c.exited
	go func() {
		err := cmd.Wait()
		close(exited)
		c.mu.Lock()
		stopping := c.stopping
		c.mu.Unlock()
		if stopping || ctx.Err() != nil {
			return
		}
		log.Warn("process exited; restarting in 3s", "process", c.name, "err", err)
		select {
		case <-time.After(3 * time.Second):
			if err := c.run(ctx, log); err != nil {
				log.Error("restart failed", "process", c.name, "err", err)
			}
		case <-ctx.Done():
		}
	}()
	return nil
}

func (c *devChild) stop(grace time.Duration) {
	c.mu.Lock()
	c.stopping = true
	cmd, exited := c.cmd, c.exited
	c.mu.Unlock()
	defer c.logf.Close()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// declareTopology creates the declared streams and durable consumers that do not exist yet,
// with the dev defaults, so they exist (and can be inspected with the nats CLI) before the first
// service starts, and a service started without its streams' owner (RUN_JOBS unset) does not
// wait for them. Existing ones are left to their owners, which bring them in line at start.
func declareTopology(ctx context.Context, natsURL string, auth *devNATS) error {
	operator, err := auth.operatorOption()
	if err != nil {
		return err
	}
	nc, err := nats.Connect(natsURL, operator, nats.Name("cpctl dev"))
	if err != nil {
		return fmt.Errorf("connect nats %s: %w", natsURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if err := events.NewTopology(events.TopologyConfig{}).CreateMissing(ctx, js); err != nil {
		return fmt.Errorf("declare streams: %w", err)
	}
	return nil
}

func ensureDatabase(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect %s: %w", db.SafeURL(adminURL), err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return err
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
