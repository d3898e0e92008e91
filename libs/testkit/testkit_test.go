package testkit_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/testkit/natstest"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestFreshDatabasesAreIsolated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := pgtest.NewDB(t), pgtest.NewDB(t)
	require.NotEqual(t, a.Name, b.Name)
	_, err := a.Pool.Exec(ctx, "CREATE TABLE only_in_a (x int)")
	require.NoError(t, err)
	var n int
	require.NoError(t, b.Pool.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'").Scan(&n))
	require.Zero(t, n)
	var wal string
	require.NoError(t, a.Pool.QueryRow(ctx, "SHOW wal_level").Scan(&wal))
	require.Equal(t, "logical", wal)
}

func TestDatabaseWithSlotIsDropped(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := pgtest.NewDB(t)
	_, err := d.Pool.Exec(ctx, "SELECT pg_create_logical_replication_slot('kit_slot_'||current_database(), 'pgoutput')")
	require.NoError(t, err)
	// cleanup must drop the slot, or DROP DATABASE fails and the test errors.
}

func TestJetStreamCluster(t *testing.T) {
	t.Parallel()
	c := natstest.NewCluster(t, 3)
	nc := c.Servers[0].Connect(t)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx := context.Background()
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "R3", Subjects: []string{"r3.>"}, Replicas: 3})
	require.NoError(t, err)
	_, err = js.Publish(ctx, "r3.x", []byte("hi"))
	require.NoError(t, err)
}

func TestServerRestartKeepsStreams(t *testing.T) {
	t.Parallel()
	s := natstest.NewServer(t)
	ctx := context.Background()
	js, err := jetstream.New(s.Connect(t))
	require.NoError(t, err)
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "KEEP", Subjects: []string{"keep.>"}})
	require.NoError(t, err)
	s.Restart(t)
	js2, err := jetstream.New(s.Connect(t))
	require.NoError(t, err)
	_, err = js2.Stream(ctx, "KEEP")
	require.NoError(t, err)
}
