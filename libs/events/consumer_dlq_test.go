package events_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/events/eventstest"
	"cryptopill.dev/jobs/libs/testkit/logtest"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
)

// dlqBundle is a bus with one test durable (dlqDurable on dlqSubject) whose MaxDeliver and
// metadata each test picks, a publisher without a claim-check, and the durable's handle.
type dlqBundle struct {
	bus *eventstest.Bus
	pub *events.Publisher
	raw jetstream.Consumer
}

const (
	dlqDurable = "dlq-test"
	dlqSubject = "cp.tick.dlqtest"
)

func setupDLQ(t *testing.T, maxDeliver int, metadata map[string]string) *dlqBundle {
	t.Helper()
	bus := eventstest.NewBus(t, events.ConsumerDecl{Stream: events.StreamTicks, Config: jetstream.ConsumerConfig{
		Durable:       dlqDurable,
		FilterSubject: dlqSubject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       time.Second,
		MaxDeliver:    maxDeliver,
		Metadata:      metadata,
	}})
	pub, err := events.NewPublisher(bus.Conn, events.PublisherConfig{Source: "test"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close(context.Background()) })
	raw, err := bus.JS.Consumer(context.Background(), events.StreamTicks, dlqDurable)
	require.NoError(t, err)
	return &dlqBundle{bus: bus, pub: pub, raw: raw}
}

// start runs a Consumer on the test durable with cfg (Stream, Durable, fast dead-letter retries
// filled in) and returns it with a stop function returning Run's error.
func (b *dlqBundle) start(t *testing.T, cfg events.ConsumerConfig) (*events.Consumer, func() error) {
	t.Helper()
	cfg.Stream, cfg.Durable = events.StreamTicks, dlqDurable
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DeadLetterRetryWait == 0 {
		cfg.DeadLetterRetryWait, cfg.DeadLetterRetryMax = 20*time.Millisecond, 100*time.Millisecond
	}
	return startConsumer(t, b.bus.JS, cfg)
}

func (b *dlqBundle) deadLetters(t *testing.T) []*eventsv1.DeadLetter {
	t.Helper()
	var out []*eventsv1.DeadLetter
	for _, ev := range eventstest.Events(t, b.bus.JS, events.StreamDLQ, events.DeadLetterSubject(dlqDurable)) {
		out = append(out, ev.Payload.(*eventsv1.DeadLetter))
	}
	return out
}

func (b *dlqBundle) info(t *testing.T) *jetstream.ConsumerInfo {
	t.Helper()
	info, err := b.raw.Info(context.Background())
	require.NoError(t, err)
	return info
}

// breakDLQ deletes CP_DLQ, so that every dead-letter write fails (no stream takes cp.dlq.>);
// mendDLQ declares it again.
func (b *dlqBundle) breakDLQ(t *testing.T) {
	t.Helper()
	require.NoError(t, b.bus.JS.DeleteStream(context.Background(), events.StreamDLQ))
}

func (b *dlqBundle) mendDLQ(t *testing.T) {
	t.Helper()
	require.NoError(t, b.bus.Topology.Apply(context.Background(), b.bus.JS))
}

// maxDeliveries counts the server's advisories for messages it gave up on (MaxDeliver reached
// without a settlement): each one is a message the consumer would never see again.
func (b *dlqBundle) maxDeliveries(t *testing.T) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	sub, err := b.bus.Conn.Subscribe("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES."+events.StreamTicks+"."+dlqDurable,
		func(*nats.Msg) { n.Add(1) })
	require.NoError(t, err)
	require.NoError(t, b.bus.Conn.Flush())
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return &n
}

func bigTick(size int) *eventsv1.Tick {
	tick := sampleTick(time.Unix(1_700_000_000, 0))
	tick.RunnerSessionId = strings.Repeat("r", size)
	return tick
}

