package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"cryptopill.dev/jobs/libs/config"
	"cryptopill.dev/jobs/libs/db"
	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/service"
	"cryptopill.dev/jobs/libs/testkit/clocktest"
	"cryptopill.dev/jobs/libs/testkit/natstest"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
)

var devStatusSymbols = []string{"ADAUSDT", "BNBUSDT", "BTCUSDT", "ETHUSDT", "SOLUSDT"}

// statusStack is a real Postgres and NATS with the four service frames running in process
// (each registered with the NATS services API and stamping its session, as in a deployment),
// the dev universe, and str-aux rows and ticks laid out against a fixed clock.
type statusStack struct {
	t     *testing.T
	db    *pgtest.DB
	ns    *natstest.Server
	js    jetstream.JetStream
	now   time.Time
	env   cmdEnv
	stops map[string]func()
}

func setupStatus(t *testing.T) *statusStack {
	t.Helper()
	t.Parallel()
	ctx := context.Background()
	s := &statusStack{t: t, db: pgtest.NewDB(t), ns: natstest.NewServer(t), now: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC), stops: map[string]func(){}}
	var err error
	s.js, err = jetstream.New(s.ns.Connect(t))
	require.NoError(t, err)
	_, err = db.SeedDev(ctx, s.db.Pool)
	require.NoError(t, err)

	for _, name := range statusServices {
		s.startService(name)
	}

	// Ticks as the orchestrator publishes them: the current periods.
	pub, err := events.NewPublisher(s.ns.Connect(t), events.PublisherConfig{Source: "orchestrator"})
	require.NoError(t, err)
	for m, period := range map[string]time.Duration{events.ModuleStraux: 40 * time.Second, events.ModuleCinimport: 15 * time.Minute} {
		start := s.now.Truncate(period)
		_, err := pub.Publish(ctx, events.Event{Subject: events.TickSubject(m), ID: events.TickID(m, start), Time: s.now,
			Payload: &eventsv1.Tick{Module: m, PeriodStart: timestamppb.New(start), Period: durationpb.New(period)}})
		require.NoError(t, err)
	}

	// Ten periods of good samples and vectors for every symbol and window, the newest one period old.
	s.exec(`INSERT INTO str_aux.tick_periods (period_start, period, status, universe_size, planned_symbols, planned_by)
		SELECT $1::timestamptz - i * interval '40 seconds', interval '40 seconds', 'done', 5, 5, 'test'
		  FROM generate_series(1, 10) i`, s.now)
	s.exec(`INSERT INTO str_aux.tick_claims (period_start, symbol, done_by, done_at, outcome)
		SELECT p.period_start, u.symbol, 'test', p.period_start, 'sampled'
		  FROM str_aux.tick_periods p CROSS JOIN settings.coin_universe u`)
	s.exec(`INSERT INTO str_aux.samples (symbol, period_start, mid, n_snapshots)
		SELECT symbol, period_start, 100, 8 FROM str_aux.tick_claims`)
	s.exec(`INSERT INTO str_aux.window_vectors (symbol, window_label, period_start, n_samples, v_inner, v_outer, v_tendency, v_swap)
		SELECT s.symbol, w.label, s.period_start, 45, 1, 2, 3, 4 FROM str_aux.samples s CROSS JOIN settings.windows w`)
	s.env = cmdEnv{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, lookupEnv: func(k string) (string, bool) {
		switch k {
		case "DATABASE_URL":
			return s.db.URL, true
		case "NATS_URL":
			return s.ns.URL, true
		case "CP_DEV_ENV":
			return "/nonexistent/dev.env", true
		}
		return "", false
	}}
	return s
}

func (s *statusStack) exec(sql string, args ...any) {
	s.t.Helper()
	_, err := s.db.Pool.Exec(context.Background(), sql, args...)
	require.NoError(s.t, err)
}

