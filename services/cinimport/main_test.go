package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/config"
	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/events/eventstest"
	"cryptopill.dev/jobs/libs/exchange"
	"cryptopill.dev/jobs/libs/service"
	"cryptopill.dev/jobs/libs/simex"
	"cryptopill.dev/jobs/libs/testkit/clocktest"
	"cryptopill.dev/jobs/libs/testkit/metrictest"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
	"cryptopill.dev/jobs/libs/testkit/proctest"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type stack struct {
	ctx  context.Context
	db   *pgtest.DB
	bus  *eventstest.Bus
	orch *proctest.Process
	proc chan *service.Process // cinimport's, once it runs
}

// setup starts the platform around cinimport: Postgres, JetStream with the shipped per-service
// permissions, the orchestrator (whose change relay publishes the row changes cinimport
// consumes), and cinimport itself, in process; each service under its own NATS identity and its
// own Postgres login role (migration 00016), the relay as cp_replication. orchEnv is extra
// orchestrator settings: a test running beside another must name its own CDC_SLOT (replication
// slots are per cluster, and the test cluster is shared).
func setup(t *testing.T, orchEnv ...string) *stack {
	t.Helper()
	s := &stack{ctx: context.Background(), db: pgtest.NewDB(t), bus: eventstest.NewSecuredBus(t), proc: make(chan *service.Process, 1)}
	s.orch = proctest.Orchestrator(t, s.db.URL, s.bus.Server.URL, append([]string{
		"DATABASE_URL=" + s.db.RoleURL(t, "cp_orchestrator"), "CDC_DATABASE_URL=" + s.db.RoleURL(t, pgtest.ReplicationRole),
		"NATS_NKEY_SEED_FILE=" + s.bus.Auth.Keys.SeedFile(events.ServiceOrchestrator)}, orchEnv...)...)

	// The trade stream runs against the simulated exchange, whose account never trades (its
	// trading begins after its fixed clock), so its metrics are on /metrics and the test's
	// sessions see only the test's trades.
	ex, err := simex.New(simex.Config{Symbols: []string{"SOLUSDT"}, APIKey: "k", APISecret: "s",
		Now: clocktest.Fixed(clocktest.Afternoon), TradesSince: clocktest.Afternoon.Add(24 * time.Hour)})
	require.NoError(t, err)
	exSrv := httptest.NewServer(ex)
	t.Cleanup(exSrv.Close)

	ctx, cancel := context.WithCancel(context.Background())
	cfg := Config{
		Common: config.Common{Env: config.EnvDev, DatabaseURL: s.db.RoleURL(t, "cp_cinimport"), NATSURL: s.bus.Server.URL,
			NATS:     config.NATSAuth{NkeySeedFile: s.bus.Auth.Keys.SeedFile(events.ServiceCinimport)},
			HTTPAddr: "127.0.0.1:0", ShutdownGrace: 20 * time.Second, LogLevel: "info"},
		PriceMaxAge: time.Hour, Debounce: 100 * time.Millisecond,
		BaseURL: exSrv.URL, APIKey: "k", APISecret: exchange.Secret("s"), TradeLookback: time.Hour,
	}
	done := make(chan error, 1)
	go func() {
		done <- service.Start(ctx, service.Options{Name: "cinimport", Common: cfg.Common, Logger: testLogger(t)},
			func(ctx context.Context, p *service.Process) error { s.proc <- p; return run(ctx, p, cfg) })
	}()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return s
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

func (s *stack) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	_, err := s.db.Pool.Exec(s.ctx, sql, args...)
	require.NoError(t, err)
}

func (s *stack) count(t *testing.T, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	require.NoError(t, s.db.Pool.QueryRow(s.ctx, sql, args...).Scan(&n))
	return n
}

func (s *stack) openSession(t *testing.T, scope string, started time.Time) int64 {
	t.Helper()
	var id int64
	require.NoError(t, s.db.Pool.QueryRow(s.ctx, `INSERT INTO cin_aux.rt_session (account_scope, started_at)
		VALUES ($1, $2) RETURNING session_id`, scope, started).Scan(&id))
	return id
}

