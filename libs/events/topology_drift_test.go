package events_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/events/eventstest"
)

func TestTopologyDriftNamesEachDifference(t *testing.T) {
	t.Parallel()
	bus := eventstest.NewBus(t)
	ctx := context.Background()
	topo := events.NewTopology(events.TopologyConfig{})

	drift, err := topo.Drift(ctx, bus.JS)
	require.NoError(t, err)
	require.Empty(t, drift, "the applied topology is the declared one")

	// A hand-made change to a durable and to a stream.
	decl, ok := topo.Consumer(events.ConsumerSeederUniverse)
	require.True(t, ok)
	changed := decl.Config
	// With a BackOff the server's ack wait is its first step: both show.
	changed.BackOff, changed.MaxAckPending = []time.Duration{time.Second, 2 * time.Second}, 50
	_, err = bus.JS.UpdateConsumer(ctx, decl.Stream, changed)
	require.NoError(t, err)
	st, ok := topo.Stream(events.StreamJobs)
	require.True(t, ok)
	sc := st.StreamConfig
	sc.MaxAge = time.Hour
	_, err = bus.JS.UpdateStream(ctx, sc)
	require.NoError(t, err)
	// And one the server cannot change in place: a consumer recreated with another deliver policy.
	strauxDecl, _ := topo.Consumer(events.ConsumerStrauxTicks)
	require.NoError(t, bus.JS.DeleteConsumer(ctx, strauxDecl.Stream, strauxDecl.Config.Durable))
	sx := strauxDecl.Config
	sx.DeliverPolicy = jetstream.DeliverAllPolicy
	_, err = bus.JS.CreateConsumer(ctx, strauxDecl.Stream, sx)
	require.NoError(t, err)
	cin, _ := topo.Consumer(events.ConsumerCinimportTicks)
	require.NoError(t, bus.JS.DeleteConsumer(ctx, cin.Stream, cin.Config.Durable))

	drift, err = topo.Drift(ctx, bus.JS)
	require.NoError(t, err)
	type key struct{ stream, consumer, setting, live, declared string }
	got := map[key]events.Drift{}
	for _, d := range drift {
		got[key{d.Stream, d.Consumer, d.Setting, d.Live, d.Declared}] = d
	}
	require.Len(t, got, 6, "%+v", drift)
	require.Contains(t, got, key{events.StreamUniverse, events.ConsumerSeederUniverse, "ack_wait", "1s", "5s"})
	require.Contains(t, got, key{events.StreamUniverse, events.ConsumerSeederUniverse, "backoff", "[1s 2s]", "[5s 15s 30s 1m0s 2m0s 5m0s]"})
	require.Contains(t, got, key{events.StreamUniverse, events.ConsumerSeederUniverse, "max_ack_pending", "50", "1"})
	require.Contains(t, got, key{events.StreamJobs, "", "max_age", "1h0m0s", "72h0m0s"})
	fixed := got[key{events.StreamTicks, events.ConsumerStrauxTicks, "deliver_policy", "all", "new"}]
	require.True(t, fixed.Fixed)
	require.Contains(t, fixed.Fix(), "nats consumer rm CP_TICKS straux-ticks")
	gone := got[key{events.StreamTicks, events.ConsumerCinimportTicks, "exists", "missing", "present"}]
	require.Equal(t, "start cinimport: it creates consumer "+events.ConsumerCinimportTicks+" on CP_TICKS", gone.Fix())
}
