package service_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/config"
	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/service"
	"cryptopill.dev/jobs/libs/testkit/logtest"
	"cryptopill.dev/jobs/libs/testkit/natstest"
)

// frame is one service started through the frame without Postgres, its HTTP address known up
// front so that /readyz can be read before the service runs.
type frame struct {
	addr string
	ran  chan struct{}
	done chan error
	logs *logtest.Buffer
	stop context.CancelFunc
}

func startFrame(t *testing.T, name, natsURL string, topo *events.Topology) *frame {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	ctx, cancel := context.WithCancel(context.Background())
	f := &frame{addr: addr, ran: make(chan struct{}), done: make(chan error, 1), logs: &logtest.Buffer{}, stop: cancel}
	go func() {
		f.done <- service.Start(ctx, service.Options{
			Name:       name,
			Common:     config.Common{Env: config.EnvDev, NATSURL: natsURL, HTTPAddr: addr, ShutdownGrace: 5 * time.Second},
			NoDatabase: true,
			Logger:     slog.New(slog.NewJSONHandler(f.logs, nil)),
			Topology:   topo,
		}, func(ctx context.Context, _ *service.Process) error {
			close(f.ran)
			<-ctx.Done()
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-f.done:
			require.NoError(t, err)
		case <-time.After(20 * time.Second):
			t.Error("service did not stop")
		}
	})
	return f
}

func (f *frame) waitRunning(t *testing.T) {
	t.Helper()
	select {
	case <-f.ran:
	case err := <-f.done:
		t.Fatalf("service stopped: %v\n%s", err, f.logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("service did not run\n%s", f.logs)
	}
}

func (f *frame) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + f.addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// waitReadyz waits until /readyz answers status with a body containing want.
func (f *frame) waitReadyz(t *testing.T, status int, want string) {
	t.Helper()
	require.Eventually(t, func() bool {
		code, body := f.get(t, "/readyz")
		return code == status && bytes.Contains([]byte(body), []byte(want))
	}, 30*time.Second, 20*time.Millisecond, "readyz %d with %q\n%s", status, want, f.logs)
}

func TestFrameRestartLeavesOthersStreamsAsTheirOwnerSetThem(t *testing.T) {
	t.Parallel()
	ns := natstest.NewServer(t)
	prod := events.NewTopology(events.TopologyConfig{TickDuplicateWindow: time.Hour})
	orch := startFrame(t, events.ServiceOrchestrator, ns.URL, &prod)
	orch.waitRunning(t)

	// straux's frame builds its own topology (30-minute tick window) and starts after.
	straux := startFrame(t, events.ServiceStraux, ns.URL, nil)
	straux.waitRunning(t)
	js, err := jetstream.New(ns.Connect(t))
	require.NoError(t, err)
	ctx := context.Background()
	s, err := js.Stream(ctx, events.StreamTicks)
	require.NoError(t, err)
	require.Equal(t, time.Hour, s.CachedInfo().Config.Duplicates, "CP_TICKS's window after a straux start")
	_, err = js.Consumer(ctx, events.StreamTicks, events.ConsumerStrauxTicks)
	require.NoError(t, err, "straux declared its own durable")
}

func TestFrameWaitsNotReadyForItsOwnersStreams(t *testing.T) {
	t.Parallel()
	ns := natstest.NewServer(t)
	straux := startFrame(t, events.ServiceStraux, ns.URL, nil)
	straux.waitReadyz(t, http.StatusServiceUnavailable, "topology: waiting for stream CP_TICKS (owned by orchestrator)")
	_, metrics := straux.get(t, "/metrics")
	require.Contains(t, metrics, "cp_topology_ready 0")
	require.Contains(t, metrics, `cp_topology_apply_failures_total{reason="stream_missing"}`)
	select {
	case <-straux.ran:
		t.Fatal("straux ran without its streams")
	default:
	}
	require.Contains(t, straux.logs.String(), "waiting for stream CP_TICKS (owned by orchestrator)")

	js, err := jetstream.New(ns.Connect(t))
	require.NoError(t, err)
	ctx := context.Background()
	_, err = js.Stream(ctx, events.StreamTicks)
	require.ErrorIs(t, err, jetstream.ErrStreamNotFound, "a waiting straux does not create the orchestrator's stream")
	// The claim bucket too is the orchestrator's: waited for, not created.
	straux.waitReadyz(t, http.StatusServiceUnavailable, "waiting for stream OBJ_CP_CLAIMS (owned by orchestrator)")
	_, err = js.ObjectStore(ctx, events.ClaimBucket)
	require.ErrorIs(t, err, jetstream.ErrBucketNotFound, "a waiting straux does not create the orchestrator's bucket")

	prod := events.NewTopology(events.TopologyConfig{TickDuplicateWindow: time.Hour, ClaimMaxBytes: 1 << 30})
	require.NoError(t, prod.ApplyAs(ctx, js, events.ServiceOrchestrator))
	straux.waitRunning(t)
	straux.waitReadyz(t, http.StatusOK, "topology: ok")
	s, err := js.Stream(ctx, events.StreamTicks)
	require.NoError(t, err)
	require.Equal(t, time.Hour, s.CachedInfo().Config.Duplicates)
	claims, err := js.Stream(ctx, "OBJ_"+events.ClaimBucket)
	require.NoError(t, err)
	require.EqualValues(t, 1<<30, claims.CachedInfo().Config.MaxBytes, "the owner's bound, not straux's default")
}

func TestFrameStaysNotReadyOnASettingItCannotUpdate(t *testing.T) {
	t.Parallel()
	ns := natstest.NewServer(t)
	js, err := jetstream.New(ns.Connect(t))
	require.NoError(t, err)
	ctx := context.Background()
	topo := events.NewTopology(events.TopologyConfig{})
	require.NoError(t, topo.Apply(ctx, js))
	// An operator recreated straux's durable delivering every tick.
	decl, _ := topo.Consumer(events.ConsumerStrauxTicks)
	require.NoError(t, js.DeleteConsumer(ctx, events.StreamTicks, events.ConsumerStrauxTicks))
	changed := decl.Config
	changed.DeliverPolicy = jetstream.DeliverAllPolicy
	_, err = js.CreateConsumer(ctx, events.StreamTicks, changed)
	require.NoError(t, err)

	straux := startFrame(t, events.ServiceStraux, ns.URL, nil)
	straux.waitReadyz(t, http.StatusServiceUnavailable, "deliver_policy is all on the server but declared new")
	_, metrics := straux.get(t, "/metrics")
	require.Contains(t, metrics, "cp_topology_ready 0")
	require.Contains(t, straux.logs.String(), "nats consumer rm CP_TICKS straux-ticks")
	select {
	case <-straux.ran:
		t.Fatal("straux ran on a durable that is not as declared")
	case err := <-straux.done:
		t.Fatalf("straux stopped instead of waiting for the operator: %v", err)
	default:
	}

	// The operator follows the log's advice; straux recreates its durable and runs.
	require.NoError(t, js.DeleteConsumer(ctx, events.StreamTicks, events.ConsumerStrauxTicks))
	straux.waitRunning(t)
	c, err := js.Consumer(ctx, events.StreamTicks, events.ConsumerStrauxTicks)
	require.NoError(t, err)
	require.Equal(t, jetstream.DeliverNewPolicy, c.CachedInfo().Config.DeliverPolicy)
}
