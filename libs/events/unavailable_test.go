package events_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/events"
)

var errAway = errors.New("dependency away")

// An outage of the handler's dependency is waited out in place: the message is handled on its
// first delivery once the dependency is back, spending no attempt and no redelivery backoff.
func TestConsumerWaitsInPlaceWhileADependencyIsUnavailable(t *testing.T) {
	t.Parallel()
	b := setupConsumer(t, time.Second)
	var calls atomic.Int32
	waits := prometheus.NewCounter(prometheus.CounterOpts{Name: "waits"})
	handled := make(chan uint64, 1)
	c, _ := b.run(t, events.ConsumerConfig{
		Handler: func(_ context.Context, ev events.Event) error {
			if calls.Add(1) <= 8 { // about 4 s away: past the ack wait and both backoff steps
				return errAway
			}
			handled <- ev.Metadata.NumDelivered
			return nil
		},
		Middleware: []events.Middleware{events.WaitWhileUnavailable(events.UnavailableConfig{
			Unavailable: func(err error) bool { return errors.Is(err, errAway) },
			Wait:        500 * time.Millisecond, MaxWait: 500 * time.Millisecond, Waits: waits,
		})},
	})
	b.publishTick(t, "test", time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC))
	select {
	case n := <-handled:
		require.EqualValues(t, 1, n, "handled on its first delivery")
	case <-time.After(30 * time.Second):
		t.Fatal("not handled")
	}
	require.EqualValues(t, 8, promtestutil.ToFloat64(waits))
	require.Eventually(t, func() bool { return c.Stats().Acked == 1 }, 10*time.Second, 10*time.Millisecond)
	require.Zero(t, c.Stats().DeadLettered)
}

// Other errors, and unavailability past the budget, go back to the consumer at once.
func TestWaitWhileUnavailableReturnsOtherErrorsAtOnce(t *testing.T) {
	t.Parallel()
	other := errors.New("bad row")
	var calls int
	mw := events.WaitWhileUnavailable(events.UnavailableConfig{
		Unavailable: func(err error) bool { return errors.Is(err, errAway) },
		Wait:        time.Millisecond, Budget: 50 * time.Millisecond,
	})
	h := mw(func(context.Context, events.Event) error { calls++; return other })
	require.ErrorIs(t, h(context.Background(), events.Event{}), other)
	require.Equal(t, 1, calls)

	calls = 0
	h = mw(func(context.Context, events.Event) error { calls++; return errAway })
	require.ErrorIs(t, h(context.Background(), events.Event{}), errAway)
	require.Greater(t, calls, 1, "retried in place")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls = 0
	require.ErrorIs(t, h(ctx, events.Event{}), errAway)
	require.Equal(t, 1, calls, "a stopping consumer is not held")
}
