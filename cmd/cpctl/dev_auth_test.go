package main

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/events"
)

// The dev stack's NATS admits only its identities, keeps them across restarts, lets cpctl in as
// the operator through the dev.env it writes, and refuses a tick published as straux.
func TestDevNATSIdentities(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	auth, opts, err := newDevNATS(data, 4222)
	require.NoError(t, err)
	opts.Port, opts.HTTPPort = -1, 0 // the test's own ports
	srv, err := server.NewServer(opts)
	require.NoError(t, err)
	go srv.Start()
	require.True(t, srv.ReadyForConnections(10*time.Second))
	t.Cleanup(srv.Shutdown)

	again, _, err := newDevNATS(data, 4222)
	require.NoError(t, err)
	require.Equal(t, auth.keys.Public, again.keys.Public, "a restart keeps the identities")

	_, err = nats.Connect(srv.ClientURL())
	require.ErrorIs(t, err, nats.ErrAuthorization, "no anonymous client")

	// cpctl with dev.env's operator identity (and an unrelated NATS_USER from the shell cleared).
	env := map[string]string{"NATS_URL": srv.ClientURL()}
	for _, kv := range auth.operatorEnv() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	nc, err := connectNATS(func(k string) (string, bool) { v, ok := env[k]; return v, ok }, "cpctl test")
	require.NoError(t, err)
	nc.Close()

	// A service's environment: its own identity, whatever the shell exported.
	senv := map[string]string{"NATS_NKEY": env["NATS_NKEY"], "NATS_USER": "someone"}
	for _, kv := range auth.serviceEnv(events.ServiceStraux) {
		k, v, _ := strings.Cut(kv, "=")
		senv[k] = v
	}
	require.Empty(t, senv["NATS_NKEY"])
	require.Empty(t, senv["NATS_USER"])
	seed, err := nats.NkeyOptionFromSeed(senv["NATS_NKEY_SEED_FILE"])
	require.NoError(t, err)
	refused := make(chan error, 1)
	straux, err := nats.Connect(srv.ClientURL(), seed, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { refused <- err }))
	require.NoError(t, err)
	defer straux.Close()
	require.NoError(t, straux.Publish(events.TickSubject(events.ModuleStraux), []byte("{}")))
	require.NoError(t, straux.Flush())
	select {
	case err := <-refused:
		require.ErrorIs(t, err, nats.ErrPermissionViolation)
	case <-time.After(10 * time.Second):
		t.Fatal("a tick published as straux was not refused")
	}
}
