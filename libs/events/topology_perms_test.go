package events_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/events"
)

// With a NATS identity per service that may change only what the service owns, and only look up
// the streams it uses, every service still applies its part: the least-privilege permissions a
// later deployment gives each service are enough.
func TestApplyAsNeedsOnlyInfoOnStreamsItDoesNotOwn(t *testing.T) {
	t.Parallel()
	straux := &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{
			// Its own stream and durable.
			"$JS.API.STREAM.INFO.CP_JOBS", "$JS.API.STREAM.CREATE.CP_JOBS", "$JS.API.STREAM.UPDATE.CP_JOBS",
			"$JS.API.CONSUMER.INFO.CP_TICKS.straux-ticks", "$JS.API.CONSUMER.CREATE.CP_TICKS.straux-ticks.>",
			// The orchestrator's streams it uses: look-ups only; CP_DLQ created when absent.
			"$JS.API.STREAM.INFO.CP_TICKS", "$JS.API.STREAM.INFO.CP_UNIVERSE",
			"$JS.API.STREAM.INFO.CP_DLQ", "$JS.API.STREAM.CREATE.CP_DLQ",
			// The orchestrator's claim bucket: INFO to bind, its subjects to put, and what a
			// get (object info, an ordered consumer over the chunks) and a note's delete ask.
			"$JS.API.STREAM.INFO.OBJ_CP_CLAIMS", "$O.CP_CLAIMS.>",
			"$JS.API.DIRECT.GET.OBJ_CP_CLAIMS.>", "$JS.API.STREAM.MSG.GET.OBJ_CP_CLAIMS",
			"$JS.API.CONSUMER.CREATE.OBJ_CP_CLAIMS.>", "$JS.API.CONSUMER.DELETE.OBJ_CP_CLAIMS.>",
			"$JS.API.STREAM.PURGE.OBJ_CP_CLAIMS",
		}},
		Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>", "$O.CP_CLAIMS.>"}},
	}
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		Users: []*server.User{
			{Username: events.ServiceOrchestrator, Password: "o"},
			{Username: events.ServiceStraux, Password: "s", Permissions: straux},
		},
	})
	require.NoError(t, err)
	go srv.Start()
	require.True(t, srv.ReadyForConnections(10*time.Second))
	t.Cleanup(srv.Shutdown)
	connect := func(user, pass string) jetstream.JetStream {
		// The refused publish below is expected: no default error handler printing it.
		nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo(user, pass), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
		require.NoError(t, err)
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		require.NoError(t, err)
		return js
	}
	ctx := context.Background()
	orch, strauxJS := connect(events.ServiceOrchestrator, "o"), connect(events.ServiceStraux, "s")
	topo := events.NewTopology(events.TopologyConfig{})

	// Before the orchestrator: straux creates its own stream and the shared CP_DLQ, and waits.
	var missing *events.StreamMissingError
	require.ErrorAs(t, topo.ApplyAs(ctx, strauxJS, events.ServiceStraux), &missing)
	require.NoError(t, topo.ApplyAs(ctx, orch, events.ServiceOrchestrator))
	require.NoError(t, topo.ApplyAs(ctx, strauxJS, events.ServiceStraux))
	require.NoError(t, topo.ApplyAs(ctx, strauxJS, events.ServiceStraux), "a restart")

	// straux puts and gets claim-checked payloads in the orchestrator's bucket.
	cc, err := events.NewClaimCheck(ctx, strauxJS, events.ClaimConfig{})
	require.NoError(t, err)
	m := nats.NewMsg("cp.jobs.x")
	m.Header.Set(events.HeaderMsgID, "perm-1")
	m.Data = make([]byte, 600<<10)
	offloaded, err := cc.Offload(ctx, m)
	require.NoError(t, err)
	require.True(t, offloaded)
	data, err := cc.Resolve(ctx, m.Header, m.Data)
	require.NoError(t, err)
	require.Len(t, data, 600<<10)

	// Applying everything, as every service used to, needs rights straux does not have.
	actx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	require.Error(t, topo.Apply(actx, strauxJS))
}
