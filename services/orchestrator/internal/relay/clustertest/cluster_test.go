// Package clustertest runs the change relay against a three-node JetStream cluster with an R3
// CP_CDC, as staging and prod do: the server's ordering checks behave differently when clustered
// (a message is proposed before it is stored), and pipelined publishing must still go through.
package clustertest

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
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/testkit/natstest"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
	"cryptopill.dev/jobs/services/orchestrator/internal/bus"
	"cryptopill.dev/jobs/services/orchestrator/internal/relay"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestPipelinedRelayOnAnR3Stream(t *testing.T) {
	ctx := context.Background()
	d := pgtest.NewDB(t)
	cl := natstest.NewCluster(t, 3)
	nc, err := nats.Connect(cl.URL, nats.MaxReconnects(-1), nats.ReconnectBufSize(-1))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, events.NewTopology(events.TopologyConfig{Replicas: 3}).Apply(actx, js))
	pub, err := bus.New(nc, bus.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close(context.Background()) })
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	reg := prometheus.NewRegistry()
	r, err := relay.New(relay.Config{ConnString: d.URL, Pool: d.Pool, Publisher: pub, Slot: "cp_relay_" + d.Name,
		Tables: []string{"market.account_trades", "cin_aux.rt_session"}, StatusInterval: 200 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
		Logger: logger, Registerer: reg})
	require.NoError(t, err)
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	t.Cleanup(func() { stop(); require.NoError(t, <-done) })
	waitFor(t, 20*time.Second, "streaming", func() bool { return r.State() == relay.StateStreaming })

	const txs, rows = 10, 500
	for i := 0; i < txs; i++ {
		_, err := d.Pool.Exec(ctx, `
			INSERT INTO market.account_trades (symbol, trade_id, order_id, price, qty, quote_qty, commission, commission_asset, trade_time, is_buyer, is_maker)
			SELECT 'BTCUSDT', g, g, 100, 1, 100, 0, 'BNB', now(), true, false FROM generate_series($1::bigint, $2::bigint) g`, i*rows+1, (i+1)*rows)
		require.NoError(t, err)
		_, err = d.Pool.Exec(ctx, `INSERT INTO cin_aux.rt_session (label) VALUES ($1)`, strconv.Itoa(i))
		require.NoError(t, err)
	}
	s, err := js.Stream(ctx, events.StreamCDC)
	require.NoError(t, err)
	waitFor(t, 60*time.Second, "every event", func() bool {
		info, err := s.Info(ctx)
		return err == nil && info.State.Msgs >= txs*(rows+1)
	})
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "cp_relay_publish_failures_total" {
			require.Zero(t, mf.GetMetric()[0].GetCounter().GetValue(), "pipelined publishes are not rejected")
		}
	}
	// Every table in commit order, each event once. Read message by message through the stream
	// leader (a cluster may answer a request with "no responders" while it settles: retried).
	var trades []int
	var sessions []string
	for seq := uint64(1); seq <= txs*(rows+1); seq++ {
		var m *jetstream.RawStreamMsg
		waitFor(t, 10*time.Second, "message "+strconv.FormatUint(seq, 10), func() bool {
			m, err = s.GetMsg(ctx, seq)
			return err == nil
		})
		_, ev, err := events.Decode(ctx, &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
		require.NoError(t, err)
		rc := ev.Payload.(*eventsv1.RowChange)
		if rc.Table == "rt_session" {
			sessions = append(sessions, rc.NewValues["label"].GetText())
			continue
		}
		id, err := strconv.Atoi(rc.NewValues["trade_id"].GetText())
		require.NoError(t, err)
		trades = append(trades, id)
	}
	require.Len(t, trades, txs*rows)
	require.Len(t, sessions, txs)
	for i, id := range trades {
		require.Equal(t, i+1, id)
	}
	for i, l := range sessions {
		require.Equal(t, strconv.Itoa(i), l)
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