// insertTrades stores n trades of scope in one transaction, ids from first.
func (s *stack) insertTrades(t *testing.T, scope string, first, n int, at time.Time) {
	t.Helper()
	s.exec(t, `INSERT INTO market.account_trades (symbol, trade_id, order_id, price, qty, quote_qty, commission,
		commission_asset, trade_time, is_buyer, is_maker, account_scope)
		SELECT 'BTCUSDT', g, g, 100, 1, 100, 0.1, 'USDT', $3::timestamptz + g * interval '1 ms', g % 2 = 0, false, $4
		  FROM generate_series($1::bigint, $1::bigint + $2::bigint - 1) g`, first, n, at, scope)
}

func (s *stack) moves(t *testing.T, session int64) int64 {
	return s.count(t, "SELECT count(*) FROM cin_aux.rt_move WHERE session_id = $1", session)
}

func movesImported(t *testing.T, s *stack, session int64) (runs int, moves int64) {
	for _, ev := range eventstest.Events(t, s.bus.JS, events.StreamImports, events.MovesImportedSubject(session)) {
		runs++
		moves += ev.Payload.(*eventsv1.MovesImported).GetMoves()
	}
	return runs, moves
}

func TestEndToEndChangesDriveImports(t *testing.T) {
	t.Parallel()
	s := setup(t)
	start := time.Now().Add(-time.Hour)

	// A session opens, trades arrive: the moves appear with no manual step.
	session := s.openSession(t, "default", start)
	s.insertTrades(t, "default", 1, 300, start.Add(time.Minute))
	require.True(t, proctest.Wait(s.ctx, 60*time.Second, func() bool { return s.moves(t, session) == 300 }),
		"moves of session %d: %d, want 300", session, s.moves(t, session))
	require.True(t, proctest.Wait(s.ctx, 10*time.Second, func() bool { _, m := movesImported(t, s, session); return m == 300 }))

	// A second burst, in several transactions: imported too, coalesced into few runs.
	for i := range 5 {
		s.insertTrades(t, "default", 1000+i*10, 10, start.Add(2*time.Minute))
	}
	require.True(t, proctest.Wait(s.ctx, 30*time.Second, func() bool { return s.moves(t, session) == 350 }))

	// A session opened after its trades is imported when it opens.
	late := s.openSession(t, "default", start)
	require.True(t, proctest.Wait(s.ctx, 30*time.Second, func() bool { return s.moves(t, late) == 350 }))

	// Redelivered and replayed changes add nothing: publish every relayed change again, with new
	// ids so that JetStream does not drop them as duplicates.
	changes := eventstest.Events(t, s.bus.JS, events.StreamCDC, "cp.cdc.>")
	require.NotEmpty(t, changes)
	runsBefore, _ := movesImported(t, s, session)
	// Published as the orchestrator: only its identity may publish row changes.
	pub, err := events.NewPublisher(s.bus.Auth.Connect(t, events.ServiceOrchestrator), events.PublisherConfig{Source: "test"})
	require.NoError(t, err)
	for _, ev := range changes {
		_, err := pub.Publish(s.ctx, events.Event{Subject: ev.Subject, ID: events.NewID(), Payload: ev.Payload})
		require.NoError(t, err)
	}
	require.True(t, proctest.Wait(s.ctx, 30*time.Second, func() bool { runs, _ := movesImported(t, s, session); return runs > runsBefore }),
		"the replayed changes were handled")
	time.Sleep(time.Second)
	require.Equal(t, int64(350), s.moves(t, session))
	require.Equal(t, int64(350), s.moves(t, late))
	_, total := movesImported(t, s, session)
	require.Equal(t, int64(350), total, "MovesImported events account for every move exactly once")

	// Closed sessions are left alone.
	s.exec(t, "UPDATE cin_aux.rt_session SET status = 'CLOSED', closed_at = now() WHERE session_id = $1", late)
	s.insertTrades(t, "default", 5000, 5, start.Add(3*time.Minute))
	require.True(t, proctest.Wait(s.ctx, 30*time.Second, func() bool { return s.moves(t, session) == 355 }))
	require.Equal(t, int64(350), s.moves(t, late))
	require.Empty(t, s.bus.Auth.Violations(), "cinimport and the orchestrator needed no act their permissions refuse")

	// Its /metrics, as Prometheus scrapes it after these imports: lint-clean, every listed
	// series there.
	metrictest.CheckExposition(t, metrictest.Scrape(t, (<-s.proc).HTTPAddr), "../../deploy/metrics/cinimport.txt")
}

