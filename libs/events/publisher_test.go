package events_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/events/eventstest"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func streamMsgs(t *testing.T, js jetstream.JetStream, stream, filter string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	require.NoError(t, err)
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	require.NoError(t, err)
	if filter == "" {
		return info.State.Msgs
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}

func changeEvent(i int) events.Event {
	rc := &eventsv1.RowChange{
		Schema: "market", Table: "account_trades", Op: eventsv1.RowChange_OP_INSERT,
		NewValues: map[string]*eventsv1.Value{"trade_id": {Kind: &eventsv1.Value_Text{Text: fmt.Sprint(i)}}},
		CommitLsn: uint64(1000 + i/10), IndexInTx: uint32(i % 10), CommitTime: timestamppb.Now(),
	}
	return events.Event{
		Subject: events.ChangeSubject(rc.Schema, rc.Table, rc.Op),
		ID:      events.ChangeID(rc.CommitLsn, rc.IndexInTx),
		Payload: rc,
	}
}

func TestPublishDeduplicatesByID(t *testing.T) {
	t.Parallel()
	bus := eventstest.NewBus(t)
	ctx := context.Background()
	pub, err := events.NewPublisher(bus.Conn, events.PublisherConfig{Source: "orchestrator"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close(ctx) })

	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tick := events.Event{Subject: events.TickSubject("straux"), ID: events.TickID("straux", start), Payload: sampleTick(start)}

	// Two orchestrators publishing the same period: one message in the stream.
	ack1, err := pub.Publish(ctx, tick)
	require.NoError(t, err)
	require.False(t, ack1.Duplicate)
	ack2, err := pub.Publish(ctx, tick)
	require.NoError(t, err)
	require.True(t, ack2.Duplicate)
	require.Equal(t, ack1.Sequence, ack2.Sequence)

	fut, err := pub.PublishAsync(ctx, tick)
	require.NoError(t, err)
	ack3, err := fut.Wait(ctx)
	require.NoError(t, err)
	require.True(t, ack3.Duplicate)

	require.EqualValues(t, 1, streamMsgs(t, bus.JS, events.StreamTicks, ""))
	st := pub.Stats()
	require.EqualValues(t, 3, st.Acked)
	require.EqualValues(t, 2, st.Duplicates)
	require.Zero(t, st.Failed)

	got := eventstest.Events(t, bus.JS, events.StreamTicks, ">")
	require.Len(t, got, 1)
	require.Equal(t, tick.ID, got[0].ID)
	require.Equal(t, "orchestrator", got[0].Source)
}