// Item 8: the dead-letter write fails on the last delivery the server allows. It is retried,
// the message heartbeated (no redelivery, no max-deliveries advisory), until CP_DLQ is back;
// the dead letter then lands once and only then is the original settled.
func TestConsumerRetriesTheDeadLetterOfALastDeliveryUntilItIsWritten(t *testing.T) {
	t.Parallel()
	b := setupDLQ(t, 1, nil) // one delivery: the first attempt is the last
	ctx := context.Background()
	gaveUp := b.maxDeliveries(t)
	b.breakDLQ(t)

	var calls atomic.Int64
	c, _ := b.start(t, events.ConsumerConfig{Handler: func(context.Context, events.Event) error {
		calls.Add(1)
		return errors.New("exchange unavailable")
	}})
	_, err := b.pub.Publish(ctx, events.Event{Subject: dlqSubject, ID: "t-1", Payload: sampleTick(time.Unix(1_700_000_000, 0))})
	require.NoError(t, err)

	// Several failed writes (each ~0.5s: the client retries a publish nobody answers): with a
	// 1s ack wait, an unheartbeated message would have been given up by the server by now.
	waitFor(t, "failed dead-letter writes", func() bool { return c.Stats().DeadLetterFailures >= 5 })
	st := c.Stats()
	require.EqualValues(t, 1, st.DeadLetterPending)
	require.Zero(t, st.DeadLettered)
	info := b.info(t)
	require.EqualValues(t, 1, info.NumAckPending, "the original is not settled while its dead letter is pending")
	require.Zero(t, info.NumRedelivered)
	require.Zero(t, info.AckFloor.Stream)
	require.Zero(t, gaveUp.Load(), "the server never gave up on the message")

	col := events.NewCollector()
	col.AddConsumer(c)
	require.NoError(t, promtestutil.CollectAndCompare(col, strings.NewReader(`
# HELP cp_events_dead_letter_pending Messages whose dead-letter write is failing and being retried; they stay unsettled until it succeeds.
# TYPE cp_events_dead_letter_pending gauge
cp_events_dead_letter_pending{consumer="dlq-test"} 1
`), "cp_events_dead_letter_pending"))

	b.mendDLQ(t)
	waitFor(t, "dead letter written", func() bool { return c.Stats().DeadLettered == 1 })
	waitFor(t, "original settled", func() bool { i := b.info(t); return i.NumAckPending == 0 && i.AckFloor.Stream == 1 })
	dls := b.deadLetters(t)
	require.Len(t, dls, 1)
	require.Equal(t, eventsv1.DeadLetter_REASON_RETRIES_EXHAUSTED, dls[0].Reason)
	require.Equal(t, "exchange unavailable", dls[0].Error)
	require.EqualValues(t, 1, dls[0].DeliveryCount)
	require.EqualValues(t, 1, calls.Load())
	require.Zero(t, c.Stats().DeadLetterPending)
	require.Zero(t, gaveUp.Load())
}

// Item 8, on stop: with MaxDeliver -1 and the attempts in the durable's metadata, a consumer
// stopped while CP_DLQ is down leaves the message unsettled; the server redelivers it to the
// next instance, which writes the dead letter once CP_DLQ is back, without a second attempt.
func TestConsumerStoppedDuringADLQOutageLeavesTheMessageToTheNextInstance(t *testing.T) {
	t.Parallel()
	b := setupDLQ(t, -1, map[string]string{events.MetadataAttempts: "2"})
	ctx := context.Background()
	gaveUp := b.maxDeliveries(t)
	b.breakDLQ(t)

	var calls atomic.Int64
	handler := func(context.Context, events.Event) error {
		calls.Add(1)
		return errors.New("exchange unavailable")
	}
	first, stop := b.start(t, events.ConsumerConfig{Handler: handler, RetryDelay: func(uint64) time.Duration { return 10 * time.Millisecond }})
	_, err := b.pub.Publish(ctx, events.Event{Subject: dlqSubject, ID: "t-1", Payload: sampleTick(time.Unix(1_700_000_000, 0))})
	require.NoError(t, err)
	waitFor(t, "dead letter pending", func() bool { return first.Stats().DeadLetterFailures >= 2 })
	require.NoError(t, stop())
	require.Zero(t, first.Stats().DeadLettered)
	require.Zero(t, first.Stats().DeadLettersLost)
	require.Zero(t, first.Stats().DeadLetterPending)
	require.EqualValues(t, 2, calls.Load(), "two handler attempts")

	b.mendDLQ(t)
	second, _ := b.start(t, events.ConsumerConfig{Handler: handler})
	waitFor(t, "dead-lettered by the next instance", func() bool { return second.Stats().DeadLettered == 1 })
	waitFor(t, "original settled", func() bool { i := b.info(t); return i.NumAckPending == 0 && i.AckFloor.Stream == 1 })
	dls := b.deadLetters(t)
	require.Len(t, dls, 1)
	require.Equal(t, eventsv1.DeadLetter_REASON_RETRIES_EXHAUSTED, dls[0].Reason)
	require.EqualValues(t, 3, dls[0].DeliveryCount, "the delivery beyond the two attempts")
	require.EqualValues(t, 2, calls.Load(), "the handler is not run again")
	require.Zero(t, gaveUp.Load())
	// Review item 4: the handler's error, and that the previous write had failed, not only
	// "never settled".
	require.Contains(t, dls[0].Error, "exchange unavailable")
	require.Contains(t, dls[0].Error, "the previous instance's dead-letter write had failed")
}