func TestOnceExitCodes(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDB(t)
	ctx := context.Background()
	var session int64
	require.NoError(t, d.Pool.QueryRow(ctx, `INSERT INTO cin_aux.rt_session (started_at) VALUES (now() - interval '1 day') RETURNING session_id`).Scan(&session))
	_, err := d.Pool.Exec(ctx, `INSERT INTO market.account_trades (symbol, trade_id, order_id, price, qty, quote_qty, commission,
		commission_asset, trade_time, is_buyer, is_maker) SELECT 'ETHUSDT', g, g, 10, 1, 10, 0, 'USDT', now() - g * interval '1 min', true, false
		FROM generate_series(1, 20) g`)
	require.NoError(t, err)

	bin := filepath.Join(t.TempDir(), "cinimport")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, string(out))
	run := func(args []string, env ...string) (int, string) {
		cmd := exec.Command(bin, args...)
		// No NATS here: once imports anyway.
		cmd.Env = append(os.Environ(), append([]string{"CP_ENV=dev", "NATS_URL=nats://127.0.0.1:1", "LOG_LEVEL=info"}, env...)...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if err != nil {
			require.ErrorAs(t, err, &ee, string(out))
			return ee.ExitCode(), string(out)
		}
		return 0, string(out)
	}
	once := func(env ...string) (int, string) { return run([]string{"once"}, env...) }
	onceFull := func(env ...string) (int, string) { return run([]string{"once", "-full"}, env...) }
	roleURL := d.RoleURL(t, "cp_cinimport")
	code, output := once("DATABASE_URL=" + roleURL)
	require.Equal(t, 0, code, output)
	require.Contains(t, output, `"moves":20`)
	var moves int64
	require.NoError(t, d.Pool.QueryRow(ctx, "SELECT count(*) FROM cin_aux.rt_move WHERE session_id = $1", session).Scan(&moves))
	require.Equal(t, int64(20), moves)

	code, output = once("DATABASE_URL=" + roleURL)
	require.Equal(t, 0, code, output)
	require.Contains(t, output, `"moves":0`)
	// Each run is a row of ops.job_run, with the session that ran it.
	var runs int
	require.NoError(t, d.Pool.QueryRow(ctx, `SELECT count(*) FROM ops.job_run r JOIN ops.session_log s ON s.id = r.session_id
		WHERE r.kind = 'oneshot' AND r.name = 'cinimport once' AND r.status = 'succeeded' AND s.service = 'cinimport-once'`).Scan(&runs))
	require.Equal(t, 2, runs)
	// -full shows its progress (plain lines here: not a terminal) and is recorded under its name.
	code, output = onceFull("DATABASE_URL=" + roleURL)
	require.Equal(t, 0, code, output)
	require.Contains(t, output, "sessions imported")
	require.NoError(t, d.Pool.QueryRow(ctx, `SELECT count(*) FROM ops.job_run WHERE name = 'cinimport once -full' AND status = 'succeeded'`).Scan(&runs))
	require.Equal(t, 1, runs)

	// An unreachable database is an error: exit 1.
	code, output = once("DATABASE_URL=postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=2")
	require.Equal(t, 1, code, output)
	// A bad configuration: exit 2.
	code, output = once("DATABASE_URL="+d.URL, "CIN_PRICE_MAX_AGE=soon")
	require.Equal(t, 2, code, output)
	require.True(t, strings.Contains(output, "CIN_PRICE_MAX_AGE"), output)
	code, output = once("DATABASE_URL="+d.URL, "CIN_TRADE_SOURCE=poll")
	require.Equal(t, 2, code, output)
	require.True(t, strings.Contains(output, "CIN_TRADE_SOURCE"), output)
}

// The exchange credentials come from mounted secret files as well as from the variables; either
// way the secret never formats.
func TestConfigSecretsFromFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keyFile, secretFile := filepath.Join(dir, "key"), filepath.Join(dir, "secret")
	require.NoError(t, os.WriteFile(keyFile, []byte("k3y\n"), 0o600))
	require.NoError(t, os.WriteFile(secretFile, []byte("s3cret\n"), 0o600))
	vars := map[string]string{"DATABASE_URL": "postgres://x/y", "BINANCE_API_KEY_FILE": keyFile,
		"BINANCE_API_SECRET_FILE": secretFile}
	cfg, err := LoadConfig(func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	require.NoError(t, err)
	require.True(t, cfg.SyncEnabled())
	require.Equal(t, "k3y", cfg.APIKey)
	require.Equal(t, "s3cret", string(cfg.APISecret))
	require.NotContains(t, fmt.Sprintf("%v %+v", cfg, cfg), "s3cret")
}