func TestPublishAsyncReportsEveryAckWithinBound(t *testing.T) {
	t.Parallel()
	bus := eventstest.NewBus(t)
	ctx := context.Background()

	const n, bound = 2000, 32
	var (
		mu      sync.Mutex
		results = map[string]events.Result{}
		maxSeen atomic.Int64
		pub     *events.Publisher
	)
	pub, err := events.NewPublisher(bus.Conn, events.PublisherConfig{
		Source:      "orchestrator",
		MaxInFlight: bound,
		OnResult: func(r events.Result) {
			mu.Lock()
			results[r.ID] = r
			mu.Unlock()
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close(ctx) })

	futures := make([]*events.Future, 0, n)
	for i := range n {
		fut, err := pub.PublishAsync(ctx, changeEvent(i))
		require.NoError(t, err)
		futures = append(futures, fut)
		if in := int64(pub.Stats().InFlight); in > maxSeen.Load() {
			maxSeen.Store(in)
		}
	}
	require.NoError(t, pub.Flush(ctx))

	require.LessOrEqual(t, maxSeen.Load(), int64(bound))
	require.Len(t, results, n, "OnResult once per publish, before Flush returns")
	seqs := map[uint64]bool{}
	for _, f := range futures {
		select {
		case <-f.Done():
		default:
			t.Fatal("future not resolved after Flush")
		}
		r := f.Result()
		require.NoError(t, r.Err)
		require.False(t, r.Ack.Duplicate)
		require.Equal(t, events.StreamCDC, r.Ack.Stream)
		seqs[r.Ack.Sequence] = true
	}
	require.Len(t, seqs, n)
	require.EqualValues(t, n, streamMsgs(t, bus.JS, events.StreamCDC, ""))
	st := pub.Stats()
	require.EqualValues(t, n, st.Acked)
	require.Zero(t, st.InFlight)
}

func TestPublishAsyncBlocksAtMaxInFlightAndReportsFailures(t *testing.T) {
	t.Parallel()
	bus := eventstest.NewBus(t)
	ctx := context.Background()

	// A plain subscriber that never replies: publishes to it get no PubAck (and no "no
	// responders"), so they stay in flight until the ack timeout.
	sub, err := bus.Conn.SubscribeSync("hold.>")
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })

	var failures atomic.Int64
	pub, err := events.NewPublisher(bus.Conn, events.PublisherConfig{
		Source:        "test",
		MaxInFlight:   2,
		AckTimeout:    time.Second,
		RetryAttempts: -1,
		OnResult: func(r events.Result) {
			if r.Err != nil {
				failures.Add(1)
			}
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close(ctx) })

	ev := func(i int) events.Event {
		return events.Event{Subject: fmt.Sprintf("hold.%d", i), ID: events.NewID(), Payload: &eventsv1.Tick{}}
	}
	f1, err := pub.PublishAsync(ctx, ev(1))
	require.NoError(t, err)
	f2, err := pub.PublishAsync(ctx, ev(2))
	require.NoError(t, err)
	require.Equal(t, 2, pub.Stats().InFlight)

	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = pub.PublishAsync(short, ev(3))
	require.ErrorIs(t, err, context.DeadlineExceeded, "third publish waits for a slot")

	// The two resolve as failures; the third fits afterwards.
	for _, f := range []*events.Future{f1, f2} {
		_, err := f.Wait(ctx)
		require.ErrorIs(t, err, jetstream.ErrAsyncPublishTimeout)
	}
	require.NoError(t, pub.Flush(ctx))
	require.EqualValues(t, 2, failures.Load())
	require.EqualValues(t, 2, pub.Stats().Failed)
	waitCtx, cancel2 := context.WithTimeout(ctx, 3*time.Second)
	defer cancel2()
	_, err = pub.PublishAsync(waitCtx, ev(4))
	require.NoError(t, err)
}

func TestPublishAsyncSurvivesServerRestart(t *testing.T) {
	t.Parallel()
	bus := eventstest.NewBus(t)
	ctx := context.Background()

	var resolved atomic.Int64
	pub, err := events.NewPublisher(bus.Conn, events.PublisherConfig{
		Source:      "orchestrator",
		MaxInFlight: 64,
		AckTimeout:  2 * time.Second,
		OnResult:    func(events.Result) { resolved.Add(1) },
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close(ctx) })

	const n = 600
	futures := make([]*events.Future, n)
	evs := make([]events.Event, n)
	restarted := make(chan struct{})
	for i := range n {
		if i == n/3 {
			// Restart while publishes are in flight.
			go func() {
				defer close(restarted)
				bus.Server.Restart(t)
			}()
		}
		evs[i] = changeEvent(i)
		futures[i], err = pub.PublishAsync(ctx, evs[i])
		require.NoError(t, err, "event %d", i)
		if i%50 == 0 {
			time.Sleep(10 * time.Millisecond) // spread the publishes over the restart
		}
	}
	<-restarted
	flushCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	require.NoError(t, pub.Flush(flushCtx))
	require.EqualValues(t, n, resolved.Load(), "every publish reported")

	// Whatever failed for good is reported, and a republish (same ids) completes the set.
	var failed int
	for i, f := range futures {
		if r := f.Result(); r.Err != nil {
			failed++
			_, err := pub.Publish(ctx, evs[i])
			require.NoError(t, err)
		}
	}
	st := pub.Stats()
	t.Logf("restart: retries=%d duplicates=%d failed=%d", st.Retries, st.Duplicates, failed)
	require.EqualValues(t, n, streamMsgs(t, bus.JS, events.StreamCDC, ""), "no gap, no double after de-duplication")
}

