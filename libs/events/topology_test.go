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
		// Unbounded: the server never gives a message up; the handler attempts are in metadata.
		require.Equal(t, -1, c.Config.MaxDeliver, d)
		require.NotEmpty(t, c.Config.Metadata[events.MetadataAttempts], d)
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

// bareJS is a JetStream context on a fresh server with nothing declared.
func bareJS(t *testing.T) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(natstest.NewServer(t).Connect(t))
	require.NoError(t, err)
	return js
}

func streamConfig(t *testing.T, js jetstream.JetStream, name string) jetstream.StreamConfig {
	t.Helper()
	s, err := js.Stream(context.Background(), name)
	require.NoError(t, err, name)
	return s.CachedInfo().Config
}

func consumerConfig(t *testing.T, js jetstream.JetStream, stream, durable string) jetstream.ConsumerConfig {
	t.Helper()
	c, err := js.Consumer(context.Background(), stream, durable)
	require.NoError(t, err, durable)
	return c.CachedInfo().Config
}

func TestTopologyDeclaresOneOwnerPerStreamAndDurable(t *testing.T) {
	t.Parallel()
	topo := events.NewTopology(events.TopologyConfig{})
	require.NoError(t, topo.Validate())
	owners := map[string]string{}
	for _, s := range topo.Streams {
		owners[s.Name] = s.Owner
		require.NotContains(t, s.Users, s.Owner, s.Name)
	}
	require.Equal(t, map[string]string{
		events.StreamTicks: events.ServiceOrchestrator, events.StreamUniverse: events.ServiceOrchestrator,
		events.StreamCDC: events.ServiceOrchestrator, events.StreamDLQ: events.ServiceOrchestrator,
		events.StreamJobs: events.ServiceStraux, events.StreamImports: events.ServiceCinimport,
	}, owners)
	for durable, owner := range map[string]string{
		events.ConsumerStrauxTicks: events.ServiceStraux, events.ConsumerCinimportTicks: events.ServiceCinimport,
		events.ConsumerCinimportChanges: events.ServiceCinimport, events.ConsumerSeederUniverse: events.ServiceSeeder,
	} {
		c, ok := topo.Consumer(durable)
		require.True(t, ok, durable)
		require.Equal(t, owner, c.Owner, durable)
	}

	// A durable whose owner would not wait for its stream is refused.
	topo.Consumers = append(topo.Consumers, events.ConsumerDecl{Stream: events.StreamCDC, Owner: events.ServiceSeeder,
		Config: jetstream.ConsumerConfig{Durable: "seeder-cdc"}})
	require.ErrorContains(t, topo.Validate(), "seeder-cdc")
}

// The orchestrator's 60-minute tick window survives every other service's start, whatever that
// service's own idea of the window.
func TestApplyAsLeavesOthersStreamsAsTheirOwnerSetThem(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := bareJS(t)
	prod := events.NewTopology(events.TopologyConfig{TickDuplicateWindow: time.Hour, CDCDuplicateWindow: 20 * time.Second})
	require.NoError(t, prod.ApplyAs(ctx, js, events.ServiceOrchestrator))
	require.Equal(t, time.Hour, streamConfig(t, js, events.StreamTicks).Duplicates)
	require.Equal(t, 20*time.Second, streamConfig(t, js, events.StreamCDC).Duplicates)

	others := events.NewTopology(events.TopologyConfig{}) // 30m, 5m
	for _, svc := range []string{events.ServiceStraux, events.ServiceCinimport, events.ServiceSeeder} {
		require.NoError(t, others.ApplyAs(ctx, js, svc), svc)
	}
	require.Equal(t, time.Hour, streamConfig(t, js, events.StreamTicks).Duplicates, "CP_TICKS after straux, cinimport and seeder started")
	require.Equal(t, 20*time.Second, streamConfig(t, js, events.StreamCDC).Duplicates)
	for _, c := range others.Consumers {
		consumerConfig(t, js, c.Stream, c.Config.Durable) // every owner created its durable
	}
	streamConfig(t, js, events.StreamJobs)
	streamConfig(t, js, events.StreamImports)

	// Idempotent: applying again changes nothing anyone can see.
	before := map[string]jetstream.StreamConfig{}
	for _, s := range prod.Streams {
		before[s.Name] = streamConfig(t, js, s.Name)
	}
	require.NoError(t, prod.ApplyAs(ctx, js, events.ServiceOrchestrator))
	for _, svc := range []string{events.ServiceStraux, events.ServiceCinimport, events.ServiceSeeder} {
		require.NoError(t, others.ApplyAs(ctx, js, svc), svc)
	}
	for name, cfg := range before {
		require.Equal(t, cfg, streamConfig(t, js, name), name)
	}
}