// With a bounded MaxDeliver the server gives up on a last delivery that is not settled, so a
// stop during a CP_DLQ outage cannot hand it on: the write goes on through the shutdown
// timeout, then the loss is counted and logged (the message stays in its stream).
func TestConsumerStoppedOnABoundedLastDeliveryCountsTheLostDeadLetter(t *testing.T) {
	t.Parallel()
	b := setupDLQ(t, 1, nil)
	ctx := context.Background()
	b.breakDLQ(t)
	var logs logtest.Buffer
	c, stop := b.start(t, events.ConsumerConfig{
		ShutdownTimeout: 300 * time.Millisecond,
		Logger:          slogJSON(&logs),
		Handler:         func(context.Context, events.Event) error { return errors.New("exchange unavailable") },
	})
	_, err := b.pub.Publish(ctx, events.Event{Subject: dlqSubject, ID: "t-1", Payload: sampleTick(time.Unix(1_700_000_000, 0))})
	require.NoError(t, err)
	waitFor(t, "dead letter pending", func() bool { return c.Stats().DeadLetterPending == 1 })
	require.NoError(t, stop())
	st := c.Stats()
	require.EqualValues(t, 1, st.DeadLettersLost)
	require.Zero(t, st.DeadLettered)
	require.Contains(t, logs.String(), `"msg":"consume: dead letter lost`)
	require.Contains(t, logs.String(), `"stream_seq":1`)
}

// Item 2: a 900 KB event the handler rejects. Its dead letter (the payload base64-encoded in
// JSON, ~1.2 MB) is over max_payload: it is claim-checked, lands in CP_DLQ, and the original
// payload is recovered from it byte for byte.
func TestDeadLetterOfALargeMessageIsClaimChecked(t *testing.T) {
	t.Parallel()
	b := setupDLQ(t, 1, nil)
	ctx := context.Background()
	tick := bigTick(900 << 10)
	c, _ := b.start(t, events.ConsumerConfig{Handler: func(_ context.Context, ev events.Event) error {
		if !proto.Equal(tick, ev.Payload) {
			return errors.New("not the published tick")
		}
		return events.Permanent(errors.New("rejected"))
	}})
	_, err := b.pub.Publish(ctx, events.Event{Subject: dlqSubject, ID: "big-1", Payload: tick})
	require.NoError(t, err)
	waitFor(t, "dead-lettered", func() bool { return c.Stats().DeadLettered == 1 })
	require.Zero(t, c.Stats().DeadLetterFailures)

	stream, err := b.bus.JS.Stream(ctx, events.StreamTicks)
	require.NoError(t, err)
	orig, err := stream.GetMsg(ctx, 1)
	require.NoError(t, err)
	dlq, err := b.bus.JS.Stream(ctx, events.StreamDLQ)
	require.NoError(t, err)
	raw, err := dlq.GetLastMsgForSubject(ctx, events.DeadLetterSubject(dlqDurable))
	require.NoError(t, err)
	require.Empty(t, raw.Data, "the dead letter itself is claim-checked")
	require.True(t, strings.HasPrefix(raw.Header.Get(events.HeaderClaim), events.ClaimBucket+"/"+events.DeadLetterID(events.StreamTicks, 1, dlqDurable)+"/"),
		"the dead letter's object is named after its id: %s", raw.Header.Get(events.HeaderClaim))

	// Recovery, as an operator's tool does it: resolve, decode, read the original.
	dls := b.deadLetters(t)
	require.Len(t, dls, 1)
	require.Equal(t, eventsv1.DeadLetter_REASON_REJECTED, dls[0].Reason)
	require.True(t, bytes.Equal(orig.Data, dls[0].OriginalPayload), "original payload recovered byte for byte")
	require.Equal(t, []string{"big-1"}, dls[0].OriginalHeaders[events.HeaderID].GetValues())
}

