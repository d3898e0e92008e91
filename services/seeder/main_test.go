package main

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/config"
	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/events/eventstest"
	"cryptopill.dev/jobs/libs/service"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
	"cryptopill.dev/jobs/libs/testkit/proctest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func count(t *testing.T, d *pgtest.DB, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, d.Pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

func TestEndToEndUniverseChangesReachTheJobTable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := pgtest.NewDB(t)
	bus := eventstest.NewBus(t)
	_, err := d.Pool.Exec(ctx, `INSERT INTO settings.coin_universe (symbol, base_asset, quote_asset) VALUES ('BTCUSDT', 'BTC', 'USDT')`)
	require.NoError(t, err)
	proctest.Orchestrator(t, d.URL, bus.Server.URL)

	rctx, cancel := context.WithCancel(ctx)
	cfg := Config{Common: config.Common{Env: config.EnvDev, DatabaseURL: d.URL, NATSURL: bus.Server.URL,
		HTTPAddr: "127.0.0.1:0", ShutdownGrace: 20 * time.Second}}
	done := make(chan error, 1)
	go func() {
		done <- service.Start(rctx, service.Options{Name: "seeder", Common: cfg.Common, Logger: slog.New(slog.DiscardHandler)},
			func(ctx context.Context, p *service.Process) error { return run(ctx, p, cfg) })
	}()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })

	liveKlines := func(symbol string) int {
		return count(t, d, `SELECT count(*) FROM ingest.jobs WHERE kind = 'fetch_klines' AND status IN ('queued', 'running')
			AND dedup_key LIKE $1 || '/%'`, symbol)
	}
	// The orchestrator's start-up universe event seeds the existing symbol.
	require.True(t, proctest.Wait(ctx, 60*time.Second, func() bool { return liveKlines("BTCUSDT") == 3 }))

	// A coin added: its jobs within seconds.
	_, err = d.Pool.Exec(ctx, `INSERT INTO settings.coin_universe (symbol, base_asset, quote_asset) VALUES ('ETHUSDT', 'ETH', 'USDT')`)
	require.NoError(t, err)
	require.True(t, proctest.Wait(ctx, 15*time.Second, func() bool { return liveKlines("ETHUSDT") == 3 }))

	// A coin disabled: its queued jobs cancelled.
	_, err = d.Pool.Exec(ctx, `UPDATE settings.coin_universe SET enabled = false WHERE symbol = 'BTCUSDT'`)
	require.NoError(t, err)
	require.True(t, proctest.Wait(ctx, 15*time.Second, func() bool { return liveKlines("BTCUSDT") == 0 }))

	// Every universe event again, redelivered under new ids: nothing is added or undone.
	before := count(t, d, `SELECT count(*) FROM ingest.jobs`)
	pub, err := events.NewPublisher(bus.Conn, events.PublisherConfig{Source: "test"})
	require.NoError(t, err)
	for _, ev := range eventstest.Events(t, bus.JS, events.StreamUniverse, events.SubjectUniverseChanged) {
		_, err := pub.Publish(ctx, events.Event{Subject: ev.Subject, ID: events.NewID(), Payload: ev.Payload})
		require.NoError(t, err)
	}
	require.True(t, proctest.Wait(ctx, 15*time.Second, func() bool {
		info, err := bus.JS.Consumer(ctx, events.StreamUniverse, events.ConsumerSeederUniverse)
		if err != nil {
			return false
		}
		ci, err := info.Info(ctx)
		return err == nil && ci.NumPending == 0 && ci.NumAckPending == 0
	}))
	require.Equal(t, before, count(t, d, `SELECT count(*) FROM ingest.jobs`))
	require.Equal(t, 0, liveKlines("BTCUSDT"))
	require.Equal(t, 3, liveKlines("ETHUSDT"))
	require.Equal(t, 1, count(t, d, `SELECT count(*) FROM ingest.jobs WHERE kind = 'compute_mea' AND status = 'queued'`))
}

func TestOncePrintsInsertedAndPresentPerKind(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := pgtest.NewDB(t)
	_, err := d.Pool.Exec(ctx, `INSERT INTO settings.coin_universe (symbol, base_asset, quote_asset) VALUES ('BTCUSDT', 'BTC', 'USDT'), ('ETHUSDT', 'ETH', 'USDT')`)
	require.NoError(t, err)
	p := &service.Process{Pool: d.Pool, Logger: slog.New(slog.DiscardHandler)}
	var out bytes.Buffer
	require.NoError(t, runOnce(ctx, p, Config{}, &out))
	require.Contains(t, out.String(), "fetch_klines         inserted=6 already_present=0")
	require.Contains(t, out.String(), "compute_mea          inserted=1 already_present=0")
	out.Reset()
	require.NoError(t, runOnce(ctx, p, Config{}, &out))
	require.Contains(t, out.String(), "fetch_klines         inserted=0 already_present=6")
	require.Contains(t, out.String(), "fetch_ticker         inserted=0 already_present=1")
	require.Equal(t, 11, count(t, d, `SELECT count(*) FROM ingest.jobs`), "zero duplicates")
	// Each run is a row of ops.job_run, as the admin page of recent runs reads.
	require.Equal(t, 2, count(t, d, `SELECT count(*) FROM ops.job_run WHERE kind = 'oneshot' AND name = 'seeder once'
		AND status = 'succeeded' AND duration IS NOT NULL`))

	_, err = LoadConfig(func(k string) (string, bool) {
		return map[string]string{"DATABASE_URL": d.URL, "SEEDER_WINDOWS": "1h,3h"}[k], true
	})
	require.ErrorContains(t, err, "SEEDER_WINDOWS")
	require.ErrorContains(t, err, `"3h"`)
}
