package events_test

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/events"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
)

// Deliver runs the durable's handler on a message outside JetStream: the durable is untouched,
// the handler knows it is an operator delivery, and a failed re-drive is dead-lettered anew
// (a distinct id, so CP_DLQ's duplicate window does not drop it; the same id when retried).
func TestDeliverRunsTheHandlerOutsideJetStream(t *testing.T) {
	b := setupDLQ(t, -1, map[string]string{events.MetadataAttempts: "1"})
	ctx := context.Background()
	var fail atomic.Bool
	var modes []events.DeliverMode
	c, err := events.NewConsumer(ctx, b.bus.JS, events.ConsumerConfig{
		Stream: events.StreamTicks, Durable: dlqDurable, Logger: slog.New(slog.DiscardHandler),
		DeadLetterRetryWait: 20 * time.Millisecond, DeadLetterRetryMax: 100 * time.Millisecond,
		Handler: func(ctx context.Context, ev events.Event) error {
			m, ok := events.OperatorDelivery(ctx)
			require.True(t, ok)
			modes = append(modes, m)
			require.Equal(t, uint64(7), ev.Metadata.Sequence.Stream)
			if fail.Load() {
				return errors.New("still broken")
			}
			return nil
		},
	})
	require.NoError(t, err)
	before := b.info(t)

	nmsg, err := events.Encode(ctx, events.Event{Subject: dlqSubject, ID: "t-1", Source: "test", Payload: sampleTick(time.Unix(1_700_000_000, 0))})
	require.NoError(t, err)
	msg := events.DeliveredMsg{Subject: nmsg.Subject, Header: nmsg.Header, Data: nmsg.Data,
		Stream: events.StreamTicks, Sequence: 7, Time: time.Unix(1_700_000_000, 0), DeadLetterSeq: 3}

	require.Equal(t, events.DeliverResult{Outcome: events.OutcomeOK}, c.Deliver(ctx, events.DeliverRedrive, msg))
	require.Empty(t, b.deadLetters(t))

	fail.Store(true)
	res := c.Deliver(ctx, events.DeliverReplay, msg)
	require.Equal(t, events.OutcomeFailed, res.Outcome)
	require.Contains(t, res.Err, "still broken")
	require.Empty(t, b.deadLetters(t), "a failed replay is reported, never dead-lettered")

	res = c.Deliver(ctx, events.DeliverRedrive, msg)
	require.Equal(t, events.OutcomeDeadLettered, res.Outcome, res.Err)
	require.NotZero(t, res.DeadLetterSeq)
	again := c.Deliver(ctx, events.DeliverRedrive, msg)
	require.Equal(t, res.DeadLetterSeq, again.DeadLetterSeq, "a retried re-drive writes its dead letter once")

	dls := b.deadLetters(t)
	require.Len(t, dls, 1)
	require.Equal(t, eventsv1.DeadLetter_REASON_RETRIES_EXHAUSTED, dls[0].GetReason())
	require.Equal(t, uint64(7), dls[0].GetStreamSequence())
	require.Equal(t, dlqSubject, dls[0].GetOriginalSubject())
	require.Contains(t, dls[0].GetError(), "re-drive of dead letter 3")
	raw, err := b.bus.JS.Stream(ctx, events.StreamDLQ)
	require.NoError(t, err)
	stored, err := raw.GetMsg(ctx, res.DeadLetterSeq)
	require.NoError(t, err)
	require.Equal(t, "3", stored.Header.Get(events.HeaderRedrivenFrom))
	require.NotEqual(t, events.DeadLetterID(events.StreamTicks, 7, dlqDurable), stored.Header.Get(events.HeaderID))

	// Undecodable: dead-lettered anew as such.
	bad := msg
	bad.Header = nats.Header{}
	res = c.Deliver(ctx, events.DeliverRedrive, bad)
	require.Equal(t, events.OutcomeDeadLettered, res.Outcome)

	after := b.info(t)
	require.Equal(t, before.Delivered, after.Delivered, "the durable delivered nothing")
	require.Equal(t, before.AckFloor, after.AckFloor)
	require.Equal(t, []events.DeliverMode{events.DeliverRedrive, events.DeliverReplay, events.DeliverRedrive, events.DeliverRedrive}, modes)

	s := c.Stats()
	require.Equal(t, map[string]uint64{events.OutcomeOK: 1, events.OutcomeFailed: 0, events.OutcomeDeadLettered: 3},
		s.OperatorDeliveries[events.DeliverRedrive], strconv.Quote("redrive"))
	require.Equal(t, uint64(1), s.OperatorDeliveries[events.DeliverReplay][events.OutcomeFailed])
}