// A message with large headers (60 KB; the server takes at most 64 KB) and a 750 KB payload
// dead-letters too: the headers are in the dead letter's payload, which is claim-checked.
func TestDeadLetterOfAMessageWithHugeHeadersIsClaimChecked(t *testing.T) {
	t.Parallel()
	b := setupDLQ(t, 1, nil)
	ctx := context.Background()
	c, _ := b.start(t, events.ConsumerConfig{Handler: func(context.Context, events.Event) error {
		return events.Permanent(errors.New("rejected"))
	}})
	m, err := events.Encode(ctx, events.Event{Subject: dlqSubject, ID: "hdr-1", Source: "test", Payload: bigTick(750 << 10)})
	require.NoError(t, err)
	huge := strings.Repeat("h", 60<<10)
	m.Header.Set("X-Huge", huge)
	_, err = b.bus.JS.PublishMsg(ctx, m)
	require.NoError(t, err)
	waitFor(t, "dead-lettered", func() bool { return c.Stats().DeadLettered == 1 })
	dls := b.deadLetters(t)
	require.Len(t, dls, 1)
	require.Equal(t, []string{huge}, dls[0].OriginalHeaders["X-Huge"].GetValues())
}

// A claim-checked message the handler rejects keeps its reference in the dead letter: the dead
// letter is small, its headers name the object, and the object gives the payload back.
func TestDeadLetterOfAClaimCheckedMessageKeepsTheReference(t *testing.T) {
	t.Parallel()
	b := setupDLQ(t, 1, nil)
	ctx := context.Background()
	pub, err := events.NewPublisher(b.bus.Conn, events.PublisherConfig{Source: "test", ClaimCheck: b.bus.Claims})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close(ctx) })
	tick := bigTick(2 << 20) // over max_payload
	c, _ := b.start(t, events.ConsumerConfig{Handler: func(context.Context, events.Event) error {
		return events.Permanent(errors.New("rejected"))
	}})
	_, err = pub.Publish(ctx, events.Event{Subject: dlqSubject, ID: "claimed-1", Payload: tick})
	require.NoError(t, err)
	waitFor(t, "dead-lettered", func() bool { return c.Stats().DeadLettered == 1 })

	dlq, err := b.bus.JS.Stream(ctx, events.StreamDLQ)
	require.NoError(t, err)
	raw, err := dlq.GetLastMsgForSubject(ctx, events.DeadLetterSubject(dlqDurable))
	require.NoError(t, err)
	require.Empty(t, raw.Header.Get(events.HeaderClaim), "the dead letter of a reference is small")
	require.Less(t, len(raw.Data), 4096)

	dl := b.deadLetters(t)[0]
	require.Empty(t, dl.OriginalPayload)
	h := nats.Header{}
	for k, v := range dl.OriginalHeaders {
		h[k] = v.GetValues()
	}
	// Review item 2: the dead letter points at its own copy, named after its id, and keeps the
	// original reference beside it; the original object going (its TTL runs from its own,
	// earlier write) does not take the dead letter's payload with it.
	dlID := events.DeadLetterID(events.StreamTicks, 1, dlqDurable)
	require.Equal(t, events.ClaimBucket+"/"+dlID+"/original", h.Get(events.HeaderClaim))
	orig := h.Get(events.HeaderClaimOriginal)
	require.True(t, strings.HasPrefix(orig, events.ClaimBucket+"/claimed-1/"), orig)
	store, err := b.bus.JS.ObjectStore(ctx, events.ClaimBucket)
	require.NoError(t, err)
	require.NoError(t, store.Delete(ctx, strings.TrimPrefix(orig, events.ClaimBucket+"/")))
	data, err := b.bus.Claims.Resolve(ctx, h, dl.OriginalPayload)
	require.NoError(t, err)
	_, ev, err := events.Decode(ctx, &nats.Msg{Subject: dl.OriginalSubject, Header: h, Data: data})
	require.NoError(t, err)
	require.True(t, proto.Equal(tick, ev.Payload))
}

