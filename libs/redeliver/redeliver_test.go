package redeliver_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/config"
	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/redeliver"
	"cryptopill.dev/jobs/libs/service"
	"cryptopill.dev/jobs/libs/testkit/natstest"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
)

// bundle is a real NATS with the platform's streams and a running "seeder" process (the real
// service runtime, its ops endpoint included) whose seeder-universe handler a test can break.
type bundle struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	cl      *redeliver.Client
	broken  atomic.Bool
	mu      sync.Mutex
	handled []string // ids the handler succeeded on, with how they came
}

func setup(t *testing.T) *bundle {
	t.Helper()
	t.Parallel()
	ns := natstest.NewServer(t)
	b := &bundle{nc: ns.Connect(t)}
	var err error
	b.js, err = jetstream.New(b.nc)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, events.NewTopology(events.TopologyConfig{}).ApplyAs(ctx, b.js, events.ServiceOrchestrator))
	running := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- service.Start(ctx, service.Options{Name: events.ServiceSeeder, NoDatabase: true, NoHTTP: true,
			Common: config.Common{Env: config.EnvDev, NATSURL: ns.URL, ShutdownGrace: 5 * time.Second},
			Logger: slog.New(slog.DiscardHandler)},
			func(ctx context.Context, p *service.Process) error {
				c, err := events.NewConsumer(ctx, p.JS, events.ConsumerConfig{Stream: events.StreamUniverse, Durable: events.ConsumerSeederUniverse,
					Logger: p.Logger, DeadLetterRetryWait: 20 * time.Millisecond, DeadLetterRetryMax: 100 * time.Millisecond,
					Handler: func(ctx context.Context, ev events.Event) error {
						if b.broken.Load() {
							return events.Permanent(errors.New("seeding is broken"))
						}
						mode, _ := events.OperatorDelivery(ctx)
						b.mu.Lock()
						b.handled = append(b.handled, ev.ID+"/"+string(mode))
						b.mu.Unlock()
						return nil
					}})
				if err != nil {
					return err
				}
				p.Events.AddConsumer(c)
				close(running)
				return c.Run(ctx)
			})
	}()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	select {
	case <-running:
	case err := <-done:
		t.Fatalf("service stopped: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("service did not start")
	}
	b.cl, err = redeliver.New(redeliver.Config{NC: b.nc, Timeout: 10 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	return b
}

func (b *bundle) publish(t *testing.T, id string) {
	t.Helper()
	msg, err := events.Encode(context.Background(), events.Event{Subject: events.SubjectUniverseChanged, ID: id, Source: "test",
		Payload: &eventsv1.UniverseChanged{Version: id}})
	require.NoError(t, err)
	_, err = b.js.PublishMsg(context.Background(), msg)
	require.NoError(t, err)
}

func (b *bundle) deadLetters(t *testing.T) []redeliver.DeadLetter {
	t.Helper()
	dls, err := b.cl.DeadLetters(context.Background(), redeliver.Filter{})
	require.NoError(t, err)
	return dls
}

func (b *bundle) durable(t *testing.T) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := b.js.Consumer(context.Background(), events.StreamUniverse, events.ConsumerSeederUniverse)
	require.NoError(t, err)
	info, err := c.Info(context.Background())
	require.NoError(t, err)
	return info
}

// A dead letter re-driven while its consumer is still broken is dead-lettered anew (a new entry,
// the old one removed only then); once fixed, the re-drive is handled by that consumer alone and
// the entry removed. Nothing is lost either way, and the durable is never touched.
func TestRedriveReachesTheDeadLetteringConsumerAndLosesNothing(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	// Another reader of the subject: a re-drive must not reach it.
	other, err := b.nc.SubscribeSync(events.SubjectUniverseChanged)
	require.NoError(t, err)

	b.broken.Store(true)
	b.publish(t, "u-1")
	// A malformed message: no envelope at all.
	_, err = b.js.Publish(ctx, events.SubjectUniverseChanged, []byte(`{"version":"x"}`))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(b.deadLetters(t)) == 2 }, 30*time.Second, 50*time.Millisecond)
	_, _ = other.NextMsg(time.Second)
	_, _ = other.NextMsg(time.Second)

	dls := b.deadLetters(t)
	require.Equal(t, events.ConsumerSeederUniverse, dls[0].Consumer)
	require.Equal(t, eventsv1.DeadLetter_REASON_REJECTED.String(), dls[0].Reason)
	require.Equal(t, eventsv1.DeadLetter_REASON_UNDECODABLE.String(), dls[1].Reason)
	sum := b.cl.Summarize(dls)
	require.Len(t, sum, 1)
	require.Equal(t, 2, sum[0].Count)
	require.Equal(t, events.ServiceSeeder, sum[0].Service)
	before := b.durable(t)

	// Still broken: both come back as new entries; the old ones are gone only once those exist.
	rep, err := b.cl.Redrive(ctx, dls, nil)
	require.NoError(t, err)
	require.Equal(t, 2, rep.DeadLettered, "%+v", rep)
	again := b.deadLetters(t)
	require.Len(t, again, 2)
	for i, dl := range again {
		require.Equal(t, dls[i].Seq, dl.RedrivenFrom)
		require.Equal(t, rep.Results[i].NewSeq, dl.Seq)
		require.Equal(t, dls[i].StreamSeq, dl.StreamSeq)
		require.Contains(t, dl.Error, "re-drive of dead letter")
	}

	// Fixed: the event is handled (as a re-drive) and its entry removed; the malformed one can
	// never be handled and is kept, as a new entry.
	b.broken.Store(false)
	rep, err = b.cl.Redrive(ctx, again, nil)
	require.NoError(t, err)
	require.Equal(t, 1, rep.OK)
	require.Equal(t, 1, rep.DeadLettered)
	left := b.deadLetters(t)
	require.Len(t, left, 1)
	require.Equal(t, eventsv1.DeadLetter_REASON_UNDECODABLE.String(), left[0].Reason)
	b.mu.Lock()
	require.Equal(t, []string{"u-1/redrive"}, b.handled)
	b.mu.Unlock()

	_, err = other.NextMsg(200 * time.Millisecond)
	require.ErrorIs(t, err, nats.ErrTimeout, "no other reader of the subject saw a re-drive")
	after := b.durable(t)
	require.Equal(t, before.Delivered, after.Delivered, "the durable delivered nothing more")
	require.Equal(t, before.AckFloor, after.AckFloor)
	require.Equal(t, before.Config, after.Config)

	// Filters.
	got, err := b.cl.DeadLetters(ctx, redeliver.Filter{Consumer: "cinimport-changes"})
	require.NoError(t, err)
	require.Empty(t, got)
	got, err = b.cl.DeadLetters(ctx, redeliver.Filter{Subject: "cp.universe.*"})
	require.NoError(t, err)
	require.Len(t, got, 1)

	n, err := b.cl.PurgeConsumer(ctx, events.ConsumerSeederUniverse)
	require.NoError(t, err)
	require.Equal(t, uint64(1), n)
	require.Empty(t, b.deadLetters(t))
}

