package universe_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/events/eventstest"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
	"cryptopill.dev/jobs/services/orchestrator/internal/universe"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func universes(t *testing.T, js jetstream.JetStream) []*eventsv1.UniverseChanged {
	t.Helper()
	var out []*eventsv1.UniverseChanged
	for _, ev := range eventstest.Events(t, js, events.StreamUniverse, events.SubjectUniverseChanged) {
		out = append(out, ev.Payload.(*eventsv1.UniverseChanged))
	}
	return out
}

// A change committed after the start event was read but before the relay's slot existed is
// never streamed: the resync the relay asks for when it starts streaming publishes it, and a
// resync or change that finds nothing new publishes nothing.
func TestResyncPublishesWhatNoChangeEventCarried(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := pgtest.NewDB(t)
	bus := eventstest.NewBus(t)
	_, err := d.Pool.Exec(ctx, `INSERT INTO settings.coin_universe (symbol, base_asset, quote_asset) VALUES ('BTCUSDT', 'BTC', 'USDT')`)
	require.NoError(t, err)
	pub, err := events.NewPublisher(bus.Conn, events.PublisherConfig{Source: "orchestrator"})
	require.NoError(t, err)
	w, err := universe.New(universe.Config{Pool: d.Pool, Publisher: pub, JS: bus.JS})
	require.NoError(t, err)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(rctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })

	wait := func(n int) {
		t.Helper()
		require.Eventually(t, func() bool { return len(universes(t, bus.JS)) == n }, 10*time.Second, 20*time.Millisecond)
	}
	wait(1)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) // commit times are carried, not compared

	// Committed in the gap: no change notification comes for it.
	_, err = d.Pool.Exec(ctx, `INSERT INTO settings.coin_universe (symbol, base_asset, quote_asset) VALUES ('ETHUSDT', 'ETH', 'USDT')`)
	require.NoError(t, err)
	w.Notify(universe.Change{CommitLSN: 1, CommitTime: at, Resync: true})
	wait(2)
	got := universes(t, bus.JS)[1]
	require.Equal(t, []string{"BTCUSDT", "ETHUSDT"}, got.Enabled)
	require.Equal(t, []string{"ETHUSDT"}, got.Added)

	// Nothing new: neither a second resync nor a late change notification adds an event; a real
	// change after them does.
	w.Notify(universe.Change{CommitLSN: 2, CommitTime: at, Resync: true})
	w.Notify(universe.Change{CommitLSN: 3, CommitTime: at})
	_, err = d.Pool.Exec(ctx, `UPDATE settings.coin_universe SET enabled = false WHERE symbol = 'BTCUSDT'`)
	require.NoError(t, err)
	w.Notify(universe.Change{CommitLSN: 4, CommitTime: at})
	wait(3)
	got = universes(t, bus.JS)[2]
	require.Equal(t, []string{"ETHUSDT"}, got.Enabled)
	require.Equal(t, []string{"BTCUSDT"}, got.Removed)

	// Back to a set published before, inside the duplicate window, found by a resync (a chaos run
	// lost this one: the resync's id was the set's version alone, dropped as a duplicate).
	_, err = d.Pool.Exec(ctx, `UPDATE settings.coin_universe SET enabled = true WHERE symbol = 'BTCUSDT'`)
	require.NoError(t, err)
	w.Notify(universe.Change{CommitLSN: 5, CommitTime: at, Resync: true})
	wait(4)
	got = universes(t, bus.JS)[3]
	require.Equal(t, []string{"BTCUSDT", "ETHUSDT"}, got.Enabled)
	require.Equal(t, []string{"BTCUSDT"}, got.Added)
}