// Review item 1: a message whose header is not UTF-8 (protojson refuses it in the dead letter's
// string fields) and whose payload is garbage is dead-lettered at once, the header sanitised,
// instead of its dead letter being retried forever with the durable stuck behind it.
func TestDeadLetterOfAMessageWithInvalidUTF8HeadersIsWritten(t *testing.T) {
	t.Parallel()
	b := setupDLQ(t, -1, map[string]string{events.MetadataAttempts: "2"})
	ctx := context.Background()
	c, _ := b.start(t, events.ConsumerConfig{Handler: func(context.Context, events.Event) error { return nil }})
	m := nats.NewMsg(dlqSubject)
	m.Header.Set("X-Bad", "\xff\xfe")
	m.Header.Set(events.HeaderMsgID, "bad-1")
	m.Data = []byte("\xff\x00 not an event")
	_, err := b.bus.JS.PublishMsg(ctx, m)
	require.NoError(t, err)
	waitFor(t, "dead-lettered", func() bool { return c.Stats().DeadLettered == 1 })
	require.Zero(t, c.Stats().DeadLetterFailures)
	waitFor(t, "original settled", func() bool { i := b.info(t); return i.NumAckPending == 0 && i.AckFloor.Stream == 1 })
	dls := b.deadLetters(t)
	require.Len(t, dls, 1)
	require.Equal(t, eventsv1.DeadLetter_REASON_UNDECODABLE, dls[0].Reason)
	require.Equal(t, []string{"\uFFFD"}, dls[0].OriginalHeaders["X-Bad"].GetValues())
	require.Equal(t, m.Data, dls[0].OriginalPayload, "the payload is bytes: kept exactly")
}

// A full claim bucket (MaxBytes) refuses a Put: counted as no_space, an error saying so.
func TestClaimCheckCountsAPutRefusedByAFullBucket(t *testing.T) {
	t.Parallel()
	bus := eventstest.NewBus(t)
	ctx := context.Background()
	require.Equal(t, events.DefaultClaimMaxBytes, events.ClaimBucketConfig(events.ClaimConfig{}).MaxBytes)
	require.Zero(t, events.ClaimBucketConfig(events.ClaimConfig{MaxBytes: -1}).MaxBytes, "-1 is no bound")
	var logs logtest.Buffer
	cc, err := events.NewClaimCheck(ctx, bus.JS, events.ClaimConfig{Bucket: "SMALL_CLAIMS", MaxBytes: 256 << 10, Create: true, Logger: slogJSON(&logs)})
	require.NoError(t, err)
	m := nats.NewMsg(dlqSubject)
	m.Header.Set(events.HeaderMsgID, "big-1")
	m.Data = bytes.Repeat([]byte("x"), 600<<10)
	_, err = cc.Offload(ctx, m)
	require.ErrorIs(t, err, events.ErrClaimNoSpace)
	st := cc.Stats()
	require.EqualValues(t, 1, st.NoSpace)
	require.EqualValues(t, 1, st.OffloadFailures)
	require.Contains(t, logs.String(), `"msg":"claim bucket full`)
	require.Contains(t, logs.String(), `"max_bytes":262144`)
}

func slogJSON(w io.Writer) *slog.Logger { return slog.New(slog.NewJSONHandler(w, nil)) }

