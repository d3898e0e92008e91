package events_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/testkit/natstest"
)

// claimBundle is what a claim-check test needs: a server, its JetStream, a claim-check that
// owns CP_CLAIMS, and the bucket itself to look at.
type claimBundle struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	cc    *events.ClaimCheck
	store jetstream.ObjectStore
}

func setupClaims(t *testing.T) *claimBundle {
	t.Helper()
	srv := natstest.NewServer(t)
	nc := srv.Connect(t)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx := context.Background()
	cc, err := events.NewClaimCheck(ctx, js, events.ClaimConfig{Create: true})
	require.NoError(t, err)
	store, err := js.ObjectStore(ctx, events.ClaimBucket)
	require.NoError(t, err)
	return &claimBundle{nc: nc, js: js, cc: cc, store: store}
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

// objectName is the object a claim-checked message refers to, in the default bucket.
func objectName(m *nats.Msg) string {
	return strings.TrimPrefix(m.Header.Get(events.HeaderClaim), events.ClaimBucket+"/")
}

func claimMsg(id string, data []byte) *nats.Msg {
	m := nats.NewMsg("cp.cdc.cin_aux.rt_session.update")
	m.Header.Set(events.HeaderMsgID, id)
	m.Header.Set(events.HeaderID, id)
	m.Data = data
	return m
}

func TestClaimCheckDefaults(t *testing.T) {
	t.Parallel()
	b := setupClaims(t)
	require.Equal(t, events.ClaimBucket, b.cc.Bucket())
	require.Equal(t, int(b.nc.MaxPayload())/2, b.cc.Threshold())
	require.Equal(t, 512<<10, b.cc.Threshold(), "default server max_payload is 1 MiB")

	st, err := b.store.Status(context.Background())
	require.NoError(t, err)
	require.Equal(t, events.ClaimMaxAge, st.TTL())
	require.Greater(t, st.TTL(), events.DLQMaxAge, "a dead letter's copy, written just before it, outlives it")
	require.EqualValues(t, events.DefaultClaimMaxBytes, st.(*jetstream.ObjectBucketStatus).StreamInfo().Config.MaxBytes)
	require.Equal(t, 1, st.Replicas())
}

func TestClaimCheckOffloadsOverThresholdAndResolves(t *testing.T) {
	t.Parallel()
	b := setupClaims(t)
	ctx := context.Background()
	payload := randomBytes(t, 2<<20) // twice max_payload: could never be published as is

	m := claimMsg("cdc-0/1", payload)
	off, err := b.cc.Offload(ctx, m)
	require.NoError(t, err)
	require.True(t, off)
	require.Empty(t, m.Data)
	require.Regexp(t, `^CP_CLAIMS/cdc-0/1/[0-9a-f]{16}$`, m.Header.Get(events.HeaderClaim))
	require.Equal(t, "2097152", m.Header.Get(events.HeaderClaimSize))
	require.Regexp(t, `^SHA-256=[A-Za-z0-9_-]{43}=$`, m.Header.Get(events.HeaderClaimDigest))

	// The object is there before Offload returned, with the same digest.
	info, err := b.store.GetInfo(ctx, objectName(m))
	require.NoError(t, err)
	require.Equal(t, m.Header.Get(events.HeaderClaimDigest), info.Digest)

	// The reference fits in a message: publish and read it back.
	stream, err := b.js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"cp.cdc.>"}})
	require.NoError(t, err)
	_, err = b.js.PublishMsg(ctx, m)
	require.NoError(t, err)
	raw, err := stream.GetLastMsgForSubject(ctx, m.Subject)
	require.NoError(t, err)
	got, err := b.cc.Resolve(ctx, nats.Header(raw.Header), raw.Data)
	require.NoError(t, err)
	require.True(t, bytes.Equal(payload, got))

	s := b.cc.Stats()
	require.Equal(t, uint64(1), s.Offloaded)
	require.Equal(t, uint64(len(payload)), s.OffloadedBytes)
	require.Equal(t, uint64(1), s.Resolved)
}

func TestClaimCheckLeavesSmallMessages(t *testing.T) {
	t.Parallel()
	b := setupClaims(t)
	ctx := context.Background()
	data := randomBytes(t, 1000)
	m := claimMsg("small", bytes.Clone(data))
	off, err := b.cc.Offload(ctx, m)
	require.NoError(t, err)
	require.False(t, off)
	require.Equal(t, data, m.Data)
	require.Empty(t, m.Header.Get(events.HeaderClaim))

	// Resolve hands a message without a claim its own data.
	got, err := b.cc.Resolve(ctx, m.Header, m.Data)
	require.NoError(t, err)
	require.Equal(t, data, got)

	// Exactly at the threshold (headers included) is still small.
	m = claimMsg("edge", nil)
	m.Data = make([]byte, b.cc.Threshold()-(m.Size()-len(m.Subject)))
	off, err = b.cc.Offload(ctx, m)
	require.NoError(t, err)
	require.False(t, off)
	m.Data = append(m.Data, 0)
	off, err = b.cc.Offload(ctx, m)
	require.NoError(t, err)
	require.True(t, off, "one byte over the threshold")

	objs, err := b.store.List(ctx)
	require.NoError(t, err)
	require.Len(t, objs, 1)
}