func TestPublisherRejectsAfterClose(t *testing.T) {
	t.Parallel()
	bus := eventstest.NewBus(t)
	ctx := context.Background()
	pub, err := events.NewPublisher(bus.Conn, events.PublisherConfig{Source: "s"})
	require.NoError(t, err)
	_, err = pub.PublishAsync(ctx, changeEvent(1))
	require.NoError(t, err)
	require.NoError(t, pub.Close(ctx))
	require.Zero(t, pub.Stats().InFlight)
	_, err = pub.PublishAsync(ctx, changeEvent(2))
	require.True(t, errors.Is(err, events.ErrPublisherClosed))
	_, err = pub.Publish(ctx, changeEvent(2))
	require.ErrorIs(t, err, events.ErrPublisherClosed)
	require.NoError(t, pub.Close(ctx), "Close twice is fine")
}

// A row change larger than max_payload (a 2 MB text value) fails to publish without a
// claim-check and is stored as a reference with one, through Publish and PublishAsync alike; a
// replay of the same id is still a JetStream duplicate.
func TestPublisherOffloadsLargeEventsWithAClaimCheck(t *testing.T) {
	t.Parallel()
	bus := eventstest.NewBus(t)
	ctx := context.Background()
	large := func(i int) events.Event {
		ev := changeEvent(i)
		ev.Payload.(*eventsv1.RowChange).CommitTime = timestamppb.New(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
		ev.Payload.(*eventsv1.RowChange).NewValues["label"] = &eventsv1.Value{Kind: &eventsv1.Value_Text{Text: strings.Repeat("l", 2<<20)}}
		return ev
	}

	plain, err := events.NewPublisher(bus.Conn, events.PublisherConfig{Source: "orchestrator", RetryAttempts: -1})
	require.NoError(t, err)
	t.Cleanup(func() { _ = plain.Close(ctx) })
	_, err = plain.Publish(ctx, large(1))
	require.ErrorIs(t, err, nats.ErrMaxPayload)

	pub, err := events.NewPublisher(bus.Conn, events.PublisherConfig{Source: "orchestrator", ClaimCheck: bus.Claims})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close(ctx) })
	_, err = pub.Publish(ctx, large(1))
	require.NoError(t, err)
	fut, err := pub.PublishAsync(ctx, large(2))
	require.NoError(t, err)
	_, err = fut.Wait(ctx)
	require.NoError(t, err)
	ack, err := pub.Publish(ctx, large(1))
	require.NoError(t, err)
	require.True(t, ack.Duplicate, "a replayed large event keeps its de-duplication")

	got := eventstest.Events(t, bus.JS, events.StreamCDC, ">")
	require.Len(t, got, 2)
	for i, ev := range got {
		require.True(t, strings.HasPrefix(ev.Header.Get(events.HeaderClaim), events.ClaimBucket+"/"+large(i+1).ID+"/"))
		require.Len(t, ev.Payload.(*eventsv1.RowChange).NewValues["label"].GetText(), 2<<20)
	}
	st := bus.Claims.Stats()
	require.EqualValues(t, 3, st.Offloaded, "the replay named the same object")
	objs, err := func() ([]*jetstream.ObjectInfo, error) {
		store, err := bus.JS.ObjectStore(ctx, events.ClaimBucket)
		if err != nil {
			return nil, err
		}
		return store.List(ctx)
	}()
	require.NoError(t, err)
	require.Len(t, objs, 2)
}
