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

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/events/eventstest"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
)

// consumerBundle is what a consumer test needs: a bus with a test durable on cp.tick.test, a
// publisher, and a way to run a Consumer in the background.
type consumerBundle struct {
	bus *eventstest.Bus
	pub *events.Publisher
	tp  *sdktrace.TracerProvider
	rec *tracetest.SpanRecorder
}

const (
	testDurable = "test-ticks"
	testSubject = "cp.tick.test"
)

func setupConsumer(t *testing.T, ackWait time.Duration) *consumerBundle {
	t.Helper()
	bus := eventstest.NewBus(t, events.ConsumerDecl{Stream: events.StreamTicks, Config: jetstream.ConsumerConfig{
		Durable:       testDurable,
		FilterSubject: testSubject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		BackOff:       []time.Duration{ackWait, ackWait},
		MaxDeliver:    4, // three handler attempts and the delivery reserved for the dead letter
	}})
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	pub, err := events.NewPublisher(bus.Conn, events.PublisherConfig{Source: "test", TracerProvider: tp})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close(context.Background()) })
	return &consumerBundle{bus: bus, pub: pub, tp: tp, rec: rec}
}

// run starts a Consumer with cfg (Stream, Durable and TracerProvider filled in) and returns a
// stop function that cancels it and returns Run's error.
func (b *consumerBundle) run(t *testing.T, cfg events.ConsumerConfig) (*events.Consumer, func() error) {
	t.Helper()
	cfg.Stream, cfg.Durable, cfg.TracerProvider = events.StreamTicks, testDurable, b.tp
	return startConsumer(t, b.bus.JS, cfg)
}