// Item 2: an event published through a Publisher with a claim-check is stored as a reference,
// and the consumer hands its handler the whole payload.
func TestConsumerResolvesClaimCheckedEvents(t *testing.T) {
	t.Parallel()
	b := setupDLQ(t, -1, map[string]string{events.MetadataAttempts: "3"})
	ctx := context.Background()
	pub, err := events.NewPublisher(b.bus.Conn, events.PublisherConfig{Source: "test", ClaimCheck: b.bus.Claims})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close(ctx) })

	got := make(chan events.Event, 2)
	// No ClaimCheck in the config: the consumer binds CP_CLAIMS itself.
	c, _ := b.start(t, events.ConsumerConfig{Handler: func(_ context.Context, ev events.Event) error {
		got <- ev
		return nil
	}})
	big, small := bigTick(3<<20), sampleTick(time.Unix(1_700_000_000, 0))
	_, err = pub.Publish(ctx, events.Event{Subject: dlqSubject, ID: "big-sync", Payload: big})
	require.NoError(t, err)
	fut, err := pub.PublishAsync(ctx, events.Event{Subject: dlqSubject, ID: "small-async", Payload: small})
	require.NoError(t, err)
	_, err = fut.Wait(ctx)
	require.NoError(t, err)

	for _, want := range []proto.Message{big, small} {
		select {
		case ev := <-got:
			require.True(t, proto.Equal(want, ev.Payload))
			wantJSON, _ := events.Encode(ctx, events.Event{Subject: dlqSubject, ID: "x", Source: "test", Payload: want})
			require.Equal(t, len(wantJSON.Data), len(ev.Data), "ev.Data is the resolved payload")
		case <-time.After(15 * time.Second):
			t.Fatal("not handled")
		}
	}
	waitFor(t, "acked", func() bool { return c.Stats().Acked == 2 })

	// In the stream: a reference for the big one, the small one as it was.
	stream, err := b.bus.JS.Stream(ctx, events.StreamTicks)
	require.NoError(t, err)
	first, err := stream.GetMsg(ctx, 1)
	require.NoError(t, err)
	require.Empty(t, first.Data)
	require.True(t, strings.HasPrefix(first.Header.Get(events.HeaderClaim), events.ClaimBucket+"/big-sync/"))
	second, err := stream.GetMsg(ctx, 2)
	require.NoError(t, err)
	require.NotEmpty(t, second.Data)
	require.Empty(t, second.Header.Get(events.HeaderClaim))

	col := events.NewCollector()
	col.AddConsumer(c)
	require.NoError(t, promtestutil.CollectAndCompare(col, strings.NewReader(`
# HELP cp_events_claims_total Claim-check operations, by result: offloaded, offload_failed, resolved, missing, corrupt, resolve_failed, kept (copied for a dead letter), keep_failed, no_space (a Put refused by a full bucket).
# TYPE cp_events_claims_total counter
cp_events_claims_total{claim_check="dlq-test",result="corrupt"} 0
cp_events_claims_total{claim_check="dlq-test",result="keep_failed"} 0
cp_events_claims_total{claim_check="dlq-test",result="kept"} 0
cp_events_claims_total{claim_check="dlq-test",result="no_space"} 0
cp_events_claims_total{claim_check="dlq-test",result="missing"} 0
cp_events_claims_total{claim_check="dlq-test",result="offload_failed"} 0
cp_events_claims_total{claim_check="dlq-test",result="offloaded"} 0
cp_events_claims_total{claim_check="dlq-test",result="resolve_failed"} 0
cp_events_claims_total{claim_check="dlq-test",result="resolved"} 1
`), "cp_events_claims_total"))
}

// claimRef publishes a reference to an object that is not (yet) in the bucket: what a consumer
// sees when the writer of a claim lags behind its message, or the object expired.
func (b *dlqBundle) claimRef(t *testing.T, id string, payload proto.Message) []byte {
	t.Helper()
	ctx := context.Background()
	m, err := events.Encode(ctx, events.Event{Subject: dlqSubject, ID: id, Source: "test", Payload: payload})
	require.NoError(t, err)
	data := m.Data
	// Offload through a throw-away bucket, to get the headers the real one will match.
	scratch, err := events.NewClaimCheck(ctx, b.bus.JS, events.ClaimConfig{Bucket: "SCRATCH", Create: true, Threshold: 1})
	require.NoError(t, err)
	off, err := scratch.Offload(ctx, m)
	require.NoError(t, err)
	require.True(t, off)
	m.Header.Set(events.HeaderClaim, events.ClaimBucket+"/"+id)
	_, err = b.bus.JS.PublishMsg(ctx, m)
	require.NoError(t, err)
	return data
}

func TestConsumerRetriesAMissingClaimUntilItsObjectIsWritten(t *testing.T) {
	t.Parallel()
	b := setupDLQ(t, -1, map[string]string{events.MetadataAttempts: "10"})
	ctx := context.Background()
	tick := sampleTick(time.Unix(1_700_000_000, 0))
	var handled atomic.Int64
	c, _ := b.start(t, events.ConsumerConfig{
		RetryDelay: func(uint64) time.Duration { return 20 * time.Millisecond },
		Handler: func(_ context.Context, ev events.Event) error {
			if !proto.Equal(tick, ev.Payload) {
				return events.Permanent(errors.New("not the published tick"))
			}
			handled.Add(1)
			return nil
		},
	})
	data := b.claimRef(t, "late-1", tick)
	waitFor(t, "retried while the object is missing", func() bool { return c.Stats().Retried >= 2 })
	require.Zero(t, handled.Load())

	// The writer catches up.
	store, err := b.bus.JS.ObjectStore(ctx, events.ClaimBucket)
	require.NoError(t, err)
	_, err = store.PutBytes(ctx, "late-1", data)
	require.NoError(t, err)
	waitFor(t, "handled once the object is there", func() bool { return c.Stats().Acked == 1 })
	require.EqualValues(t, 1, handled.Load())
	require.Empty(t, b.deadLetters(t))
}

