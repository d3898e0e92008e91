package events_test

import (
	"context"
	"testing"
	"time"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/events/eventstest"
	"cryptopill.dev/jobs/libs/testkit/natstest"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

func TestTopologyApplyIsIdempotentAndUpdates(t *testing.T) {
	t.Parallel()
	bus := eventstest.NewBus(t) // applied once
	ctx := context.Background()
	topo := events.NewTopology(events.TopologyConfig{})

	require.NoError(t, topo.Apply(ctx, bus.JS), "second apply of the same topology")

	for _, want := range topo.Streams {
		s, err := bus.JS.Stream(ctx, want.Name)
		require.NoError(t, err)
		got := s.CachedInfo().Config
		require.Equal(t, want.Subjects, got.Subjects, want.Name)
		require.Equal(t, want.MaxAge, got.MaxAge, want.Name)
		require.Equal(t, want.Duplicates, got.Duplicates, want.Name)
		require.Equal(t, jetstream.LimitsPolicy, got.Retention, want.Name)
		require.Equal(t, 1, got.Replicas, want.Name)
	}
	for _, want := range topo.Consumers {
		c, err := bus.JS.Consumer(ctx, want.Stream, want.Config.Durable)
		require.NoError(t, err)
		got := c.CachedInfo().Config
		require.Equal(t, want.Config.MaxDeliver, got.MaxDeliver, want.Config.Durable)
		require.Equal(t, want.Config.BackOff, got.BackOff, want.Config.Durable)
		require.Equal(t, want.Config.AckWait, got.AckWait, want.Config.Durable)
		require.Equal(t, want.Config.FilterSubject, got.FilterSubject, want.Config.Durable)
		require.Equal(t, want.Config.FilterSubjects, got.FilterSubjects, want.Config.Durable)
	}

	// Changed declarations are applied in place.
	for i := range topo.Streams {
		if topo.Streams[i].Name == events.StreamTicks {
			topo.Streams[i].MaxAge = 48 * time.Hour
			topo.Streams[i].Duplicates = 20 * time.Minute
		}
	}
	for i := range topo.Consumers {
		if topo.Consumers[i].Config.Durable == events.ConsumerSeederUniverse {
			topo.Consumers[i].Config.MaxDeliver = 20
			topo.Consumers[i].Config.Description = "changed"
		}
	}
	require.NoError(t, topo.Apply(ctx, bus.JS))
	require.NoError(t, topo.Apply(ctx, bus.JS))

	s, err := bus.JS.Stream(ctx, events.StreamTicks)
	require.NoError(t, err)
	require.Equal(t, 48*time.Hour, s.CachedInfo().Config.MaxAge)
	require.Equal(t, 20*time.Minute, s.CachedInfo().Config.Duplicates)
	c, err := bus.JS.Consumer(ctx, events.StreamUniverse, events.ConsumerSeederUniverse)
	require.NoError(t, err)
	require.Equal(t, 20, c.CachedInfo().Config.MaxDeliver)
	require.Equal(t, "changed", c.CachedInfo().Config.Description)
}

func TestTopologyDeclaresEveryStream(t *testing.T) {
	t.Parallel()
	topo := events.NewTopology(events.TopologyConfig{Replicas: 3, TickDuplicateWindow: 10 * time.Minute})
	want := map[string]string{
		events.StreamTicks:    "cp.tick.>",
		events.StreamUniverse: "cp.universe.>",
		events.StreamCDC:      "cp.cdc.>",
		events.StreamJobs:     "cp.job.>",
		events.StreamImports:  "cp.cinimport.>",
		events.StreamDLQ:      "cp.dlq.>",
	}
	require.Len(t, topo.Streams, len(want))
	for name, subj := range want {
		s, ok := topo.Stream(name)
		require.True(t, ok, name)
		require.Equal(t, []string{subj}, s.Subjects)
		require.Equal(t, 3, s.Replicas)
		require.LessOrEqual(t, s.Duplicates, s.MaxAge)
	}
	ticks, _ := topo.Stream(events.StreamTicks)
	require.Equal(t, 10*time.Minute, ticks.Duplicates)
	for _, d := range []string{events.ConsumerStrauxTicks, events.ConsumerCinimportTicks, events.ConsumerCinimportChanges, events.ConsumerSeederUniverse} {
		c, ok := topo.Consumer(d)
		require.True(t, ok, d)
		require.Equal(t, jetstream.AckExplicitPolicy, c.Config.AckPolicy)
		require.Greater(t, c.Config.MaxDeliver, len(c.Config.BackOff), "server requires MaxDeliver > len(BackOff)")
		require.Equal(t, c.Config.BackOff[0], c.Config.AckWait)
	}
	cdc, _ := topo.Consumer(events.ConsumerCinimportChanges)
	require.Equal(t, []string{"cp.cdc.cin_aux.rt_session.*", "cp.cdc.market.account_trades.insert"}, cdc.Config.FilterSubjects)
}

func TestTopologyAppliesWithThreeReplicasOnACluster(t *testing.T) {
	if testing.Short() {
		t.Skip("three-node cluster")
	}
	t.Parallel()
	cluster := natstest.NewCluster(t, 3)
	nc := cluster.Servers[0].Connect(t)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	topo := events.NewTopology(events.TopologyConfig{Replicas: 3})
	// A fresh cluster has a meta leader before every peer is known for placement ("no suitable
	// peers"); services retry their start the same way.
	require.Eventually(t, func() bool {
		err := topo.Apply(ctx, js)
		if err != nil {
			t.Logf("apply on a fresh cluster: %v", err)
		}
		return err == nil
	}, 30*time.Second, 250*time.Millisecond)
	require.NoError(t, topo.Apply(ctx, js))
	s, err := js.Stream(ctx, events.StreamCDC)
	require.NoError(t, err)
	require.Equal(t, 3, s.CachedInfo().Config.Replicas)
}