// startConsumer runs a Consumer with cfg in the background and returns a stop function that
// cancels it and returns Run's error (also called at cleanup).
func startConsumer(t *testing.T, js jetstream.JetStream, cfg events.ConsumerConfig) (*events.Consumer, func() error) {
	t.Helper()
	c, err := events.NewConsumer(context.Background(), js, cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return c, stop
}

func (b *consumerBundle) publishTick(t *testing.T, module string, at time.Time) string {
	t.Helper()
	id := events.TickID(module, at)
	_, err := b.pub.Publish(context.Background(), events.Event{Subject: testSubject, ID: id, Payload: sampleTick(at)})
	require.NoError(t, err)
	return id
}

func deadLetters(t *testing.T, js jetstream.JetStream) []*eventsv1.DeadLetter {
	t.Helper()
	var out []*eventsv1.DeadLetter
	for _, ev := range eventstest.Events(t, js, events.StreamDLQ, events.DeadLetterSubject(testDurable)) {
		out = append(out, ev.Payload.(*eventsv1.DeadLetter))
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 15*time.Second, 20*time.Millisecond, what)
}

func TestConsumerDeadLettersMalformedAndKeepsGoing(t *testing.T) {
	t.Parallel()
	b := setupConsumer(t, time.Second)
	ctx := context.Background()

	var handled sync.Map
	c, _ := b.run(t, events.ConsumerConfig{Handler: func(_ context.Context, ev events.Event) error {
		handled.Store(ev.ID, ev.Payload)
		return nil
	}})

	// Not an event at all, then a well-formed envelope with a payload that does not parse.
	_, err := b.bus.JS.Publish(ctx, testSubject, []byte("not json"))
	require.NoError(t, err)
	bad, err := events.Encode(ctx, events.Event{Subject: testSubject, ID: "bad-payload", Source: "test", Payload: &eventsv1.Tick{}})
	require.NoError(t, err)
	bad.Data = []byte(`{"module":`)
	_, err = b.bus.JS.PublishMsg(ctx, bad)
	require.NoError(t, err)
	good := b.publishTick(t, "test", time.Unix(1_700_000_000, 0))

	waitFor(t, "good message handled after the malformed ones", func() bool { _, ok := handled.Load(good); return ok })
	waitFor(t, "two dead letters", func() bool { return len(deadLetters(t, b.bus.JS)) == 2 })

	dls := deadLetters(t, b.bus.JS)
	require.Equal(t, eventsv1.DeadLetter_REASON_UNDECODABLE, dls[0].Reason)
	require.Equal(t, testSubject, dls[0].OriginalSubject)
	require.Equal(t, []byte("not json"), dls[0].OriginalPayload)
	require.Contains(t, dls[0].Error, "ce-specversion")
	require.Equal(t, events.StreamTicks, dls[0].Stream)
	require.EqualValues(t, 1, dls[0].StreamSequence)
	require.Equal(t, testDurable, dls[0].Consumer)
	require.EqualValues(t, 1, dls[0].DeliveryCount)
	require.NotNil(t, dls[0].FailedAt)

	require.Equal(t, eventsv1.DeadLetter_REASON_UNDECODABLE, dls[1].Reason)
	require.Equal(t, []byte(`{"module":`), dls[1].OriginalPayload)
	require.Equal(t, []string{"bad-payload"}, dls[1].OriginalHeaders["ce-id"].GetValues())
	require.Equal(t, []string{"cryptopill.tick.v1"}, dls[1].OriginalHeaders["ce-type"].GetValues())

	// The dead letters are themselves events, de-duplicated per (stream, seq, consumer).
	dlEvents := eventstest.Events(t, b.bus.JS, events.StreamDLQ, ">")
	require.Equal(t, events.DeadLetterID(events.StreamTicks, 1, testDurable), dlEvents[0].ID)
	require.Equal(t, "cp.dlq.test-ticks", dlEvents[0].Subject)

	waitFor(t, "stats", func() bool { st := c.Stats(); return st.DeadLettered == 2 && st.Acked == 1 })
	col := events.NewCollector()
	col.AddConsumer(c)
	require.NoError(t, promtestutil.CollectAndCompare(col, strings.NewReader(`
# HELP cp_events_consumed_total Messages settled by a consumer, by outcome.
# TYPE cp_events_consumed_total counter
cp_events_consumed_total{consumer="test-ticks",outcome="acked"} 1
cp_events_consumed_total{consumer="test-ticks",outcome="dead_letter_failed"} 0
cp_events_consumed_total{consumer="test-ticks",outcome="dead_lettered"} 2
cp_events_consumed_total{consumer="test-ticks",outcome="retried"} 0
`), "cp_events_consumed_total"))
	waitFor(t, "nothing left pending", func() bool {
		ci, err := b.bus.JS.Consumer(ctx, events.StreamTicks, testDurable)
		require.NoError(t, err)
		info, err := ci.Info(ctx)
		require.NoError(t, err)
		return info.NumAckPending == 0 && info.NumPending == 0
	})
}

func TestConsumerDeadLettersAfterMaxDeliver(t *testing.T) {
	t.Parallel()
	b := setupConsumer(t, 200*time.Millisecond)

	var calls atomic.Int64
	var deliveries []uint64
	var mu sync.Mutex
	c, _ := b.run(t, events.ConsumerConfig{Handler: func(_ context.Context, ev events.Event) error {
		calls.Add(1)
		mu.Lock()
		deliveries = append(deliveries, ev.Metadata.NumDelivered)
		mu.Unlock()
		return errors.New("exchange unavailable")
	}})
	b.publishTick(t, "test", time.Unix(1_700_000_040, 0))
	after := b.publishTick(t, "test", time.Unix(1_700_000_080, 0))

	waitFor(t, "both dead-lettered", func() bool { return len(deadLetters(t, b.bus.JS)) == 2 })
	dl := deadLetters(t, b.bus.JS)[0]
	require.Equal(t, eventsv1.DeadLetter_REASON_RETRIES_EXHAUSTED, dl.Reason)
	require.Equal(t, "exchange unavailable", dl.Error)
	require.EqualValues(t, 3, dl.DeliveryCount)
	require.Equal(t, []string{events.TickID("test", time.Unix(1_700_000_040, 0))}, dl.OriginalHeaders["ce-id"].GetValues())
	require.Equal(t, []string{after}, deadLetters(t, b.bus.JS)[1].OriginalHeaders["ce-id"].GetValues())

	require.EqualValues(t, 6, calls.Load(), "three attempts for each of two messages")
	mu.Lock()
	require.ElementsMatch(t, []uint64{1, 1, 2, 2, 3, 3}, deliveries)
	mu.Unlock()
	st := c.Stats()
	require.EqualValues(t, 4, st.Retried)
	require.EqualValues(t, 2, st.DeadLettered)
}

func TestConsumerPermanentErrorDeadLettersAtOnce(t *testing.T) {
	t.Parallel()
	b := setupConsumer(t, time.Second)
	var calls atomic.Int64
	b.run(t, events.ConsumerConfig{Handler: func(context.Context, events.Event) error {
		calls.Add(1)
		return events.Permanent(errors.New("unknown module"))
	}})
	b.publishTick(t, "test", time.Unix(1_700_000_000, 0))
	waitFor(t, "dead letter", func() bool { return len(deadLetters(t, b.bus.JS)) == 1 })
	dl := deadLetters(t, b.bus.JS)[0]
	require.Equal(t, eventsv1.DeadLetter_REASON_REJECTED, dl.Reason)
	require.EqualValues(t, 1, dl.DeliveryCount)
	require.EqualValues(t, 1, calls.Load())
}

func TestConsumerRecoversPanicsAndRetries(t *testing.T) {
	t.Parallel()
	b := setupConsumer(t, 200*time.Millisecond)
	var calls atomic.Int64
	c, _ := b.run(t, events.ConsumerConfig{Handler: func(context.Context, events.Event) error {
		if calls.Add(1) == 1 {
			panic("boom")
		}
		return nil
	}})
	b.publishTick(t, "test", time.Unix(1_700_000_000, 0))
	waitFor(t, "acked on the second delivery", func() bool { return c.Stats().Acked == 1 })
	require.EqualValues(t, 2, calls.Load())
	require.EqualValues(t, 1, c.Stats().Retried)
	require.Empty(t, deadLetters(t, b.bus.JS))
}

func TestConsumerHeartbeatsLongHandlers(t *testing.T) {
	t.Parallel()
	b := setupConsumer(t, 300*time.Millisecond)
	var calls atomic.Int64
	c, _ := b.run(t, events.ConsumerConfig{Handler: func(ctx context.Context, _ events.Event) error {
		calls.Add(1)
		select {
		case <-time.After(1500 * time.Millisecond): // five ack waits
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}})
	b.publishTick(t, "test", time.Unix(1_700_000_000, 0))
	waitFor(t, "acked", func() bool { return c.Stats().Acked == 1 })
	time.Sleep(400 * time.Millisecond) // a redelivery would have shown up by now
	require.EqualValues(t, 1, calls.Load(), "no redelivery while the handler runs")
}

func TestConsumerHandlerTimeout(t *testing.T) {
	t.Parallel()
	b := setupConsumer(t, 200*time.Millisecond)
	b.run(t, events.ConsumerConfig{
		HandlerTimeout: 50 * time.Millisecond,
		Handler: func(ctx context.Context, _ events.Event) error {
			<-ctx.Done()
			return ctx.Err()
		},
	})
	b.publishTick(t, "test", time.Unix(1_700_000_000, 0))
	waitFor(t, "dead letter after timeouts", func() bool { return len(deadLetters(t, b.bus.JS)) == 1 })
	require.Contains(t, deadLetters(t, b.bus.JS)[0].Error, context.DeadlineExceeded.Error())
}

func TestConsumerStopsGracefully(t *testing.T) {
	t.Parallel()
	b := setupConsumer(t, time.Second)
	ctx := context.Background()

	started := make(chan struct{})
	var finished atomic.Bool
	var calls atomic.Int64
	_, stop := b.run(t, events.ConsumerConfig{Handler: func(hctx context.Context, _ events.Event) error {
		if calls.Add(1) == 1 {
			close(started)
		}
		select {
		case <-time.After(500 * time.Millisecond):
		case <-hctx.Done():
			return hctx.Err() // only after ShutdownTimeout
		}
		finished.Store(true)
		return nil
	}})
	b.publishTick(t, "test", time.Unix(1_700_000_000, 0))
	<-started

	require.NoError(t, stop())
	require.True(t, finished.Load(), "Run returned only after the in-flight handler finished")

	waitFor(t, "in-flight message acked", func() bool {
		cons, err := b.bus.JS.Consumer(ctx, events.StreamTicks, testDurable)
		require.NoError(t, err)
		info, err := cons.Info(ctx)
		require.NoError(t, err)
		return info.NumAckPending == 0 && info.AckFloor.Stream == 1
	})

	// Nothing is pulled after the stop: a later message waits for the next consumer.
	b.publishTick(t, "test", time.Unix(1_700_000_040, 0))
	time.Sleep(200 * time.Millisecond)
	require.EqualValues(t, 1, calls.Load())
	cons, err := b.bus.JS.Consumer(ctx, events.StreamTicks, testDurable)
	require.NoError(t, err)
	info, err := cons.Info(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, info.NumPending)
}

func TestConsumerRunsHandlersConcurrently(t *testing.T) {
	t.Parallel()
	b := setupConsumer(t, time.Second)
	var running, peak atomic.Int64
	c, _ := b.run(t, events.ConsumerConfig{Concurrency: 4, Handler: func(context.Context, events.Event) error {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
		running.Add(-1)
		return nil
	}})
	for i := range 12 {
		b.publishTick(t, "test", time.Unix(1_700_000_000+int64(i)*40, 0))
	}
	waitFor(t, "all acked", func() bool { return c.Stats().Acked == 12 })
	require.LessOrEqual(t, peak.Load(), int64(4))
	require.Greater(t, peak.Load(), int64(1))
}

func TestConsumerContinuesTheTrace(t *testing.T) {
	t.Parallel()
	b := setupConsumer(t, time.Second)
	handled := make(chan trace.SpanContext, 1)
	b.run(t, events.ConsumerConfig{Handler: func(ctx context.Context, _ events.Event) error {
		handled <- trace.SpanContextFromContext(ctx)
		return nil
	}})

	ctx, parent := b.tp.Tracer("test").Start(context.Background(), "orchestrator tick")
	_, err := b.pub.Publish(ctx, events.Event{Subject: testSubject, ID: "traced", Payload: sampleTick(time.Unix(0, 0))})
	require.NoError(t, err)
	parent.End()

	var hsc trace.SpanContext
	select {
	case hsc = <-handled:
	case <-time.After(15 * time.Second):
		t.Fatal("not handled")
	}
	require.Equal(t, parent.SpanContext().TraceID(), hsc.TraceID())

	var producer, consumer sdktrace.ReadOnlySpan
	waitFor(t, "spans ended", func() bool {
		producer, consumer = nil, nil
		for _, s := range b.rec.Ended() {
			switch s.SpanKind() {
			case trace.SpanKindProducer:
				producer = s
			case trace.SpanKindConsumer:
				consumer = s
			}
		}
		return producer != nil && consumer != nil
	})
	require.Equal(t, "send "+testSubject, producer.Name())
	require.Equal(t, "process "+testSubject, consumer.Name())
	require.Equal(t, parent.SpanContext().SpanID(), producer.Parent().SpanID())
	require.Equal(t, producer.SpanContext().SpanID(), consumer.Parent().SpanID(), "consumer span is a child of the producer span")
	require.True(t, consumer.Parent().IsRemote())
	require.Equal(t, hsc.SpanID(), consumer.SpanContext().SpanID(), "the handler runs inside the consumer span")
}

func TestNewConsumerNeedsADeclaredDurable(t *testing.T) {
	t.Parallel()
	bus := eventstest.NewBus(t)
	_, err := events.NewConsumer(context.Background(), bus.JS, events.ConsumerConfig{
		Stream: events.StreamTicks, Durable: "nobody", Handler: func(context.Context, events.Event) error { return nil },
	})
	require.ErrorIs(t, err, jetstream.ErrConsumerNotFound)
}

func TestRunTwiceIsRefused(t *testing.T) {
	t.Parallel()
	b := setupConsumer(t, time.Second)
	handled := make(chan struct{}, 1)
	c, _ := b.run(t, events.ConsumerConfig{Handler: func(context.Context, events.Event) error {
		handled <- struct{}{}
		return nil
	}})
	b.publishTick(t, "test", time.Unix(1_700_000_000, 0))
	<-handled // Run is certainly running now
	require.ErrorIs(t, c.Run(context.Background()), events.ErrAlreadyRunning)
}

// A process that dies during the last handler attempt leaves the message unsettled; the delivery
// reserved beyond the attempts dead-letters it instead of stranding it in its stream.
func TestConsumerDeadLettersAfterALastAttemptThatNeverSettled(t *testing.T) {
	t.Parallel()
	b := setupConsumer(t, 200*time.Millisecond)
	ctx := context.Background()
	id := b.publishTick(t, "test", time.Unix(1_700_000_120, 0))

	// The "crashed" attempts: three deliveries taken and never settled, as by a dying process.
	raw, err := b.bus.JS.Consumer(ctx, events.StreamTicks, testDurable)
	require.NoError(t, err)
	for want := uint64(1); want <= 3; {
		batch, err := raw.Fetch(1, jetstream.FetchMaxWait(2*time.Second))
		require.NoError(t, err)
		for msg := range batch.Messages() {
			md, err := msg.Metadata()
			require.NoError(t, err)
			require.Equal(t, want, md.NumDelivered)
			want++
		}
	}

	var calls atomic.Int64
	c, _ := b.run(t, events.ConsumerConfig{Handler: func(context.Context, events.Event) error {
		calls.Add(1)
		return nil
	}})
	waitFor(t, "dead letter on the reserved delivery", func() bool { return len(deadLetters(t, b.bus.JS)) == 1 })
	dl := deadLetters(t, b.bus.JS)[0]
	require.Equal(t, eventsv1.DeadLetter_REASON_RETRIES_EXHAUSTED, dl.Reason)
	require.Contains(t, dl.Error, "never settled")
	require.Contains(t, dl.Error, "left no record of a failed dead-letter write")
	require.EqualValues(t, 4, dl.DeliveryCount)
	require.Equal(t, []string{id}, dl.OriginalHeaders["ce-id"].GetValues())
	require.Zero(t, calls.Load(), "the handler had its attempts")
	require.EqualValues(t, 1, c.Stats().DeadLettered)
}

// TestCollectorReadsLagAckPendingAndDeadLetters: the collector reports, per durable, what
// JetStream holds for it at scrape time (pending, awaiting ack, dead letters in CP_DLQ) and
// times every handler call.
func TestCollectorReadsLagAckPendingAndDeadLetters(t *testing.T) {
	t.Parallel()
	b := setupConsumer(t, 30*time.Second)
	ctx := context.Background()
	c, err := events.NewConsumer(ctx, b.bus.JS, events.ConsumerConfig{Stream: events.StreamTicks, Durable: testDurable,
		TracerProvider: b.tp, Handler: func(context.Context, events.Event) error { return nil }})
	require.NoError(t, err)
	col := events.NewCollector()
	col.AddConsumer(c)
	gauges := func(pending, ackPending, dead int) string {
		return fmt.Sprintf(`
# HELP cp_events_consumer_ack_pending_messages Messages delivered to the durable and not settled yet (consumer info num_ack_pending).
# TYPE cp_events_consumer_ack_pending_messages gauge
cp_events_consumer_ack_pending_messages{consumer="test-ticks"} %d
# HELP cp_events_consumer_pending_messages Messages in the durable's stream it has not been delivered yet (consumer info num_pending): its lag.
# TYPE cp_events_consumer_pending_messages gauge
cp_events_consumer_pending_messages{consumer="test-ticks"} %d
# HELP cp_events_dead_letters Dead letters of the durable held in CP_DLQ (messages on cp.dlq.<consumer>); falls only when they expire or are purged.
# TYPE cp_events_dead_letters gauge
cp_events_dead_letters{consumer="test-ticks"} %d
`, ackPending, pending, dead)
	}
	names := []string{"cp_events_consumer_pending_messages", "cp_events_consumer_ack_pending_messages", "cp_events_dead_letters"}

	// Three ticks and one undecodable message stored, the consumer not running: all four are lag.
	for i := range 3 {
		b.publishTick(t, "test", time.Unix(1_700_000_000+int64(i)*40, 0))
	}
	_, err = b.bus.JS.Publish(ctx, testSubject, []byte("not json"))
	require.NoError(t, err)
	require.NoError(t, promtestutil.CollectAndCompare(col, strings.NewReader(gauges(4, 0, 0)), names...))

	// Run: three handled, one dead-lettered; nothing pending, one dead letter held.
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "settled", func() bool { s := c.Stats(); return s.Acked == 3 && s.DeadLettered == 1 })
	waitFor(t, "consumer info caught up", func() bool {
		return promtestutil.CollectAndCompare(col, strings.NewReader(gauges(0, 0, 1)), names...) == nil
	})
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(col))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var calls uint64
	for _, mf := range mfs {
		switch mf.GetName() {
		case "cp_events_handler_duration_seconds":
			calls = mf.GetMetric()[0].GetHistogram().GetSampleCount()
		case "cp_events_consumer_info_failures_total":
			require.Zero(t, mf.GetMetric()[0].GetCounter().GetValue(), "no failed look-up")
		}
	}
	require.EqualValues(t, 3, calls, "one duration per handler call (the undecodable message never reaches the handler)")
}
