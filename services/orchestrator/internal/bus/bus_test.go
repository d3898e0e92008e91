package bus_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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