// A service that starts before the owner of a stream it needs waits for it instead of creating
// it with its own settings; it creates the shared dead-letter stream and what it owns.
func TestApplyAsWaitsForStreamsItDoesNotOwn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := bareJS(t)
	topo := events.NewTopology(events.TopologyConfig{})

	err := topo.ApplyAs(ctx, js, events.ServiceStraux)
	var missing *events.StreamMissingError
	require.ErrorAs(t, err, &missing)
	require.ErrorContains(t, err, "waiting for stream CP_TICKS (owned by orchestrator)")
	require.ErrorContains(t, err, "waiting for stream CP_UNIVERSE (owned by orchestrator)")
	_, err = js.Stream(ctx, events.StreamTicks)
	require.ErrorIs(t, err, jetstream.ErrStreamNotFound, "straux never creates the orchestrator's stream")
	streamConfig(t, js, events.StreamJobs) // its own
	streamConfig(t, js, events.StreamDLQ)  // shared: created when absent

	// The orchestrator's DLQ settings win over the consumer's copy; a consumer never updates it.
	prod := events.NewTopology(events.TopologyConfig{TickDuplicateWindow: time.Hour})
	for i := range prod.Streams {
		if prod.Streams[i].Name == events.StreamDLQ {
			prod.Streams[i].MaxAge = 60 * 24 * time.Hour
		}
	}
	require.NoError(t, prod.ApplyAs(ctx, js, events.ServiceOrchestrator))
	require.NoError(t, topo.ApplyAs(ctx, js, events.ServiceStraux), "ready once the owner's streams exist")
	require.Equal(t, 60*24*time.Hour, streamConfig(t, js, events.StreamDLQ).MaxAge)
	require.Equal(t, time.Hour, streamConfig(t, js, events.StreamTicks).Duplicates)
	consumerConfig(t, js, events.StreamTicks, events.ConsumerStrauxTicks)
}

// Each service brings its own durables back in line and touches no one else's.
func TestApplyAsUpdatesOnlyItsOwnDurables(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := bareJS(t)
	topo := events.NewTopology(events.TopologyConfig{})
	require.NoError(t, topo.Apply(ctx, js))
	// An operator retunes every durable and CP_JOBS.
	for _, c := range topo.Consumers {
		cfg := c.Config
		cfg.MaxAckPending = 7
		_, err := js.UpdateConsumer(ctx, c.Stream, cfg)
		require.NoError(t, err)
	}
	jobs := streamConfig(t, js, events.StreamJobs)
	jobs.MaxAge = time.Hour
	_, err := js.UpdateStream(ctx, jobs)
	require.NoError(t, err)

	require.NoError(t, topo.ApplyAs(ctx, js, events.ServiceSeeder))
	for _, c := range topo.Consumers {
		got := consumerConfig(t, js, c.Stream, c.Config.Durable).MaxAckPending
		if c.Owner == events.ServiceSeeder {
			require.Equal(t, c.Config.MaxAckPending, got, "%s restored by its owner", c.Config.Durable)
		} else {
			require.Equal(t, 7, got, "%s untouched by the seeder", c.Config.Durable)
		}
	}
	require.Equal(t, time.Hour, streamConfig(t, js, events.StreamJobs).MaxAge, "CP_JOBS untouched by the seeder")

	require.NoError(t, topo.ApplyAs(ctx, js, events.ServiceStraux))
	require.Equal(t, events.JobsMaxAge, streamConfig(t, js, events.StreamJobs).MaxAge, "CP_JOBS restored by straux")
	straux, _ := topo.Consumer(events.ConsumerStrauxTicks)
	require.Equal(t, straux.Config.MaxAckPending, consumerConfig(t, js, events.StreamTicks, events.ConsumerStrauxTicks).MaxAckPending)
	require.Equal(t, 7, consumerConfig(t, js, events.StreamCDC, events.ConsumerCinimportChanges).MaxAckPending)
}