// A failed re-drive whose new dead letter cannot be written says so: the caller keeps the old
// entry.
func TestDeliverRedriveKeepsTheOldEntryWhenTheNewOneIsNotWritten(t *testing.T) {
	b := setupDLQ(t, -1, map[string]string{events.MetadataAttempts: "1"})
	c, err := events.NewConsumer(context.Background(), b.bus.JS, events.ConsumerConfig{
		Stream: events.StreamTicks, Durable: dlqDurable, Logger: slog.New(slog.DiscardHandler),
		DeadLetterRetryWait: 20 * time.Millisecond, DeadLetterRetryMax: 50 * time.Millisecond,
		Handler: func(context.Context, events.Event) error { return errors.New("broken") },
	})
	require.NoError(t, err)
	nmsg, err := events.Encode(context.Background(), events.Event{Subject: dlqSubject, ID: "t-2", Source: "test", Payload: sampleTick(time.Unix(1_700_000_000, 0))})
	require.NoError(t, err)
	b.breakDLQ(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	res := c.Deliver(ctx, events.DeliverRedrive, events.DeliveredMsg{Subject: nmsg.Subject, Header: nmsg.Header, Data: nmsg.Data,
		Stream: events.StreamTicks, Sequence: 1, DeadLetterSeq: 1})
	require.Equal(t, events.OutcomeFailed, res.Outcome)
	require.Contains(t, res.Err, "the old entry is kept")
}

// A claim-checked message is re-driven whole: the handler gets the resolved payload, and a
// second failure's dead letter points at its own copy of the payload.
func TestDeliverRedriveOfAClaimCheckedMessage(t *testing.T) {
	b := setupDLQ(t, -1, map[string]string{events.MetadataAttempts: "1"})
	ctx := context.Background()
	pub, err := events.NewPublisher(b.bus.Conn, events.PublisherConfig{Source: "test", ClaimCheck: b.bus.Claims})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close(ctx) })
	tick := bigTick(2 << 20) // over max_payload
	var fail atomic.Bool
	fail.Store(true)
	var got atomic.Int64
	c, _ := b.start(t, events.ConsumerConfig{ClaimCheck: b.bus.Claims, Handler: func(_ context.Context, ev events.Event) error {
		if fail.Load() {
			return events.Permanent(errors.New("rejected"))
		}
		got.Store(int64(len(ev.Payload.(*eventsv1.Tick).GetRunnerSessionId())))
		return nil
	}})
	_, err = pub.Publish(ctx, events.Event{Subject: dlqSubject, ID: "claimed-r", Payload: tick})
	require.NoError(t, err)
	waitFor(t, "dead-lettered", func() bool { return c.Stats().DeadLettered == 1 })
	dl := b.deadLetters(t)[0]
	h := nats.Header{}
	for k, v := range dl.OriginalHeaders {
		h[k] = v.GetValues()
	}
	msg := events.DeliveredMsg{Subject: dl.OriginalSubject, Header: h, Data: dl.OriginalPayload, Stream: dl.Stream,
		Sequence: dl.StreamSequence, DeadLetterSeq: 1}

	res := c.Deliver(ctx, events.DeliverRedrive, msg)
	require.Equal(t, events.OutcomeDeadLettered, res.Outcome, res.Err)
	again := b.deadLetters(t)[1]
	h2 := nats.Header{}
	for k, v := range again.OriginalHeaders {
		h2[k] = v.GetValues()
	}
	newID := events.RedriveDeadLetterID(dl.Stream, dl.StreamSequence, dlqDurable, 1)
	require.Equal(t, events.ClaimBucket+"/"+newID+"/original", h2.Get(events.HeaderClaim), "its own copy")

	fail.Store(false)
	res = c.Deliver(ctx, events.DeliverRedrive, events.DeliveredMsg{Subject: again.OriginalSubject, Header: h2,
		Data: again.OriginalPayload, Stream: again.Stream, Sequence: again.StreamSequence, DeadLetterSeq: res.DeadLetterSeq})
	require.Equal(t, events.OutcomeOK, res.Outcome, res.Err)
	require.Equal(t, int64(2<<20), got.Load(), "the handler saw the whole payload")
}