func TestClaimCheckOffloadIsDeterministic(t *testing.T) {
	t.Parallel()
	b := setupClaims(t)
	ctx := context.Background()
	first := randomBytes(t, 600<<10)
	other := randomBytes(t, 700<<10)

	m1 := claimMsg("change-42", bytes.Clone(first))
	_, err := b.cc.Offload(ctx, m1)
	require.NoError(t, err)
	// A replayed publish of the same id and payload names the same object (the small message
	// is then a JetStream duplicate of the first).
	m2 := claimMsg("change-42", bytes.Clone(first))
	_, err = b.cc.Offload(ctx, m2)
	require.NoError(t, err)
	require.Equal(t, m1.Header, m2.Header)
	objs, err := b.store.List(ctx)
	require.NoError(t, err)
	require.Len(t, objs, 1, "one object per Nats-Msg-Id and payload")

	// A replay whose payload differs does not overwrite what the first message refers to:
	// JetStream keeps the first message, so its object must stay.
	m3 := claimMsg("change-42", bytes.Clone(other))
	_, err = b.cc.Offload(ctx, m3)
	require.NoError(t, err)
	require.NotEqual(t, m1.Header.Get(events.HeaderClaim), m3.Header.Get(events.HeaderClaim))
	require.True(t, strings.HasPrefix(objectName(m3), "change-42/"))
	for _, c := range []struct {
		m    *nats.Msg
		want []byte
	}{{m1, first}, {m3, other}} {
		got, err := b.cc.Resolve(ctx, c.m.Header, c.m.Data)
		require.NoError(t, err)
		require.True(t, bytes.Equal(c.want, got))
	}
	require.EqualValues(t, 3, b.cc.Stats().Offloaded)
}

func TestClaimCheckMissingAndCorrupt(t *testing.T) {
	t.Parallel()
	b := setupClaims(t)
	ctx := context.Background()
	offload := func(id string) *nats.Msg {
		m := claimMsg(id, randomBytes(t, 800<<10))
		off, err := b.cc.Offload(ctx, m)
		require.NoError(t, err)
		require.True(t, off)
		return m
	}

	t.Run("missing object", func(t *testing.T) {
		m := offload("gone")
		require.NoError(t, b.store.Delete(ctx, objectName(m)))
		_, err := b.cc.Resolve(ctx, m.Header, m.Data)
		require.ErrorIs(t, err, events.ErrClaimMissing)
		require.ErrorContains(t, err, "CP_CLAIMS/gone")
	})
	t.Run("missing bucket", func(t *testing.T) {
		m := offload("elsewhere")
		m.Header.Set(events.HeaderClaim, "NO_SUCH_BUCKET/"+objectName(m))
		_, err := b.cc.Resolve(ctx, m.Header, m.Data)
		require.ErrorIs(t, err, events.ErrClaimMissing)
		require.ErrorContains(t, err, "NO_SUCH_BUCKET/elsewhere")
	})
	t.Run("same size, other bytes", func(t *testing.T) {
		m := offload("swapped")
		_, err := b.store.PutBytes(ctx, objectName(m), randomBytes(t, 800<<10))
		require.NoError(t, err)
		_, err = b.cc.Resolve(ctx, m.Header, m.Data)
		require.ErrorIs(t, err, events.ErrClaimCorrupt)
		require.ErrorContains(t, err, "CP_CLAIMS/swapped")
		require.ErrorContains(t, err, "digest")
	})
	t.Run("other size", func(t *testing.T) {
		m := offload("short")
		_, err := b.store.PutBytes(ctx, objectName(m), []byte("truncated"))
		require.NoError(t, err)
		_, err = b.cc.Resolve(ctx, m.Header, m.Data)
		require.ErrorIs(t, err, events.ErrClaimCorrupt)
		require.ErrorContains(t, err, "CP_CLAIMS/short")
	})
	t.Run("malformed headers", func(t *testing.T) {
		for _, h := range []nats.Header{
			{events.HeaderClaim: {"no-slash"}},
			{events.HeaderClaim: {"CP_CLAIMS/x"}, events.HeaderClaimSize: {"ten"}, events.HeaderClaimDigest: {"SHA-256=x"}},
			{events.HeaderClaim: {"CP_CLAIMS/x"}, events.HeaderClaimSize: {"10"}, events.HeaderClaimDigest: {"MD5=x"}},
		} {
			_, err := b.cc.Resolve(ctx, h, nil)
			require.ErrorIs(t, err, events.ErrClaimCorrupt, "%v", h)
		}
	})
	s := b.cc.Stats()
	require.Equal(t, uint64(2), s.Missing)
	require.Equal(t, uint64(5), s.Corrupt)
}