// startService runs one service frame until stopService: the real registration, session stamp
// and topology, with a body that waits.
func (s *statusStack) startService(name string) {
	t := s.t
	ctx, cancel := context.WithCancel(context.Background())
	ready, errc := make(chan struct{}), make(chan error, 1)
	go func() {
		errc <- service.Start(ctx, service.Options{
			Name: name,
			Common: config.Common{Env: config.EnvDev, DatabaseURL: s.db.URL, NATSURL: s.ns.URL, NATSReplicas: 1,
				ShutdownGrace: 5 * time.Second},
			NoHTTP: true,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		}, func(ctx context.Context, _ *service.Process) error {
			close(ready)
			<-ctx.Done()
			return nil
		})
	}()
	select {
	case <-ready:
	case err := <-errc:
		t.Fatalf("service %s stopped early: %v", name, err)
	case <-time.After(60 * time.Second):
		t.Fatalf("service %s did not start", name)
	}
	stopped := false
	s.stops[name] = func() {
		if !stopped {
			stopped = true
			cancel()
			require.NoError(t, <-errc)
		}
	}
	t.Cleanup(s.stops[name])
}

// status runs `cpctl status --json` at the fixed clock and returns its exit status and report.
func (s *statusStack) status(args ...string) (int, statusReport) {
	s.t.Helper()
	out := s.env.stdout.(*bytes.Buffer)
	out.Reset()
	opt := defaultStatusOptions()
	opt.Now = clocktest.Fixed(s.now)
	code := statusCommand(context.Background(), append([]string{"--json"}, args...), s.env, opt)
	var r statusReport
	require.NoError(s.t, json.Unmarshal(out.Bytes(), &r), "stderr: %s", s.env.stderr.(*bytes.Buffer).String())
	return code, r
}

func problemsContain(t *testing.T, r statusReport, want string) {
	t.Helper()
	for _, p := range r.Problems {
		if bytes.Contains([]byte(p), []byte(want)) {
			return
		}
	}
	t.Fatalf("no problem mentions %q; problems: %q", want, r.Problems)
}

