package ticks_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/testkit/natstest"
	"cryptopill.dev/jobs/services/orchestrator/internal/ticks"
)

// The orchestrator owns the flags bucket: it brings a bucket someone else created with other
// settings to its own, and keeps the flags already set.
func TestFreezeFlagsBucketIsTheOrchestratorsToSet(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	js, err := jetstream.New(natstest.NewServer(t).Connect(t))
	require.NoError(t, err)
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: ticks.DefaultFlagsBucket, History: 2})
	require.NoError(t, err)
	_, err = kv.PutString(ctx, ticks.FreezeKey, "1")
	require.NoError(t, err)

	flags := ticks.NewFreezeFlags(ticks.FreezeConfig{JS: js, Logger: slog.New(slog.DiscardHandler)})
	done := make(chan error, 1)
	go func() { done <- flags.Run(ctx) }()
	select {
	case <-flags.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("flags not read")
	}
	frozen, key := flags.Frozen("straux")
	require.True(t, frozen)
	require.Equal(t, ticks.FreezeKey, key)
	status, err := kv.Status(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 10, status.History())
	cancel()
	require.NoError(t, <-done)
}
