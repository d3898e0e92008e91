package main

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/redeliver"
	"cryptopill.dev/jobs/libs/service"
	"cryptopill.dev/jobs/libs/simex"
	"cryptopill.dev/jobs/libs/testkit/clocktest"
	"cryptopill.dev/jobs/libs/testkit/natstest"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
)

// tableDigests is a digest of every row of every table straux writes (and of the job table), so
// a test can tell "no row changed" from "a row changed", not only count them. The stream members'
// heartbeats (str_aux.stream_members) are liveness, not data: left out.
func tableDigests(t *testing.T, pool *pgxpool.Pool) map[string]string {
	t.Helper()
	ctx := context.Background()
	rows, err := pool.Query(ctx, `SELECT table_schema || '.' || table_name FROM information_schema.tables
		WHERE table_schema IN ('str_aux', 'market', 'ingest') AND table_type = 'BASE TABLE'
		  AND (table_schema, table_name) <> ('str_aux', 'stream_members') ORDER BY 1`)
	require.NoError(t, err)
	var tables []string
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		tables = append(tables, n)
	}
	require.NoError(t, rows.Err())
	out := map[string]string{}
	for _, tb := range tables {
		var n int
		var digest string
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM `+tb+` t`).
			Scan(&n, &digest))
		out[tb] = digest
		out[tb+" rows"] = strconv.Itoa(n) // readable in a diff; the digest decides
	}
	return out
}

// Replaying an hour of ticks that were all handled changes no row and calls nothing; replaying
// ticks whose periods were missed (they arrived late and were skipped) repairs those periods
// from klines. The durable is untouched and straux keeps running: the next live tick is
// consumed as usual.
func TestReplayOfTicks(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDB(t)
	ns := natstest.NewServer(t)
	period := 5 * time.Minute
	p0 := clocktest.Afternoon.Truncate(time.Hour)
	// Moved period by period, so a tick is current (sampled) or late (skipped) as the test decides.
	clock := clocktest.NewClock(p0.Add(time.Second))
	ex, err := simex.New(simex.Config{Symbols: []string{"BTCUSDT", "ETHUSDT", "BNBUSDT"}, Now: clock.Now})
	require.NoError(t, err)
	srv := httptest.NewServer(ex)
	t.Cleanup(srv.Close)
	ctx := context.Background()
	_, err = d.Pool.Exec(ctx, `INSERT INTO settings.coin_universe (symbol, base_asset, quote_asset)
		VALUES ('BTCUSDT', 'BTC', 'USDT'), ('ETHUSDT', 'ETH', 'USDT'), ('BNBUSDT', 'BNB', 'USDT')`)
	require.NoError(t, err)
	env := map[string]string{"CP_ENV": "dev", "DATABASE_URL": d.URL, "NATS_URL": ns.URL, "HTTP_ADDR": "127.0.0.1:0",
		"MIGRATE_ON_START": "0", "BINANCE_BASE_URL": srv.URL, "SHUTDOWN_GRACE": "20s", "STRAUX_ASSIST": "0",
		// REST mode: in stream mode the feed resyncs its books in the background whenever the
		// test moves the clock, and the replay's "no exchange call" could not be told apart.
		"STRAUX_MARKET_DATA": "rest"}
	cfg, err := LoadConfig(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	require.NoError(t, err)
	cfg.Now = clock.Now

	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- service.Start(sctx, service.Options{Name: "straux", Common: cfg.Common, Logger: slog.New(slog.DiscardHandler)},
			func(ctx context.Context, p *service.Process) error { return run(ctx, p, cfg) })
	}()
	t.Cleanup(func() {
		stop()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(60 * time.Second):
			t.Error("straux did not stop")
		}
	})
	nc := ns.Connect(t)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	require.NoError(t, events.NewTopology(events.TopologyConfig{}).ApplyAs(ctx, js, events.ServiceOrchestrator))
	require.Eventually(t, func() bool {
		_, err := js.Consumer(ctx, events.StreamTicks, events.ConsumerStrauxTicks)
		return err == nil
	}, 30*time.Second, 20*time.Millisecond)
	pub, err := events.NewPublisher(nc, events.PublisherConfig{Source: "orchestrator"})
	require.NoError(t, err)
	defer pub.Close(ctx)
	status := func(p time.Time) string {
		var s string
		_ = d.Pool.QueryRow(ctx, `SELECT status FROM str_aux.tick_periods WHERE period_start = $1`, p).Scan(&s)
		return s
	}
	count := func(sql string, args ...any) int {
		var n int
		require.NoError(t, d.Pool.QueryRow(ctx, sql, args...).Scan(&n))
		return n
	}
	// tick publishes period i's tick with the clock at at (inside the period: sampled; after it:
	// late) and waits until straux has finished with it.
	tick := func(i int, late bool, want string) {
		t.Helper()
		p := p0.Add(time.Duration(i) * period)
		at := p.Add(time.Second)
		if late {
			at = p.Add(period + time.Second)
		}
		clock.Set(at)
		require.Eventually(t, func() bool {
			_, err := pub.Publish(ctx, events.Event{Subject: events.TickSubject(events.ModuleStraux), ID: events.TickID(events.ModuleStraux, p),
				Payload: &eventsv1.Tick{Module: events.ModuleStraux, PeriodStart: timestamppb.New(p), Period: durationpb.New(period)}})
			return err == nil
		}, 30*time.Second, 100*time.Millisecond)
		require.Eventually(t, func() bool { return status(p) == want }, 60*time.Second, 50*time.Millisecond, "period %d %s", i, want)
	}
	durable := func() *jetstream.ConsumerInfo {
		c, err := js.Consumer(ctx, events.StreamTicks, events.ConsumerStrauxTicks)
		require.NoError(t, err)
		info, err := c.Info(ctx)
		require.NoError(t, err)
		return info
	}

	// An hour of ticks, every one sampled.
	for i := range 12 {
		tick(i, false, "done")
	}
	require.Eventually(t, func() bool { return durable().NumAckPending == 0 }, 30*time.Second, 50*time.Millisecond)
	cl, err := redeliver.New(redeliver.Config{NC: nc, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	clock.Set(p0.Add(12*period + time.Second))
	before, infoBefore := tableDigests(t, d.Pool), durable()
	calls := ex.Stats().Requests
	rep, err := cl.Replay(ctx, redeliver.ReplayOptions{Stream: events.StreamTicks, Service: events.ServiceStraux, Since: p0}, nil, nil)
	require.NoError(t, err)
	require.Equal(t, 12, rep.OK, "%+v", rep)
	require.Zero(t, rep.Failed)
	require.Equal(t, before, tableDigests(t, d.Pool), "replaying handled ticks changes no row")
	require.Equal(t, calls, ex.Stats().Requests, "and calls the exchange for nothing")

	// Two periods missed: their ticks arrived late and were skipped.
	tick(12, true, "skipped")
	tick(13, true, "skipped")
	require.Equal(t, 0, count(`SELECT count(*) FROM str_aux.samples WHERE period_start >= $1 AND mid IS NOT NULL`, p0.Add(12*period)))
	clock.Set(p0.Add(14*period + time.Second))
	rep, err = cl.Replay(ctx, redeliver.ReplayOptions{Stream: events.StreamTicks, Service: events.ServiceStraux, StartSeq: 13}, nil, nil)
	require.NoError(t, err)
	require.Equal(t, redeliver.ReplayReport{Stream: events.StreamTicks, Service: events.ServiceStraux, Durable: events.ConsumerStrauxTicks,
		Filters: []string{events.TickSubject(events.ModuleStraux)}, FirstSeq: 13, LastSeq: 14, Messages: 2, OK: 2}, rep)
	require.Equal(t, 6, count(`SELECT count(*) FROM str_aux.samples WHERE period_start >= $1 AND mid IS NOT NULL
		AND flags @> ARRAY['kline_backfill']`, p0.Add(12*period)), "both periods repaired from klines, three symbols each")
	repaired := tableDigests(t, d.Pool)
	_, err = cl.Replay(ctx, redeliver.ReplayOptions{Stream: events.StreamTicks, Service: events.ServiceStraux, Since: p0}, nil, nil)
	require.NoError(t, err)
	require.Equal(t, repaired, tableDigests(t, d.Pool), "a second replay finds nothing left to repair")

	// A symbol whose sample failed in a period that was done (an exchange error for that symbol
	// alone): only it is repaired, with one klines call.
	p3 := p0.Add(3 * period)
	_, err = d.Pool.Exec(ctx, `UPDATE str_aux.samples SET mid = NULL, reason = 'depth: 503' WHERE symbol = 'ETHUSDT' AND period_start = $1`, p3)
	require.NoError(t, err)
	calls = ex.Stats().Requests
	rep, err = cl.Replay(ctx, redeliver.ReplayOptions{Stream: events.StreamTicks, Service: events.ServiceStraux, StartSeq: 4, EndSeq: 4}, nil, nil)
	require.NoError(t, err)
	require.Equal(t, 1, rep.OK, "%+v", rep)
	require.Equal(t, 1, count(`SELECT count(*) FROM str_aux.samples WHERE period_start = $1 AND symbol = 'ETHUSDT' AND mid IS NOT NULL
		AND flags @> ARRAY['kline_backfill']`, p3))
	require.Equal(t, calls["/api/v3/klines"]+1, ex.Stats().Requests["/api/v3/klines"])

	infoAfter := durable()
	require.Equal(t, infoBefore.Config, infoAfter.Config, "the durable's configuration is untouched")
	require.Equal(t, infoBefore.Created, infoAfter.Created, "the durable was not recreated")
	require.Equal(t, uint64(14), infoAfter.AckFloor.Stream, "it delivered only the live ticks")
	require.Equal(t, uint64(14), infoAfter.Delivered.Stream)

	// No restart: the same process consumes the next live tick.
	select {
	case err := <-done:
		t.Fatalf("straux stopped: %v", err)
	default:
	}
	tick(14, false, "done")
	require.NotEmpty(t, redeliver.Note(events.ConsumerStrauxTicks))
}
