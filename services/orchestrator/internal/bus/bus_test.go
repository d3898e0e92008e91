package bus_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/testkit/natstest"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
	"cryptopill.dev/jobs/services/orchestrator/internal/bus"
	"cryptopill.dev/jobs/services/orchestrator/internal/relay"
)

// The relay's messages carry exactly the envelope libs/events writes, and decode with it.
func TestMessageIsTheEventsEnvelope(t *testing.T) {
	t.Parallel()
	ns := natstest.NewServer(t)
	p, err := bus.New(ns.Connect(t), bus.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(context.Background()) })

	ctx := context.Background()
	rc := &eventsv1.RowChange{Schema: "market", Table: "account_trades", Op: eventsv1.RowChange_OP_INSERT, CommitLsn: 42}
	want, err := events.Encode(ctx, events.Event{Subject: "cp.cdc.market.account_trades.insert", ID: events.ChangeID(42, 0), Source: "orchestrator", Payload: rc})
	require.NoError(t, err)
	got, err := p.Message(ctx, &relay.Change{Subject: want.Subject, ID: events.ChangeID(42, 0), Data: want.Data, CommitLSN: 42, Index: 7})
	require.NoError(t, err)

	require.Equal(t, want.Subject, got.Subject)
	for k := range want.Header {
		if k == events.HeaderTime {
			continue
		}
		require.Equal(t, want.Header.Values(k), got.Header.Values(k), k)
	}
	require.Len(t, got.Header, len(want.Header)+2, "the envelope plus the position headers")
	require.Equal(t, "42", got.Header.Get(bus.HeaderCommitLSN))
	require.Equal(t, "7", got.Header.Get(bus.HeaderIndexInTx))
	_, ev, err := events.Decode(ctx, got)
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), ev.Time, time.Minute)
	require.Equal(t, uint64(42), ev.Payload.(*eventsv1.RowChange).CommitLsn)
}

// Each row change is a producer span, ended by its PubAck, holding the transaction's commit LSN
// and xid; the stored message carries its traceparent, so consumers continue its trace.
func TestRowChangeIsAProducerSpanWithTheTransaction(t *testing.T) {
	t.Parallel()
	ns := natstest.NewServer(t)
	nc := ns.Connect(t)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx := context.Background()
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: events.StreamCDC, Subjects: []string{"cp.cdc.>"}})
	require.NoError(t, err)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	p, err := bus.New(nc, bus.Config{TracerProvider: tp})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(context.Background()) })

	rc := &eventsv1.RowChange{Schema: "market", Table: "account_trades", Op: eventsv1.RowChange_OP_INSERT, CommitLsn: 0x16B3748}
	enc, err := events.Encode(ctx, events.Event{Subject: "cp.cdc.market.account_trades.insert", ID: events.ChangeID(0x16B3748, 2), Source: "orchestrator", Payload: rc})
	require.NoError(t, err)
	acked := make(chan error, 1)
	require.NoError(t, p.PublishAsync(ctx, &relay.Change{Subject: enc.Subject, ID: events.ChangeID(0x16B3748, 2), Data: enc.Data,
		Table: "market.account_trades", CommitLSN: 0x16B3748, Index: 2, Xid: 731}, func(err error) { acked <- err }))
	require.NoError(t, <-acked)

	ended := rec.Ended()
	require.Len(t, ended, 1)
	s := ended[0]
	require.Equal(t, "send cp.cdc.market.account_trades.insert", s.Name())
	require.Equal(t, trace.SpanKindProducer, s.SpanKind())
	attrs := map[string]string{}
	for _, kv := range s.Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	require.Equal(t, "0/16B3748", attrs["cp.commit_lsn"])
	require.Equal(t, "731", attrs["cp.xid"])
	require.Equal(t, "2", attrs["cp.index_in_tx"])

	m, err := stream.GetLastMsgForSubject(ctx, enc.Subject)
	require.NoError(t, err)
	mctx, _, err := events.Decode(ctx, &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
	require.NoError(t, err)
	require.Equal(t, s.SpanContext().TraceID(), trace.SpanContextFromContext(mctx).TraceID())
	require.Equal(t, s.SpanContext().SpanID(), trace.SpanContextFromContext(mctx).SpanID())
}
