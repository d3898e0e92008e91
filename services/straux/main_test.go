package main

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/jobs"
	"cryptopill.dev/jobs/libs/natsauth"
	"cryptopill.dev/jobs/libs/natsauth/natsauthtest"
	"cryptopill.dev/jobs/libs/service"
	"cryptopill.dev/jobs/libs/simex"
	"cryptopill.dev/jobs/libs/testkit/clocktest"
	"cryptopill.dev/jobs/libs/testkit/metrictest"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestServiceEndToEnd runs straux as main does, against the simulated exchange, a real Postgres
// and a real JetStream: a tick leaves samples, tickers and vectors (history backfilled from
// klines), a market job is worked, and the service stops cleanly.
func TestServiceEndToEnd(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDB(t)
	ns := natsauthtest.NewServer(t) // the shipped permissions: straux runs as its own identity
	// One clock for the exchange and the service, a second into a tick period: the period is
	// current (not late) and the date and hour are the same at every run.
	period := 40 * time.Second
	p := clocktest.Afternoon.Truncate(period)
	now := clocktest.Running(p.Add(time.Second))
	ex, err := simex.New(simex.Config{Symbols: []string{"BTCUSDT", "ETHUSDT", "BNBUSDT"}, Now: now})
	require.NoError(t, err)
	srv := httptest.NewServer(ex)
	t.Cleanup(srv.Close)
	ctx := context.Background()
	_, err = d.Pool.Exec(ctx, `INSERT INTO settings.coin_universe (symbol, base_asset, quote_asset)
		VALUES ('BTCUSDT', 'BTC', 'USDT'), ('ETHUSDT', 'ETH', 'USDT'), ('BNBUSDT', 'BNB', 'USDT')`)
	require.NoError(t, err)

	// As a deployment runs it: a login role in cp_straux (migration 00016), not the owner, and
	// straux's own NATS identity.
	env := map[string]string{"CP_ENV": "dev", "DATABASE_URL": d.RoleURL(t, "cp_straux"), "NATS_URL": ns.URL, "HTTP_ADDR": "127.0.0.1:0",
		"NATS_NKEY_SEED_FILE": ns.Keys.SeedFile(events.ServiceStraux),
		"MIGRATE_ON_START":    "0", "BINANCE_BASE_URL": srv.URL, "SHUTDOWN_GRACE": "20s"}
	cfg, err := LoadConfig(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	require.NoError(t, err)
	cfg.Now = now

	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	procs := make(chan *service.Process, 1)
	go func() {
		done <- service.Start(sctx, service.Options{Name: "straux", Common: cfg.Common, Logger: slog.New(slog.DiscardHandler)},
			func(ctx context.Context, p *service.Process) error { procs <- p; return run(ctx, p, cfg) })
	}()

	// straux waits for the orchestrator's streams (CP_TICKS, CP_UNIVERSE), then declares its own
	// durable and CP_JOBS.
	// The orchestrator's part, and its ticks, as the orchestrator.
	nc := ns.Connect(t, events.ServiceOrchestrator)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	require.NoError(t, events.NewTopology(events.TopologyConfig{}).ApplyAs(ctx, js, events.ServiceOrchestrator))
	// The durable delivers only ticks stored after it exists; the operator sees it.
	opJS, err := jetstream.New(ns.Connect(t, natsauth.Operator))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := opJS.Consumer(ctx, events.StreamTicks, events.ConsumerStrauxTicks)
		return err == nil
	}, 30*time.Second, 20*time.Millisecond, "straux declares its durable once the orchestrator's streams exist")
	pub, err := events.NewPublisher(nc, events.PublisherConfig{Source: "test"})
	require.NoError(t, err)
	defer pub.Close(ctx)
	require.Eventually(t, func() bool {
		_, err := pub.Publish(ctx, events.Event{Subject: events.TickSubject(events.ModuleStraux), ID: events.TickID(events.ModuleStraux, p),
			Payload: &eventsv1.Tick{Module: events.ModuleStraux, PeriodStart: timestamppb.New(p), Period: durationpb.New(period)}})
		return err == nil
	}, 30*time.Second, 100*time.Millisecond)

	count := func(sql string, args ...any) int {
		var n int
		_ = d.Pool.QueryRow(ctx, sql, args...).Scan(&n)
		return n
	}
	require.Eventually(t, func() bool {
		return count(`SELECT count(*) FROM str_aux.tick_periods WHERE period_start = $1 AND status = 'done'`, p) == 1
	}, 60*time.Second, 100*time.Millisecond)
	require.Equal(t, 3, count(`SELECT count(*) FROM str_aux.samples WHERE period_start = $1 AND mid IS NOT NULL`, p))
	require.Equal(t, 3, count(`SELECT count(*) FROM market.tickers WHERE ts = $1`, p))
	require.Equal(t, 9, count(`SELECT count(*) FROM str_aux.window_vectors WHERE period_start = $1 AND reason IS NULL`, p),
		"three windows of three symbols, on backfilled history")

	// Scheduled on the test clock, so the grid is computed at the instant the tick sampled (not
	// at Postgres' now()); due at once, since the test clock is in the database clock's past.
	_, _, err = jobs.Enqueue(ctx, d.Pool, jobs.NewJob{Kind: jobs.KindComputeMatrices, ScheduledFor: now()})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return count(`SELECT count(*) FROM ingest.jobs WHERE kind = 'compute_matrices' AND status = 'succeeded'`) == 1
	}, 30*time.Second, 100*time.Millisecond)
	require.Positive(t, count(`SELECT count(*) FROM str_aux.matrices WHERE matrix_type = 'benchmark'`))
	// The other kinds' writes (MEA grids, klines and their cursor) pass as straux's role too.
	_, err = jobs.EnqueueMany(ctx, d.Pool, []jobs.NewJob{{Kind: jobs.KindComputeMEA, ScheduledFor: now()},
		{Kind: jobs.KindFetchKlines, Key: jobs.Key("BTCUSDT", "1h"), ScheduledFor: now()}})
	require.NoError(t, err)
	if !assert.Eventually(t, func() bool {
		return count(`SELECT count(*) FROM ingest.jobs WHERE kind IN ('compute_mea', 'fetch_klines') AND status = 'succeeded'`) == 2
	}, 30*time.Second, 100*time.Millisecond) {
		var e string
		_ = d.Pool.QueryRow(ctx, `SELECT string_agg(kind || ': ' || coalesce(error, status), '; ') FROM ingest.jobs WHERE kind IN ('compute_mea', 'fetch_klines')`).Scan(&e)
		t.Fatalf("jobs: %s", e)
	}
	require.Equal(t, 1, count(`SELECT count(*) FROM str_aux.mea_grids`))
	require.Equal(t, 1, count(`SELECT count(*) FROM market.kline_cursors WHERE symbol = 'BTCUSDT' AND interval = '1h'`))

	// The run's outcome is on the bus for operators.
	jobStream, err := opJS.Stream(ctx, events.StreamJobs)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		m, err := jobStream.GetLastMsgForSubject(ctx, events.JobSubject("compute_matrices", eventsv1.JobStatus_JOB_STATUS_SUCCEEDED))
		if err != nil {
			return false
		}
		_, ev, err := events.Decode(ctx, &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
		require.NoError(t, err)
		jl := ev.Payload.(*eventsv1.JobLifecycle)
		return jl.Kind == "compute_matrices" && jl.Attempts == 1 && jl.Status == eventsv1.JobStatus_JOB_STATUS_SUCCEEDED
	}, 10*time.Second, 100*time.Millisecond)

	// Its /metrics, as Prometheus scrapes it after a tick and a job: lint-clean, every listed
	// series there.
	metrictest.CheckExposition(t, metrictest.Scrape(t, (<-procs).HTTPAddr), "../../deploy/metrics/straux.txt")

	stop()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(60 * time.Second):
		t.Fatal("straux did not stop")
	}
	require.Empty(t, ns.Violations(), "straux needed no act its permissions refuse")
}
