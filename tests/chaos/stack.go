package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	toxiclient "github.com/Shopify/toxiproxy/v2/client"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"cryptopill.dev/jobs/libs/db"
	"cryptopill.dev/jobs/libs/pgcluster"
)

// services are the daemons of the platform, in start order (the orchestrator first: it owns the
// slot and the publication the audit slot decodes through).
var services = []string{"orchestrator", "seeder", "straux", "cinimport"}

// Symbols: the simulated exchange lists them all; the dev seed enables the first five, and the
// workload adds and toggles the others.
const (
	simexSymbols = "BTCUSDT,ETHUSDT,BNBUSDT,SOLUSDT,ADAUSDT,XRPUSDT,ETHBTC,BNBBTC"
	database     = "cryptopill"
	tradeScope   = "chaos"      // the OPEN session's scope: every trade here must become one move
	sideScope    = "chaos-side" // sessions without trades, for session insert/update/close traffic
)

// coreSymbols never leave the universe: every straux tick must sample each of them once.
var coreSymbols = []string{"BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "ADAUSDT"}

// runEnv is what every scenario of one run shares: the binaries, a migrated Postgres template
// cluster copied for each scenario, and the in-process toxiproxy server.
type runEnv struct {
	log     *slog.Logger
	binDir  string
	dir     string // run directory: template/, <scenario>/
	natsBin string
	tox     *toxiclient.Client
	keep    bool
	ports   *portAllocator
}

// portAllocator hands out loopback ports below the kernel's ephemeral range (32768–60999 by
// default), each once per run: a port picked from the ephemeral range and released until the
// process binds it can meanwhile be taken by any outgoing connection on the machine (seen as
// "bind: address already in use" in a service's crash loop).
type portAllocator struct {
	mu   sync.Mutex
	next int
}

const portLow, portHigh = 20000, 32000

func newPortAllocator(seed int) *portAllocator {
	return &portAllocator{next: portLow + (seed*37)%(portHigh-portLow)}
}

func (p *portAllocator) get() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for range portHigh - portLow {
		port := p.next
		if p.next++; p.next >= portHigh {
			p.next = portLow
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			l.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free loopback port in %d–%d", portLow, portHigh)
}

func newRunEnv(ctx context.Context, log *slog.Logger, binDir, dir string, keep bool) (*runEnv, error) {
	r := &runEnv{log: log, binDir: binDir, dir: dir, natsBin: filepath.Join(binDir, "nats-server"), keep: keep,
		ports: newPortAllocator(os.Getpid())}
	for _, b := range append([]string{"cpctl", "nats-server"}, services...) {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			return nil, fmt.Errorf("binary %s missing in %s (run make build and build nats-server, or make chaos): %w", b, binDir, err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := r.buildTemplate(ctx); err != nil {
		return nil, err
	}
	// toxiproxy as a library: its API server in this process on loopback, driven by its client.
	port, err := r.ports.get()
	if err != nil {
		return nil, err
	}
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	go srv.Listen("127.0.0.1", fmt.Sprint(port))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := pgcluster.WaitReady(addr, 10*time.Second); err != nil {
		return nil, fmt.Errorf("toxiproxy api: %w", err)
	}
	r.tox = toxiclient.NewClient(addr)
	return r, nil
}

// buildTemplate initialises, migrates and seeds one cluster; each scenario starts from a copy.
func (r *runEnv) buildTemplate(ctx context.Context) error {
	port, err := r.ports.get()
	if err != nil {
		return err
	}
	c, err := pgcluster.New(pgcluster.Config{Dir: filepath.Join(r.dir, "template"), Port: port, Settings: pgSettings()})
	if err != nil {
		return err
	}
	if err := c.Start(ctx); err != nil {
		return err
	}
	defer c.Stop(context.WithoutCancel(ctx))
	if err := ensureDatabase(ctx, c.DSN("postgres"), database); err != nil {
		return err
	}
	url := c.DSN(database)
	if _, err := db.MigrateUp(ctx, url); err != nil {
		return fmt.Errorf("migrate template: %w", err)
	}
	pool, err := db.Open(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := db.SeedDev(ctx, pool); err != nil {
		return fmt.Errorf("seed template: %w", err)
	}
	// The open session whose scope receives every trade, started well before any trade.
	_, err = pool.Exec(ctx, `INSERT INTO cin_aux.rt_session (account_scope, label, started_at)
		VALUES ($1, 'chaos main', now() - interval '1 day')`, tradeScope)
	return err
}

func pgSettings() map[string]string {
	// Acknowledged commits are on disk (the audit's ground truth is what Postgres recovers).
	return map[string]string{"synchronous_commit": "on", "wal_sender_timeout": "20s"}
}

// stackOpts shape one scenario's stack.
type stackOpts struct {
	// natsNodes is 1 (single node, file store) or 3 (an R3 cluster, streams with three replicas).
	natsNodes int
	// cdcDupWindow, when set, is the CP_CDC duplicate window the scenario needs.
	cdcDupWindow time.Duration
}

// Stack is one scenario's platform: Postgres, NATS, the simulated exchange and the four services,
// each a real process that can be killed, plus toxiproxy links between services and their
// dependencies.
type Stack struct {
	run  *runEnv
	log  *slog.Logger
	name string
	dir  string
	opts stackOpts

	pg        *pgcluster.Cluster
	pool      *pgxpool.Pool // harness's own pool, direct (not through a proxy)
	natsNodes []*proc
	natsPorts []int
	natsURL   string // every node, direct
	simex     *proc
	simexURL  string
	svc       map[string]*proc
	httpAddr  map[string]string
	proxies   map[string]*toxiclient.Proxy // "<service>-pg", "<service>-nats"

	nc *nats.Conn
	js jetstream.JetStream

	notes []string
	mu    sync.Mutex
}

func newStack(r *runEnv, name string, opts stackOpts) *Stack {
	if opts.natsNodes == 0 {
		opts.natsNodes = 1
	}
	return &Stack{run: r, log: r.log.With("scenario", name), name: name, dir: filepath.Join(r.dir, name), opts: opts,
		svc: map[string]*proc{}, httpAddr: map[string]string{}, proxies: map[string]*toxiclient.Proxy{}}
}

func (s *Stack) note(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notes = append(s.notes, fmt.Sprintf(format, args...))
}

// up starts everything and waits until the relay streams and every service is ready.
func (s *Stack) up(ctx context.Context) error {
	logs := filepath.Join(s.dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return err
	}
	// Postgres from the template.
	if out, err := exec.CommandContext(ctx, "cp", "-a", filepath.Join(s.run.dir, "template"), filepath.Join(s.dir, "pg")).CombinedOutput(); err != nil {
		return fmt.Errorf("copy template cluster: %w: %s", err, out)
	}
	_ = os.Remove(filepath.Join(s.dir, "pg", "data", "postmaster.pid"))
	pgPort, err := s.run.ports.get()
	if err != nil {
		return err
	}
	if s.pg, err = pgcluster.New(pgcluster.Config{Dir: filepath.Join(s.dir, "pg"), Port: pgPort, Settings: pgSettings()}); err != nil {
		return err
	}
	if err := s.pg.Start(ctx); err != nil {
		return err
	}
	if s.pool, err = db.OpenPool(ctx, s.pg.DSN(database), 8); err != nil {
		return err
	}

	if err := s.startNATS(ctx, logs); err != nil {
		return err
	}

	simexPort, err := s.run.ports.get()
	if err != nil {
		return err
	}
	s.simexURL = fmt.Sprintf("http://127.0.0.1:%d", simexPort)
	s.simex = newProc(s.log, logs, "simex", filepath.Join(s.run.binDir, "cpctl"),
		[]string{"simex", "--listen", fmt.Sprintf("127.0.0.1:%d", simexPort), "--symbols", simexSymbols, "--weight-limit", "0"}, nil)
	if err := s.simex.start(); err != nil {
		return err
	}
	if err := pgcluster.WaitReady(fmt.Sprintf("127.0.0.1:%d", simexPort), 15*time.Second); err != nil {
		return fmt.Errorf("simex: %w", err)
	}

	for _, name := range services {
		if err := s.addService(logs, name); err != nil {
			return err
		}
	}
	// The orchestrator first: it creates the publication and the relay's slot; the audit slot
	// must exist before the first change the workload commits.
	if err := s.svc["orchestrator"].start(); err != nil {
		return err
	}
	if err := s.waitRelayStreaming(ctx, 60*time.Second); err != nil {
		return err
	}
	if err := createAuditSlot(ctx, s.pool); err != nil {
		return err
	}
	for _, name := range services[1:] {
		if err := s.svc[name].start(); err != nil {
			return err
		}
	}
	for _, name := range services {
		if err := s.waitReady(ctx, name, 60*time.Second); err != nil {
			return err
		}
	}
	if s.nc, err = nats.Connect(s.natsURL, nats.Name("chaos audit"), nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond)); err != nil {
		return fmt.Errorf("connect nats: %w", err)
	}
	if s.js, err = jetstream.New(s.nc); err != nil {
		return err
	}
	return s.ensureDupWindow(ctx)
}

// startNATS writes one config per node and starts the node(s): file store in the scenario
// directory, and for three nodes a cluster with routes to each other.
func (s *Stack) startNATS(ctx context.Context, logs string) error {
	n := s.opts.natsNodes
	clusterPorts := make([]int, n)
	s.natsPorts = make([]int, n)
	for i := range n {
		var err error
		if s.natsPorts[i], err = s.run.ports.get(); err != nil {
			return err
		}
		if clusterPorts[i], err = s.run.ports.get(); err != nil {
			return err
		}
	}
	var urls []string
	for i := range n {
		name := fmt.Sprintf("nats%d", i+1)
		conf := fmt.Sprintf("server_name: %q\nlisten: \"127.0.0.1:%d\"\njetstream { store_dir: %q }\n",
			name, s.natsPorts[i], filepath.Join(s.dir, name))
		if n > 1 {
			var routes []string
			for j := range n {
				if j != i {
					routes = append(routes, fmt.Sprintf("\"nats://127.0.0.1:%d\"", clusterPorts[j]))
				}
			}
			conf += fmt.Sprintf("cluster { name: chaos, listen: \"127.0.0.1:%d\", routes: [%s] }\n", clusterPorts[i], strings.Join(routes, ", "))
		}
		path := filepath.Join(s.dir, name+".conf")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			return err
		}
		p := newProc(s.log, logs, name, s.run.natsBin, []string{"-c", path}, nil)
		if err := p.start(); err != nil {
			return err
		}
		s.natsNodes = append(s.natsNodes, p)
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", s.natsPorts[i]))
	}
	s.natsURL = strings.Join(urls, ",")
	return s.waitJetStream(ctx, 60*time.Second)
}

// waitJetStream waits until JetStream answers (for a cluster: a meta leader is elected).
func (s *Stack) waitJetStream(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		nc, err := nats.Connect(s.natsURL, nats.Timeout(time.Second))
		if err == nil {
			js, _ := jetstream.New(nc)
			actx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err = js.AccountInfo(actx)
			cancel()
			nc.Close()
			if err == nil {
				return nil
			}
		}
		last = err
		if !sleepCtx(ctx, 200*time.Millisecond) {
			return ctx.Err()
		}
	}
	return fmt.Errorf("nats %s: JetStream not ready after %s: %w", s.natsURL, timeout, last)
}

// addService prepares a service process. Single-node stacks route each service's Postgres and
// NATS connections through toxiproxy links of its own, so a scenario can cut or slow one
// service's link; the R3 stack connects services to every node directly.
func (s *Stack) addService(logs, name string) error {
	port, err := s.run.ports.get()
	if err != nil {
		return err
	}
	s.httpAddr[name] = fmt.Sprintf("127.0.0.1:%d", port)
	pgUp := fmt.Sprintf("127.0.0.1:%d", s.pg.Port)
	pgProxy, err := s.addProxy(name+"-pg", pgUp)
	if err != nil {
		return err
	}
	dbURL := fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable&connect_timeout=5", pgProxy, database)
	natsURL := s.natsURL
	if s.opts.natsNodes == 1 {
		natsProxy, err := s.addProxy(name+"-nats", fmt.Sprintf("127.0.0.1:%d", s.natsPorts[0]))
		if err != nil {
			return err
		}
		natsURL = "nats://" + natsProxy
	}
	env := []string{
		"CP_ENV=dev", "RUN_JOBS=1", "MIGRATE_ON_START=0", "LOG_LEVEL=info",
		"DATABASE_URL=" + dbURL, "NATS_URL=" + natsURL, "HTTP_ADDR=" + s.httpAddr[name],
		fmt.Sprintf("NATS_REPLICAS=%d", s.opts.natsNodes),
		"BINANCE_BASE_URL=" + s.simexURL, "SHUTDOWN_GRACE=5s",
		"STR_AUX_RUNNER_INTERVAL_MS=5000", "CIN_IMPORT_INTERVAL_MS=60000",
	}
	if s.opts.cdcDupWindow > 0 {
		env = append(env, "CDC_DUPLICATE_WINDOW="+s.opts.cdcDupWindow.String())
	}
	s.svc[name] = newProc(s.log, logs, name, filepath.Join(s.run.binDir, name), nil, env)
	return nil
}

func (s *Stack) addProxy(name, upstream string) (string, error) {
	port, err := s.run.ports.get()
	if err != nil {
		return "", err
	}
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	p, err := s.run.tox.CreateProxy(s.name+"-"+name, listen, upstream)
	if err != nil {
		return "", fmt.Errorf("toxiproxy create %s: %w", name, err)
	}
	s.proxies[name] = p
	return listen, nil
}

// proxy is the toxiproxy link of a service to "pg" or "nats".
func (s *Stack) proxy(service, to string) (*toxiclient.Proxy, error) {
	p, ok := s.proxies[service+"-"+to]
	if !ok {
		return nil, fmt.Errorf("no toxiproxy link %s-%s in this stack", service, to)
	}
	return p, nil
}

// waitReady polls a service's /readyz.
func (s *Stack) waitReady(ctx context.Context, name string, timeout time.Duration) error {
	url := "http://" + s.httpAddr[name] + "/readyz"
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
	return fmt.Errorf("%s not ready at %s after %s (log: %s)", name, url, timeout, filepath.Join(s.dir, "logs", name+".log"))
}

// waitRelayStreaming waits until the relay's slot is active.
func (s *Stack) waitRelayStreaming(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var active bool
		err := s.pool.QueryRow(ctx, `SELECT active FROM pg_replication_slots WHERE slot_name = 'cp_relay'`).Scan(&active)
		if err == nil && active {
			return nil
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
	return fmt.Errorf("relay slot cp_relay not active after %s (log: %s)", timeout, filepath.Join(s.dir, "logs", "orchestrator.log"))
}

// ensureDupWindow gives CP_CDC the scenario's duplicate window. The orchestrator is told through
// CDC_DUPLICATE_WINDOW; an orchestrator that does not know that setting yet leaves the default,
// and then the harness sets the window on the stream itself (every service start re-applies the
// topology and would reset it, so the long-outage scenario restarts no service).
func (s *Stack) ensureDupWindow(ctx context.Context) error {
	if s.opts.cdcDupWindow == 0 {
		return nil
	}
	var st jetstream.Stream
	var err error
	deadline := time.Now().Add(30 * time.Second)
	for {
		if st, err = s.js.Stream(ctx, "CP_CDC"); err == nil || time.Now().After(deadline) {
			break
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("stream CP_CDC: %w", err)
	}
	cfg := st.CachedInfo().Config
	if cfg.Duplicates == s.opts.cdcDupWindow {
		s.note("CP_CDC duplicate window %s from CDC_DUPLICATE_WINDOW", cfg.Duplicates)
		return nil
	}
	old := cfg.Duplicates
	cfg.Duplicates = s.opts.cdcDupWindow
	if _, err := s.js.UpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("shorten CP_CDC duplicate window: %w", err)
	}
	s.note("CP_CDC duplicate window %s set by the harness (orchestrator ignored CDC_DUPLICATE_WINDOW, had %s)", s.opts.cdcDupWindow, old)
	return nil
}

// killService kill -9s a service and keeps it down until startService.
func (s *Stack) killService(name string) { s.svc[name].kill() }

func (s *Stack) startService(name string) error { return s.svc[name].start() }

// crashPostgres stops Postgres the hard way (pg_ctl stop -m immediate): no shutdown checkpoint,
// crash recovery at the next start.
func (s *Stack) crashPostgres(ctx context.Context) error { return s.pg.Crash(ctx) }

func (s *Stack) startPostgres(ctx context.Context) error { return s.pg.Start(ctx) }

// killNATS kill -9s node i (0-based) and keeps it down.
func (s *Stack) killNATS(i int) { s.natsNodes[i].kill() }

func (s *Stack) startNATS1(i int) error { return s.natsNodes[i].start() }

// unexpectedExits sums the exits no fault caused, per process.
func (s *Stack) unexpectedExits() map[string]int {
	out := map[string]int{}
	for name, p := range s.svc {
		if n := p.unexpectedExits(); n > 0 {
			out[name] = n
		}
	}
	for _, p := range s.natsNodes {
		if n := p.unexpectedExits(); n > 0 {
			out[p.name] = n
		}
	}
	return out
}

// down stops everything; the scenario directory is removed unless the run keeps it.
func (s *Stack) down(keep bool) {
	var wg sync.WaitGroup
	for _, p := range s.svc {
		wg.Add(1)
		go func() { defer wg.Done(); p.close(10 * time.Second) }()
	}
	wg.Wait()
	if s.nc != nil {
		s.nc.Close()
	}
	if s.simex != nil {
		s.simex.close(5 * time.Second)
	}
	for _, p := range s.natsNodes {
		p.close(10 * time.Second)
	}
	for _, p := range s.proxies {
		if err := p.Delete(); err != nil {
			s.log.Warn("toxiproxy delete", "proxy", p.Name, "err", err)
		}
	}
	if s.pool != nil {
		s.pool.Close()
	}
	if s.pg != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := s.pg.Stop(ctx); err != nil {
			s.log.Warn("postgres stop; crashing it", "err", err)
			_ = s.pg.Crash(ctx)
		}
		cancel()
	}
	if !keep {
		if err := os.RemoveAll(s.dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("remove scenario dir", "dir", s.dir, "err", err)
		}
	}
}