// A re-drive with no replica to take it keeps every entry.
func TestRedriveWithoutAReplicaKeepsTheEntries(t *testing.T) {
	b := setup(t)
	b.broken.Store(true)
	b.publish(t, "u-2")
	require.Eventually(t, func() bool { return len(b.deadLetters(t)) == 1 }, 30*time.Second, 50*time.Millisecond)
	dls := b.deadLetters(t)
	dls[0].Consumer = events.ConsumerCinimportChanges // its owner, cinimport, is not running
	rep, err := b.cl.Redrive(context.Background(), dls, nil)
	require.NoError(t, err)
	require.Equal(t, 1, rep.Failed)
	require.Contains(t, rep.Results[0].Error, "no replica of cinimport")
	require.False(t, rep.Results[0].Removed)
	require.Len(t, b.deadLetters(t), 1)
}

// Replay hands a stream range to the durable's handler without touching the durable.
func TestReplayRunsTheHandlerOverARange(t *testing.T) {
	b := setup(t)
	for _, id := range []string{"a", "b", "c"} {
		b.publish(t, id)
	}
	require.Eventually(t, func() bool { return b.durable(t).AckFloor.Stream == 3 }, 30*time.Second, 50*time.Millisecond)
	before := b.durable(t)
	var total uint64
	done := 0
	rep, err := b.cl.Replay(context.Background(), redeliver.ReplayOptions{Stream: events.StreamUniverse, Service: events.ServiceSeeder, StartSeq: 2},
		func(n uint64) { total = n }, func(n int) { done += n })
	require.NoError(t, err)
	require.Equal(t, uint64(2), total)
	require.Equal(t, 2, done)
	require.Equal(t, redeliver.ReplayReport{Stream: events.StreamUniverse, Service: events.ServiceSeeder, Durable: events.ConsumerSeederUniverse,
		Filters: []string{events.SubjectUniverseChanged}, FirstSeq: 2, LastSeq: 3, Messages: 2, OK: 2}, rep)
	b.mu.Lock()
	require.Equal(t, []string{"a/", "b/", "c/", "b/replay", "c/replay"}, b.handled)
	b.mu.Unlock()
	after := b.durable(t)
	require.Equal(t, before.Delivered, after.Delivered)
	require.Equal(t, before.Config, after.Config)
	// The temporary consumer is gone.
	s, err := b.js.Stream(context.Background(), events.StreamUniverse)
	require.NoError(t, err)
	info, err := s.Info(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, info.State.Consumers)

	_, err = b.cl.Replay(context.Background(), redeliver.ReplayOptions{Stream: events.StreamUniverse, Service: events.ServiceSeeder}, nil, nil)
	require.ErrorContains(t, err, "exactly one start")
	_, err = b.cl.Replay(context.Background(), redeliver.ReplayOptions{Stream: events.StreamUniverse, Service: events.ServiceStraux, StartSeq: 1}, nil, nil)
	require.ErrorContains(t, err, "straux runs no durable on CP_UNIVERSE")
}

func TestSubjectMatches(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		f, s string
		want bool
	}{
		{"cp.tick.straux", "cp.tick.straux", true}, {"cp.tick.*", "cp.tick.straux", true}, {"cp.>", "cp.tick.straux", true},
		{"cp.tick.*", "cp.tick.straux.x", false}, {"cp.tick", "cp.tick.straux", false}, {"cp.tick.>", "cp.tick", false},
		{"cp.cdc.cin_aux.rt_session.*", "cp.cdc.cin_aux.rt_session.update", true},
	} {
		require.Equal(t, c.want, redeliver.SubjectMatches(c.f, c.s), "%s ~ %s", c.f, c.s)
	}
}

// The deliver endpoint refuses, with a reason, what it cannot do.
func TestDeliverEndpointRefusals(t *testing.T) {
	b := setup(t)
	for body, want := range map[string]string{
		`{"durable":"nope","mode":"replay"}`:            `seeder runs no consumer "nope" (it runs [seeder-universe])`,
		`{"durable":"seeder-universe","mode":"resend"}`: `mode "resend": want "redrive" or "replay"`,
		`not json`: "deliver: request body",
	} {
		msg, err := b.nc.Request(service.OpsSubject(events.ServiceSeeder, service.DeliverEndpoint), []byte(body), 5*time.Second)
		require.NoError(t, err)
		require.Contains(t, msg.Header.Get("Nats-Service-Error"), want, body)
	}
}