// A durable an operator recreated with a setting the server cannot update in place is named,
// with the way out, instead of an apply that fails the same way forever; the owner's other
// durables are still brought in line.
func TestApplyAsNamesSettingsTheServerCannotUpdate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := bareJS(t)
	topo := events.NewTopology(events.TopologyConfig{})
	require.NoError(t, topo.Apply(ctx, js))

	ticks, _ := topo.Consumer(events.ConsumerCinimportTicks)
	require.NoError(t, js.DeleteConsumer(ctx, events.StreamTicks, events.ConsumerCinimportTicks))
	recreated := ticks.Config
	recreated.DeliverPolicy = jetstream.DeliverAllPolicy
	recreated.MaxDeliver = 9
	_, err := js.CreateConsumer(ctx, events.StreamTicks, recreated)
	require.NoError(t, err)
	changes, _ := topo.Consumer(events.ConsumerCinimportChanges)
	tuned := changes.Config
	tuned.MaxAckPending = 3
	_, err = js.UpdateConsumer(ctx, events.StreamCDC, tuned)
	require.NoError(t, err)

	err = topo.ApplyAs(ctx, js, events.ServiceCinimport)
	var conflict *events.SettingConflictError
	require.ErrorAs(t, err, &conflict)
	require.Equal(t, events.ConsumerCinimportTicks, conflict.Consumer)
	require.Equal(t, []events.SettingDiff{{Setting: "deliver_policy", Live: "all", Declared: "new"}}, conflict.Settings)
	require.ErrorContains(t, err, "consumer cinimport-ticks on stream CP_TICKS: deliver_policy is all on the server but declared new")
	require.ErrorContains(t, err, "nats consumer rm CP_TICKS cinimport-ticks")
	require.Equal(t, changes.Config.MaxAckPending, consumerConfig(t, js, events.StreamCDC, events.ConsumerCinimportChanges).MaxAckPending,
		"the owner's other durable is updated in place")
	require.Equal(t, 9, consumerConfig(t, js, events.StreamTicks, events.ConsumerCinimportTicks).MaxDeliver, "left as the operator made it")

	// Once the operator removes it, the owner recreates it as declared.
	require.NoError(t, js.DeleteConsumer(ctx, events.StreamTicks, events.ConsumerCinimportTicks))
	require.NoError(t, topo.ApplyAs(ctx, js, events.ServiceCinimport))
	got := consumerConfig(t, js, events.StreamTicks, events.ConsumerCinimportTicks)
	require.Equal(t, jetstream.DeliverNewPolicy, got.DeliverPolicy)
	require.Equal(t, ticks.Config.MaxDeliver, got.MaxDeliver)

	// A stream the owner cannot move to its declared storage is named the same way.
	jobs, _ := topo.Stream(events.StreamJobs)
	require.NoError(t, js.DeleteStream(ctx, events.StreamJobs))
	mem := jobs.StreamConfig
	mem.Storage = jetstream.MemoryStorage
	_, err = js.CreateStream(ctx, mem)
	require.NoError(t, err)
	err = topo.ApplyAs(ctx, js, events.ServiceStraux)
	require.ErrorAs(t, err, &conflict)
	require.ErrorContains(t, err, "stream CP_JOBS: storage is Memory on the server but declared File")
}

// cpctl dev lays down the declarations that are missing and leaves existing ones to their owners.
func TestCreateMissingLeavesExistingDeclarations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := bareJS(t)
	prod := events.NewTopology(events.TopologyConfig{TickDuplicateWindow: time.Hour})
	require.NoError(t, prod.ApplyAs(ctx, js, events.ServiceOrchestrator))
	topo := events.NewTopology(events.TopologyConfig{})
	require.NoError(t, topo.CreateMissing(ctx, js))
	require.NoError(t, topo.CreateMissing(ctx, js))
	require.Equal(t, time.Hour, streamConfig(t, js, events.StreamTicks).Duplicates)
	for _, c := range topo.Consumers {
		consumerConfig(t, js, c.Stream, c.Config.Durable)
	}
	streamConfig(t, js, events.StreamImports)

	// The claim bucket too (cpctl dev), created when missing, an existing one left as it is.
	require.Equal(t, events.DefaultClaimMaxBytes, streamConfig(t, js, "OBJ_"+events.ClaimBucket).MaxBytes)
	require.NoError(t, events.NewTopology(events.TopologyConfig{ClaimMaxBytes: 1 << 20}).CreateMissing(ctx, js))
	require.Equal(t, events.DefaultClaimMaxBytes, streamConfig(t, js, "OBJ_"+events.ClaimBucket).MaxBytes)
}

// cpctl dev lays the claim bucket down when nothing else exists yet.
func TestCreateMissingCreatesTheClaimBucket(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := bareJS(t)
	require.NoError(t, events.NewTopology(events.TopologyConfig{}).CreateMissing(ctx, js))
	_, err := js.ObjectStore(ctx, events.ClaimBucket)
	require.NoError(t, err)
	require.NoError(t, events.NewTopology(events.TopologyConfig{}).ApplyAs(ctx, js, events.ServiceSeeder), "a user then finds everything")
}