func TestClaimCheckRefusesWhatItCannotOffload(t *testing.T) {
	t.Parallel()
	b := setupClaims(t)
	ctx := context.Background()

	m := nats.NewMsg("cp.x")
	m.Data = randomBytes(t, 600<<10)
	_, err := b.cc.Offload(ctx, m)
	require.ErrorContains(t, err, "no Nats-Msg-Id")

	// Headers alone over the threshold: offloading again cannot help.
	m = claimMsg("big-headers", nil)
	m.Header.Set(events.HeaderClaim, "CP_CLAIMS/big-headers")
	m.Header.Set("X-Huge", string(bytes.Repeat([]byte("h"), 600<<10)))
	_, err = b.cc.Offload(ctx, m)
	require.ErrorContains(t, err, "already claim-checked")
	require.Equal(t, uint64(2), b.cc.Stats().OffloadFailures)
}

func TestNewClaimCheckBindsOnlyWithoutCreate(t *testing.T) {
	t.Parallel()
	srv := natstest.NewServer(t)
	nc := srv.Connect(t)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx := context.Background()

	_, err = events.NewClaimCheck(ctx, js, events.ClaimConfig{})
	require.ErrorIs(t, err, jetstream.ErrBucketNotFound)

	_, err = events.NewClaimCheck(ctx, js, events.ClaimConfig{Threshold: int(nc.MaxPayload())})
	require.ErrorContains(t, err, "max_payload")
	_, err = events.NewClaimCheck(ctx, js, events.ClaimConfig{MaxAge: -1})
	require.ErrorContains(t, err, "negative")

	_, err = events.NewClaimCheck(ctx, js, events.ClaimConfig{Bucket: "OWN", Create: true, Threshold: 1000})
	require.NoError(t, err)
	cc, err := events.NewClaimCheck(ctx, js, events.ClaimConfig{Bucket: "OWN", Threshold: 2000})
	require.NoError(t, err)
	require.Equal(t, "OWN", cc.Bucket())
	require.Equal(t, 2000, cc.Threshold(), "the threshold is the writer's, not the bucket's")
}

// Review item 3: CP_CLAIMS has one owner, the orchestrator. A user waits for it (a
// StreamMissingError naming OBJ_CP_CLAIMS and its owner) and never creates or changes it; the
// owner creates it and brings it in line with its declaration.
func TestClaimBucketIsOwnedByTheOrchestrator(t *testing.T) {
	t.Parallel()
	srv := natstest.NewServer(t)
	js, err := jetstream.New(srv.Connect(t))
	require.NoError(t, err)
	ctx := context.Background()
	status := func() jetstream.ObjectStoreStatus {
		store, err := js.ObjectStore(ctx, events.ClaimBucket)
		require.NoError(t, err)
		st, err := store.Status(ctx)
		require.NoError(t, err)
		return st
	}

	var missing *events.StreamMissingError
	require.ErrorAs(t, events.NewTopology(events.TopologyConfig{}).ApplyAs(ctx, js, events.ServiceStraux), &missing)
	require.ErrorContains(t, events.NewTopology(events.TopologyConfig{}).ApplyAs(ctx, js, events.ServiceStraux),
		"waiting for stream OBJ_CP_CLAIMS (owned by orchestrator)")
	_, err = js.ObjectStore(ctx, events.ClaimBucket)
	require.ErrorIs(t, err, jetstream.ErrBucketNotFound, "a user does not create it")

	require.NoError(t, events.NewTopology(events.TopologyConfig{ClaimMaxBytes: 1 << 30}).ApplyAs(ctx, js, events.ServiceOrchestrator))
	require.EqualValues(t, 1<<30, status().(*jetstream.ObjectBucketStatus).StreamInfo().Config.MaxBytes)
	require.Equal(t, events.ClaimMaxAge, status().TTL())

	// A user's restart with other settings of its own leaves the owner's as they are.
	require.NoError(t, events.NewTopology(events.TopologyConfig{ClaimMaxBytes: 2 << 30}).ApplyAs(ctx, js, events.ServiceStraux))
	require.EqualValues(t, 1<<30, status().(*jetstream.ObjectBucketStatus).StreamInfo().Config.MaxBytes)
	// The owner's new declaration is applied in place.
	require.NoError(t, events.NewTopology(events.TopologyConfig{}).ApplyAs(ctx, js, events.ServiceOrchestrator))
	require.EqualValues(t, events.DefaultClaimMaxBytes, status().(*jetstream.ObjectBucketStatus).StreamInfo().Config.MaxBytes)
}
