// Package restarttest restarts Postgres under a running change relay. It is a test binary of its
// own because pgtest's cluster is shared by every test of a binary.
package restarttest

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/testkit/natstest"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
	"cryptopill.dev/jobs/services/orchestrator/internal/bus"
	"cryptopill.dev/jobs/services/orchestrator/internal/relay"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestRelayResumesAfterPostgresRestart(t *testing.T) {
	d := pgtest.NewDB(t)
	ns := natstest.NewServer(t)
	nc := ns.Connect(t, nats.MaxReconnects(-1), nats.ReconnectBufSize(-1))
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, events.NewTopology(events.TopologyConfig{}).Apply(ctx, js))
	pub, err := bus.New(nc, bus.Config{})
	require.NoError(t, err)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	slot := "cp_relay_" + d.Name
	r, err := relay.New(relay.Config{ConnString: d.URL, Pool: d.Pool, Publisher: pub, Slot: slot,
		Tables: []string{"market.account_trades"}, StatusInterval: 100 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, Logger: logger})
	require.NoError(t, err)
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	t.Cleanup(func() {
		stop()
		require.NoError(t, <-done)
		_ = pub.Close(context.Background())
	})
	waitFor(t, 20*time.Second, "streaming", func() bool { return r.State() == relay.StateStreaming })

	insert := func(from, n int) {
		t.Helper()
		_, err := d.Pool.Exec(ctx, `
			INSERT INTO market.account_trades (symbol, trade_id, order_id, price, qty, quote_qty, commission, commission_asset, trade_time, is_buyer, is_maker)
			SELECT 'BTCUSDT', g, g, 100, 1, 100, 0, 'BNB', now(), true, false FROM generate_series($1::bigint, $2::bigint) g`, from, from+n-1)
		require.NoError(t, err)
	}
	for i := 0; i < 10; i++ {
		insert(i*500+1, 500)
	}
	waitFor(t, 20*time.Second, "some events", func() bool { return count(t, js) >= 1000 })

	cluster := pgtest.Cluster(t)
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	require.NoError(t, cluster.Stop(sctx))
	waitFor(t, 20*time.Second, "the relay to notice", func() bool { return r.State() == relay.StateBackoff })
	require.NoError(t, cluster.Start(sctx))

	// The pool reconnects; changes after the restart follow the ones before it.
	waitFor(t, 30*time.Second, "postgres back", func() bool { return d.Pool.Ping(ctx) == nil })
	for i := 10; i < 20; i++ {
		insert(i*500+1, 500)
	}
	waitFor(t, 60*time.Second, "every event", func() bool { return count(t, js) >= 10000 })
	time.Sleep(300 * time.Millisecond)
	ids := tradeIDs(t, js)
	require.Len(t, ids, 10000)
	for i, id := range ids {
		require.Equal(t, i+1, id, "stream position %d", i)
	}
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

func count(t *testing.T, js jetstream.JetStream) uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, events.StreamCDC)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	return info.State.Msgs
}

// tradeIDs returns the trade ids of the stream's events in stream order.
func tradeIDs(t *testing.T, js jetstream.JetStream) []int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, events.StreamCDC)
	require.NoError(t, err)
	n := int(count(t, js))
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)
	var out []int
	for len(out) < n {
		batch, err := c.Fetch(min(n-len(out), 1000), jetstream.FetchMaxWait(5*time.Second))
		require.NoError(t, err)
		for m := range batch.Messages() {
			_, ev, err := events.Decode(ctx, &nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
			require.NoError(t, err)
			id, err := strconv.Atoi(ev.Payload.(*eventsv1.RowChange).NewValues["trade_id"].GetText())
			require.NoError(t, err)
			out = append(out, id)
		}
		require.NoError(t, batch.Error())
	}
	return out
}
