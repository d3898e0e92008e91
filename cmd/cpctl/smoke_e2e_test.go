package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/db"
	"cryptopill.dev/jobs/libs/events/eventstest"
	"cryptopill.dev/jobs/libs/simex"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
	"cryptopill.dev/jobs/libs/testkit/proctest"
)

// smokeTables are the tables the end-to-end pass writes to (directly, or through the services it
// drives) whose rows are not otherwise added to while it runs: each must have as many rows after
// the pass as before. The tick tables grow with every tick; for them the pass's own symbol must
// have left no row (smoke_e2e_leftovers.sql, counted by e2e.cleanup).
var smokeTables = []string{"cin_aux.rt_session", "cin_aux.rt_move", "cin_aux.session_import_cursor",
	"cin_aux.session_pending_market", "market.account_trades", "market.trade_cursors", "settings.coin_universe"}

// TestSmokeEndToEndOnRunningStack starts the whole stack as processes (orchestrator, straux,
// cinimport, seeder) on a real Postgres, JetStream and the simulated exchange, and runs
// `cpctl smoke` against it: every check passes and no row is left behind; with straux stopped,
// the tick part fails and says what to check.
func TestSmokeEndToEndOnRunningStack(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts four services")
	}
	ctx := context.Background()
	d := pgtest.NewDB(t)
	bus := eventstest.NewBus(t)
	_, err := db.SeedDev(ctx, d.Pool)
	require.NoError(t, err)
	ex, err := simex.New(simex.Config{APIKey: devAPIKey, APISecret: devAPISecret})
	require.NoError(t, err)
	srv := httptest.NewServer(ex)
	t.Cleanup(srv.Close)

	slot := fmt.Sprintf("smoke_%d", time.Now().UnixNano())
	common := []string{"CP_ENV=dev", "DATABASE_URL=" + d.URL, "NATS_URL=" + bus.Server.URL, "HTTP_ADDR=127.0.0.1:0",
		"MIGRATE_ON_START=0", "LOG_LEVEL=info", "BINANCE_BASE_URL=" + srv.URL}
	proctest.Orchestrator(t, d.URL, bus.Server.URL, "CDC_SLOT="+slot, "STR_AUX_RUNNER_INTERVAL_MS=5000")
	t.Cleanup(func() {
		_, _ = d.Pool.Exec(context.Background(), `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active`, slot)
	})
	straux := proctest.Start(t, proctest.Build(t, "cryptopill.dev/jobs/services/straux"), common...)
	proctest.Start(t, proctest.Build(t, "cryptopill.dev/jobs/services/cinimport"), common...)
	proctest.Start(t, proctest.Build(t, "cryptopill.dev/jobs/services/seeder"), common...)

	count := func(table string) (n int) {
		require.NoError(t, d.Pool.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n))
		return n
	}
	// The stack is up once straux has finished a tick (and the seeder has seeded the dev universe).
	require.True(t, proctest.Wait(ctx, 90*time.Second, func() bool {
		var n int
		_ = d.Pool.QueryRow(ctx, `SELECT count(*) FROM str_aux.tick_periods WHERE status = 'done'`).Scan(&n)
		return n > 0 && count("ingest.jobs") > 0
	}), "the stack did not finish a tick; straux:\n%s", straux.Output())

	before := map[string]int{}
	for _, tbl := range smokeTables {
		before[tbl] = count(tbl)
	}
	smoke := func(args ...string) (int, map[string]smokeCheck, string) {
		env := newTestEnv(map[string]string{"DATABASE_URL": d.URL, "NATS_URL": bus.Server.URL})
		code := smokeCommand(ctx, append([]string{"--json"}, args...), env.cmdEnv)
		var got struct{ Checks []smokeCheck }
		require.NoError(t, json.Unmarshal(env.stdout.Bytes(), &got), env.stdout.String()+env.stderr.String())
		out := map[string]smokeCheck{}
		for _, c := range got.Checks {
			out[c.Name] = c
		}
		return code, out, env.stdout.String()
	}

	start := time.Now()
	code, checks, out := smoke("--e2e-timeout", "40s")
	took := time.Since(start)
	// The stored-value checks judge straux's numbers, not the stack's plumbing: with 5 s ticks over
	// a history backfilled from 1 m klines (twelve equal prices a minute) v_tendency sits at ±100
	// for every symbol, which vectors.*_clamp rightly report. Every other check must pass.
	valueChecks := map[string]bool{"vectors.window_clamp": true, "vectors.symbol_clamp": true}
	for name, c := range checks {
		if !valueChecks[name] {
			require.Contains(t, []string{statusOK, statusSkip}, c.Status, "%s: %s", name, c.Detail)
		}
	}
	for _, name := range []string{"schema.version", "schema.objects", "straux.sampling_recency", "e2e.tick", "e2e.session", "e2e.universe", "e2e.cleanup"} {
		require.Equal(t, statusOK, checks[name].Status, "%s: %s", name, checks[name].Detail)
	}
	healthy := true
	for name, c := range checks {
		healthy = healthy && (valueChecks[name] || c.Status == statusOK || c.Status == statusSkip)
	}
	require.True(t, healthy)
	if checks["vectors.window_clamp"].Status == statusOK && checks["vectors.symbol_clamp"].Status == statusOK {
		require.Equal(t, 0, code, out)
	}
	require.Contains(t, checks["e2e.session"].Detail, "got its 2 moves")
	require.Contains(t, checks["e2e.universe"].Detail, "its 3 fetch_klines jobs were seeded")
	t.Logf("smoke on the running stack took %s; %s", took.Round(time.Millisecond), checks["e2e.cleanup"].Detail)
	for _, tbl := range smokeTables {
		require.Equal(t, before[tbl], count(tbl), "rows of %s after the pass", tbl)
	}
	var leftJobs, leftSamples int
	require.NoError(t, d.Pool.QueryRow(ctx, `SELECT count(*) FROM ingest.jobs WHERE payload->>'symbol' LIKE 'CPSMOKE%'`).Scan(&leftJobs))
	require.NoError(t, d.Pool.QueryRow(ctx, `SELECT count(*) FROM str_aux.samples WHERE symbol LIKE 'CPSMOKE%'`).Scan(&leftSamples))
	require.Zero(t, leftJobs+leftSamples)

	// The exchange failing every call: ticks are done, but without a good sample; the tick part
	// says straux cannot sample, not that it is down. straux samples from local books fed by the
	// streams: dropping their connections while every REST call fails leaves every book without
	// a snapshot (not live), so it falls back to REST, which fails.
	require.NoError(t, ex.SetFaults(simex.Faults{ErrorRate: 1}))
	ex.DropStreams()
	code, checks, out = smoke("--e2e-timeout", "15s", "-schema=false")
	require.Equal(t, 1, code, out)
	require.Equal(t, statusFail, checks["e2e.tick"].Status)
	require.Contains(t, checks["e2e.tick"].Detail, "without one good sample: straux runs but cannot sample")
	require.Equal(t, statusOK, checks["e2e.cleanup"].Status, checks["e2e.cleanup"].Detail)
	require.NoError(t, ex.SetFaults(simex.Faults{}))

	// straux down: no tick is sampled, and the check says so; the other parts still pass and
	// the pass still cleans up.
	straux.Stop(20 * time.Second)
	code, checks, out = smoke("--e2e-timeout", "12s", "-schema=false")
	require.Equal(t, 1, code, out)
	require.Equal(t, statusFail, checks["e2e.tick"].Status)
	require.Contains(t, checks["e2e.tick"].Detail, "straux runs")
	require.Equal(t, statusOK, checks["e2e.session"].Status, checks["e2e.session"].Detail)
	require.Equal(t, statusOK, checks["e2e.cleanup"].Status, checks["e2e.cleanup"].Detail)
	for _, tbl := range smokeTables {
		require.Equal(t, before[tbl], count(tbl), "rows of %s after the failed pass", tbl)
	}
}