func TestConsumerDeadLettersAClaimStillMissingAfterItsAttempts(t *testing.T) {
	t.Parallel()
	b := setupDLQ(t, -1, map[string]string{events.MetadataAttempts: "3"})
	var handled atomic.Int64
	c, _ := b.start(t, events.ConsumerConfig{
		RetryDelay: func(uint64) time.Duration { return 10 * time.Millisecond },
		Handler:    func(context.Context, events.Event) error { handled.Add(1); return nil },
	})
	b.claimRef(t, "never-1", sampleTick(time.Unix(1_700_000_000, 0)))
	waitFor(t, "dead-lettered", func() bool { return c.Stats().DeadLettered == 1 })
	dls := b.deadLetters(t)
	require.Len(t, dls, 1)
	require.Equal(t, eventsv1.DeadLetter_REASON_CLAIM_MISSING, dls[0].Reason)
	require.Contains(t, dls[0].Error, "CP_CLAIMS/never-1")
	require.EqualValues(t, 3, dls[0].DeliveryCount)
	require.Equal(t, []string{events.ClaimBucket + "/never-1"}, dls[0].OriginalHeaders[events.HeaderClaim].GetValues())
	require.Zero(t, handled.Load())
	require.EqualValues(t, 2, c.Stats().Retried)
}

// Settlements and heartbeats that cannot be sent are counted, not dropped: here the consumer's
// connection closes under a running handler.
func TestConsumerCountsSettlementsItCouldNotSend(t *testing.T) {
	t.Parallel()
	b := setupDLQ(t, -1, nil)
	ctx := context.Background()
	nc := b.bus.Server.Connect(t)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	var c *events.Consumer
	handlerDone := make(chan struct{})
	c, err = events.NewConsumer(ctx, js, events.ConsumerConfig{
		Stream: events.StreamTicks, Durable: dlqDurable, Logger: slog.New(slog.DiscardHandler),
		HeartbeatInterval: 10 * time.Millisecond,
		Handler: func(context.Context, events.Event) error {
			defer close(handlerDone)
			nc.Close()
			waitFor(t, "a heartbeat fails", func() bool { return c.Stats().SettleFailures["in_progress"] >= 1 })
			return nil
		},
	})
	require.NoError(t, err)
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(ctx) }()
	_, err = b.pub.Publish(ctx, events.Event{Subject: dlqSubject, ID: "t-1", Payload: sampleTick(time.Unix(1_700_000_000, 0))})
	require.NoError(t, err)
	<-handlerDone
	select {
	case err := <-runErr:
		require.ErrorContains(t, err, "connection closed")
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after its connection closed")
	}
	st := c.Stats()
	require.EqualValues(t, 1, st.SettleFailures["ack"])
	require.GreaterOrEqual(t, st.SettleFailures["in_progress"], uint64(1))
}

// The attempts in a durable's metadata must leave the server a delivery for the dead letter.
func TestNewConsumerChecksTheAttemptsMetadata(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, c := range []struct {
		maxDeliver int
		attempts   string
		err        string
	}{
		{-1, "zero", "want a positive integer"},
		{-1, "0", "want a positive integer"},
		{3, "3", "needs MaxDeliver -1 or above 3"},
	} {
		b := setupDLQ(t, c.maxDeliver, map[string]string{events.MetadataAttempts: c.attempts})
		_, err := events.NewConsumer(ctx, b.bus.JS, events.ConsumerConfig{
			Stream: events.StreamTicks, Durable: dlqDurable, Handler: func(context.Context, events.Event) error { return nil },
		})
		require.ErrorContains(t, err, c.err)
		require.ErrorContains(t, err, dlqDurable)
	}
}
