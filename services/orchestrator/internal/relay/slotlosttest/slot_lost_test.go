// Package slotlosttest lets Postgres invalidate the change relay's slot (max_slot_wal_keep_size
// exceeded while nobody read it). It is a test binary of its own because it changes a setting of
// pgtest's cluster, which every test of a binary shares.
package slotlosttest

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/testkit/logtest"
	"cryptopill.dev/jobs/libs/testkit/metrictest"
	"cryptopill.dev/jobs/libs/testkit/natstest"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
	"cryptopill.dev/jobs/services/orchestrator/internal/bus"
	"cryptopill.dev/jobs/services/orchestrator/internal/relay"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestLostSlotIsReportedNotCrashLooped(t *testing.T) {
	ctx := context.Background()
	d := pgtest.NewDB(t)
	admin, err := pgx.Connect(ctx, pgtest.Cluster(t).DSN("postgres"))
	require.NoError(t, err)
	defer admin.Close(ctx)
	_, err = admin.Exec(ctx, `ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'`)
	require.NoError(t, err)
	_, err = admin.Exec(ctx, `SELECT pg_reload_conf()`)
	require.NoError(t, err)

	ns := natstest.NewServer(t)
	nc := ns.Connect(t, nats.MaxReconnects(-1), nats.ReconnectBufSize(-1))
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	require.NoError(t, events.NewTopology(events.TopologyConfig{}).Apply(ctx, js))
	pub, err := bus.New(nc, bus.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close(context.Background()) })
	slot := "cp_relay_" + d.Name

	run := func(mod func(*relay.Config)) (*relay.ChangeRelay, func()) {
		cfg := relay.Config{ConnString: d.URL, Pool: d.Pool, Publisher: pub, Slot: slot, Tables: []string{"market.account_trades"},
			StatusInterval: 100 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, LostSlotRetry: 100 * time.Millisecond, LagInterval: 100 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))}
		if mod != nil {
			mod(&cfg)
		}
		r, err := relay.New(cfg)
		require.NoError(t, err)
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- r.Run(rctx) }()
		return r, func() { cancel(); require.NoError(t, <-done) }
	}
	walStatus := func() string {
		var s *string
		require.NoError(t, d.Pool.QueryRow(ctx, `SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&s))
		if s == nil {
			return ""
		}
		return *s
	}

	// The relay creates its slot, then stops: nobody reads the slot while WAL piles up.
	r, stop := run(nil)
	waitFor(t, 20*time.Second, "streaming", func() bool { return r.State() == relay.StateStreaming })
	stop()
	for i := 0; i < 4 && walStatus() != "lost"; i++ {
		_, err := d.Pool.Exec(ctx, `INSERT INTO market.account_trades (symbol, trade_id, order_id, price, qty, quote_qty, commission, commission_asset, trade_time, is_buyer, is_maker)
			SELECT 'LOSTUSDT', g, g, 1, 1, 1, 0, 'BNB', now(), true, false FROM generate_series($1::bigint, $1::bigint + 5000) g`, i*10000)
		require.NoError(t, err)
		_, err = admin.Exec(ctx, `SELECT pg_switch_wal()`)
		require.NoError(t, err)
		_, err = admin.Exec(ctx, `CHECKPOINT`)
		require.NoError(t, err)
	}
	require.Equal(t, "lost", walStatus(), "Postgres invalidated the slot")

	// A relay on the lost slot says so, once, in a state and metrics of its own, and waits.
	logs := &logtest.Buffer{}
	reg := prometheus.NewRegistry()
	r, stop = run(func(c *relay.Config) {
		c.Registerer = reg
		c.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	})
	waitFor(t, 20*time.Second, "slot_lost", func() bool { return r.State() == relay.StateSlotLost })
	waitFor(t, 20*time.Second, "several retries", func() bool {
		return metrictest.Value(t, reg, "cp_relay_sessions_ended_total", "reason", "slot_lost") >= 3
	})
	require.Equal(t, relay.StateSlotLost, r.State())
	require.Equal(t, 1.0, metrictest.Value(t, reg, "cp_relay_slot_lost"))
	require.Equal(t, 1.0, metrictest.Value(t, reg, "cp_relay_state", "state", "slot_lost"))
	waitFor(t, 5*time.Second, "wal status sampled", func() bool { return metrictest.Value(t, reg, "cp_relay_slot_wal_status", "status", "lost") == 1 })
	out := logs.String()
	require.Equal(t, 1, strings.Count(out, `"level":"ERROR"`), "one error log, not one per retry:\n%s", out)
	require.Contains(t, out, "pg_drop_replication_slot")
	require.Contains(t, out, "cinimport once -full")
	stop()
	require.Equal(t, "lost", walStatus(), "nothing was dropped without the opt-in")

	// With the explicit opt-in the relay recreates the slot and streams again.
	r, stop = run(func(c *relay.Config) { c.RecreateLostSlot = true })
	defer stop()
	waitFor(t, 20*time.Second, "streaming on a new slot", func() bool { return r.State() == relay.StateStreaming })
	require.Equal(t, "reserved", walStatus())
	_, err = d.Pool.Exec(ctx, `INSERT INTO market.account_trades (symbol, trade_id, order_id, price, qty, quote_qty, commission, commission_asset, trade_time, is_buyer, is_maker)
		VALUES ('NEWUSDT', 1, 1, 1, 1, 1, 0, 'BNB', now(), true, false)`)
	require.NoError(t, err)
	waitFor(t, 20*time.Second, "the change after the new slot", func() bool {
		s, err := js.Stream(ctx, events.StreamCDC)
		if err != nil {
			return false
		}
		m, err := s.GetLastMsgForSubject(ctx, "cp.cdc.market.account_trades.insert")
		return err == nil && bytes.Contains(m.Data, []byte("NEWUSDT"))
	})
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
