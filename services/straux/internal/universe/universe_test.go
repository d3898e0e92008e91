package universe_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/testkit/natstest"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
	"cryptopill.dev/jobs/services/straux/internal/universe"
)

// TestBadNewestMessageFallsBackToTheGoodOneBefore: a hand-published message on the universe
// subject that is no universe event must not stop the sampling.
func TestBadNewestMessageFallsBackToTheGoodOneBefore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := natstest.NewServer(t)
	nc := ns.Connect(t)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: events.StreamUniverse, Subjects: []string{events.SubjectUniverseChanged}})
	require.NoError(t, err)
	settings := func(context.Context) ([]string, error) { return []string{"FROMSETTINGS"}, nil }
	src := universe.New(js, settings, nil)

	got, err := src.Current(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"FROMSETTINGS"}, got, "no event yet: the settings table")

	pub, err := events.NewPublisher(nc, events.PublisherConfig{Source: "test"})
	require.NoError(t, err)
	_, err = pub.Publish(ctx, events.Event{Subject: events.SubjectUniverseChanged, ID: "u1",
		Payload: &eventsv1.UniverseChanged{Version: "v1", Enabled: []string{"BTCUSDT", "ETHUSDT"}}})
	require.NoError(t, err)
	for range 2 { // two bad ones on top
		_, err = js.Publish(ctx, events.SubjectUniverseChanged, []byte("garbage"))
		require.NoError(t, err)
	}
	for range 3 {
		got, err = src.Current(ctx)
		require.NoError(t, err)
		require.Equal(t, []string{"BTCUSDT", "ETHUSDT"}, got)
	}
	require.EqualValues(t, 2, src.Bad(), "each bad message counted once")

	// Only bad ones left (the good one deleted): the settings table again.
	_, err = js.Publish(ctx, events.SubjectUniverseChanged, []byte("garbage"))
	require.NoError(t, err)
	st, err := js.Stream(ctx, events.StreamUniverse)
	require.NoError(t, err)
	require.NoError(t, st.DeleteMsg(ctx, 1))
	got, err = src.Current(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"FROMSETTINGS"}, got)
}