func TestStatusHealthyThenUnhealthy(t *testing.T) {
	s := setupStatus(t)
	ctx := context.Background()

	began := time.Now()
	code, r := s.status()
	t.Logf("status gathered and printed in %s (discovery wait %s)", time.Since(began), defaultStatusOptions().DiscoveryWait)
	require.Empty(t, r.Problems)
	require.Equal(t, exitHealthy, code)
	require.True(t, r.Healthy)
	var symbols []string
	for _, f := range r.Freshness.Symbols {
		symbols = append(symbols, f.Symbol)
		require.False(t, f.Stale, f.Symbol)
		require.Equal(t, 40*time.Second, f.SampleAge, f.Symbol)
		require.Len(t, f.Vectors, 3, "30m, 1h, 4h")
	}
	require.Equal(t, devStatusSymbols, symbols)
	require.Equal(t, 120*time.Second, r.Freshness.Threshold, "3 rotations of one 40 s round")
	for _, svc := range r.Services {
		require.Equal(t, 1, svc.Live, svc.Name)
		require.True(t, svc.Replicas[0].Discovery, "seen by the NATS services API: %s", svc.Name)
		require.NotZero(t, svc.Replicas[0].SessionID, "joined with its session stamp: %s", svc.Name)
	}
	require.Len(t, r.Ticks, 2)
	for _, tk := range r.Ticks {
		require.False(t, tk.Missed, tk.Module)
	}

	// The table says the same on a terminal-less stdout.
	out := s.env.stdout.(*bytes.Buffer)
	out.Reset()
	opt := defaultStatusOptions()
	opt.Now = clocktest.Fixed(s.now)
	require.Equal(t, exitHealthy, statusCommand(ctx, nil, s.env, opt))
	for _, want := range append(devStatusSymbols, "straux-ticks", "healthy", "seeder") {
		require.Contains(t, out.String(), want)
	}

	// A symbol whose newest samples failed: its vectors keep coming (from older samples), but
	// they are not computed from good samples, so it is stale.
	s.exec(`UPDATE str_aux.samples SET mid = NULL, reason = 'exchange error: 503'
		WHERE symbol = 'ADAUSDT' AND period_start > $1::timestamptz - interval '5 minutes'`, s.now)
	code, r = s.status()
	require.Equal(t, exitUnhealthy, code)
	problemsContain(t, r, "symbol ADAUSDT stale")
	problemsContain(t, r, "newest sample failed: exchange error: 503")
	require.Len(t, r.Problems, 1, "only ADAUSDT: %q", r.Problems)
	s.exec(`UPDATE str_aux.samples SET mid = 100, reason = NULL WHERE symbol = 'ADAUSDT'`)

	// Stream mode: the newest period took ADAUSDT over REST (shown, healthy) and left BTCUSDT
	// without a sample because its stream was down and the REST budget spent (a problem).
	s.exec(`UPDATE str_aux.samples SET source = 'stream', book_age_ms = 80 WHERE period_start = $1::timestamptz - interval '40 seconds'`, s.now)
	s.exec(`UPDATE str_aux.samples SET source = 'rest', book_age_ms = NULL, flags = '{rest_fallback}'
		WHERE symbol = 'ADAUSDT' AND period_start = $1::timestamptz - interval '40 seconds'`, s.now)
	s.exec(`INSERT INTO str_aux.stream_members (replica, joined_at, seen_at, expires_at, host, streams)
		VALUES ('straux-a', now(), now(), now() + interval '1 hour', 'h1', 10)`)
	code, r = s.status()
	require.Equal(t, exitHealthy, code, "%q", r.Problems)
	require.Equal(t, 4, r.MarketData.FromStream)
	require.Equal(t, 1, r.MarketData.FromREST)
	require.Len(t, r.MarketData.Members, 1)
	require.True(t, r.MarketData.Members[0].Live)
	s.exec(`UPDATE str_aux.samples SET mid = NULL, source = NULL, book_age_ms = NULL, reason = 'stream down: REST fallback budget of this tick spent'
		WHERE symbol = 'BTCUSDT' AND period_start = $1::timestamptz - interval '40 seconds'`, s.now)
	code, r = s.status()
	require.Equal(t, exitUnhealthy, code)
	problemsContain(t, r, "market data: 1 symbols had no sample")
	s.exec(`UPDATE str_aux.samples SET mid = 100, reason = NULL WHERE symbol = 'BTCUSDT'`)
	s.exec(`DELETE FROM str_aux.stream_members`)

	// cinimport's trade sync: cursors of two symbols, a trade stored 2 s after it happened (the
	// user data stream's delivery).
	require.Empty(t, r.Trades)
	s.exec(`INSERT INTO market.trade_cursors (account_scope, symbol, last_trade_id, updated_at)
		VALUES ('default', 'BTCUSDT', 7, $1::timestamptz - interval '20 minutes'), ('default', 'ETHUSDT', 3, $1::timestamptz - interval '25 minutes')`, s.now)
	s.exec(`INSERT INTO market.account_trades (symbol, trade_id, order_id, price, qty, quote_qty, commission, commission_asset,
		trade_time, is_buyer, is_maker, fetched_at)
		VALUES ('BTCUSDT', 9, 9, 100, 1, 100, 0, 'USDT', $1::timestamptz - interval '62 seconds', true, false, $1::timestamptz - interval '60 seconds')`, s.now)
	code, r = s.status()
	require.Equal(t, exitHealthy, code, "%q", r.Problems)
	require.Len(t, r.Trades, 1)
	require.Equal(t, 2, r.Trades[0].Symbols)
	require.Equal(t, s.now.Add(-20*time.Minute), r.Trades[0].CursorUpdated.UTC())
	require.Equal(t, 2*time.Second, r.Trades[0].NewestStored.Sub(*r.Trades[0].NewestTrade))
	out.Reset()
	require.Equal(t, exitHealthy, statusCommand(ctx, nil, s.env, opt))
	require.Contains(t, out.String(), "ACCOUNT TRADES (CINIMPORT)")
	s.exec(`DELETE FROM market.account_trades`)
	s.exec(`DELETE FROM market.trade_cursors`)

	// A dead letter.
	_, err := s.js.Publish(ctx, events.DeadLetterSubject(events.ConsumerStrauxTicks), []byte(`{"reason":"REASON_UNDECODABLE"}`))
	require.NoError(t, err)
	code, r = s.status()
	require.Equal(t, exitUnhealthy, code)
	problemsContain(t, r, "dead letters: 1 from consumer straux-ticks")
	dlq, err := s.js.Stream(ctx, events.StreamDLQ)
	require.NoError(t, err)
	require.NoError(t, dlq.Purge(ctx))

	// A lost replica (a session that stopped beating without stopping) next to a live one is
	// shown, not a failure; the stopped service is.
	s.exec(`INSERT INTO ops.session_log (service, version, host, pid, env, started_at, last_seen_at, heartbeat_every)
		VALUES ('straux', 'v0', 'gone', 1, 'dev', $1::timestamptz - interval '1 hour', $1::timestamptz - interval '10 minutes', interval '15 seconds')`, s.now)
	s.stops[events.ServiceSeeder]()
	code, r = s.status()
	require.Equal(t, exitUnhealthy, code)
	problemsContain(t, r, "service seeder: no live replica")
	require.Len(t, r.Problems, 1, "%q", r.Problems)
	for _, svc := range r.Services {
		if svc.Name == events.ServiceStraux {
			require.Len(t, svc.Replicas, 2)
			states := []string{svc.Replicas[0].State, svc.Replicas[1].State}
			require.ElementsMatch(t, []string{"live", "lost"}, states)
		}
	}

	// Ticks not published for longer than two periods.
	opt = defaultStatusOptions()
	opt.Now = clocktest.Fixed(s.now.Add(5 * time.Minute))
	out.Reset()
	require.Equal(t, exitUnhealthy, statusCommand(ctx, []string{"--json"}, s.env, opt))
	require.NoError(t, json.Unmarshal(out.Bytes(), &r))
	problemsContain(t, r, "ticks straux: missed")

	// --watch renders until interrupted and exits with the last report's status.
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	var watched bytes.Buffer
	wenv := s.env
	wenv.stdout = writeThen{w: &watched, then: stop} // interrupted once the first screen is out
	require.Equal(t, exitUnhealthy, statusCommand(wctx, []string{"--watch", "--interval", "1h"}, wenv, opt))
	require.Contains(t, watched.String(), "unhealthy")
	require.NotContains(t, watched.String(), "\x1b[2J", "no screen control codes when stdout is not a terminal")
}

// writeThen writes to w, then calls then.
type writeThen struct {
	w    io.Writer
	then func()
}

func (w writeThen) Write(p []byte) (int, error) {
	defer w.then()
	return w.w.Write(p)
}

func TestStatusConnectionErrorExits2(t *testing.T) {
	t.Parallel()
	env := fixedEnv(map[string]string{"DATABASE_URL": "postgres://u:secret@127.0.0.1:1/x?sslmode=disable&connect_timeout=2",
		"CP_DEV_ENV": "/nonexistent/dev.env"})
	require.Equal(t, exitUsage, statusCommand(context.Background(), nil, env, defaultStatusOptions()))
	require.NotContains(t, env.stderr.(*bytes.Buffer).String(), "secret")
	require.Equal(t, exitUsage, statusCommand(context.Background(), []string{"--interval", "0s"}, fixedEnv(nil), defaultStatusOptions()))
}
