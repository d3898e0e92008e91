package service_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/config"
	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/service"
	"cryptopill.dev/jobs/libs/testkit/natstest"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestServiceLifecycle(t *testing.T) {
	t.Parallel()
	d := pgtest.NewEmptyDB(t)
	ns := natstest.NewServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	ready := make(chan *service.Process, 1)
	drained := false
	errc := make(chan error, 1)
	go func() {
		errc <- service.Start(ctx, service.Options{
			Name: events.ServiceOrchestrator,
			Common: config.Common{
				Env: config.EnvDev, DatabaseURL: d.URL, NATSURL: ns.URL, HTTPAddr: "127.0.0.1:0",
				MigrateOnStart: true, ShutdownGrace: 5 * time.Second,
			},
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		}, func(ctx context.Context, p *service.Process) error {
			ready <- p
			<-ctx.Done()
			time.Sleep(50 * time.Millisecond) // in-flight work finishing
			drained = true
			return nil
		})
	}()
	var p *service.Process
	select {
	case p = <-ready:
	case err := <-errc:
		t.Fatalf("service stopped early: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("service did not start")
	}

	// Migrated at start, stamped in ops.session_log.
	var svcName, env string
	require.NoError(t, d.Pool.QueryRow(ctx, `SELECT service, env FROM ops.session_log WHERE id = $1`, p.SessionID).Scan(&svcName, &env))
	require.Equal(t, "orchestrator", svcName)
	require.Equal(t, "dev", env)

	// The streams it owns declared.
	js, err := jetstream.New(ns.Connect(t))
	require.NoError(t, err)
	for _, name := range []string{events.StreamTicks, events.StreamCDC, events.StreamDLQ} {
		_, err := js.Stream(ctx, name)
		require.NoError(t, err, name)
	}

	// The claim bucket is there and the publisher offloads what max_payload would refuse.
	_, err = js.ObjectStore(ctx, events.ClaimBucket)
	require.NoError(t, err)
	_, err = p.Publisher.Publish(ctx, events.Event{Subject: events.TickSubject("lifecycle"), ID: "big-tick",
		Payload: &eventsv1.Tick{Module: "lifecycle", RunnerSessionId: strings.Repeat("r", 2<<20)}})
	require.NoError(t, err)
	require.EqualValues(t, 1, p.Claims.Stats().Offloaded)

	for _, c := range []struct{ path, want string }{
		{"/healthz", "ok"},
		{"/readyz", "postgres: ok"},
		{"/metrics", `cp_events_claims_total{claim_check="orchestrator",result="offloaded"} 1`},
		{"/metrics", `cp_build_info{goversion="` + runtime.Version() + `",service="orchestrator",version="` + service.Version() + `"} 1`},
	} {
		path, want := c.path, c.want
		resp, err := http.Get("http://" + p.HTTPAddr + path)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		require.Contains(t, string(body), want, path)
	}

	// Listed by the NATS services API (`nats micro info orchestrator`) with its session, and
	// an ops endpoint answers on cp.ops.orchestrator.<name>.
	nc := ns.Connect(t)
	msg, err := nc.Request("$SRV.INFO.orchestrator", nil, 5*time.Second)
	require.NoError(t, err)
	var info micro.Info
	require.NoError(t, json.Unmarshal(msg.Data, &info))
	require.Equal(t, strconv.FormatInt(p.SessionID, 10), info.Metadata[service.MetaSessionID])
	require.Equal(t, service.Version(), info.Metadata[service.MetaVersion])
	require.NoError(t, p.AddOpsEndpoint("echo", micro.HandlerFunc(func(r micro.Request) { _ = r.Respond(r.Data()) })))
	msg, err = nc.Request("cp.ops.orchestrator.echo", []byte("hi"), 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, "hi", string(msg.Data))

	cancel()
	require.NoError(t, <-errc)
	require.True(t, drained, "run returned before shutdown completed")
}

func TestServiceReportsUnreachableDatabase(t *testing.T) {
	t.Parallel()
	err := service.Start(context.Background(), service.Options{
		Name:   "nodb",
		Common: config.Common{DatabaseURL: "postgres://u:hunter2@127.0.0.1:1/x?sslmode=disable&connect_timeout=2", HTTPAddr: "127.0.0.1:0", ShutdownGrace: time.Second},
		NoNATS: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, func(context.Context, *service.Process) error { return nil })
	require.Error(t, err)
	require.NotContains(t, err.Error(), "hunter2", "secrets never appear in errors")
}

// A one-shot run next to its daemon on the same host does not fight it for the HTTP port.
func TestOneShotRunNeedsNoHTTPPort(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDB(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	ran := false
	err = service.Start(context.Background(), service.Options{
		Name:   "once",
		Common: config.Common{DatabaseURL: d.URL, HTTPAddr: taken.Addr().String(), ShutdownGrace: time.Second},
		NoNATS: true, NoHTTP: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, func(context.Context, *service.Process) error { ran = true; return nil })
	require.NoError(t, err)
	require.True(t, ran)
}

// A running process heartbeats ops.session_log.last_seen_at at its interval; returning stamps
// stopped_at (what `cpctl status` tells a stopped replica from a lost one by).
func TestSessionHeartbeatAndStop(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan int64, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- service.Start(ctx, service.Options{
			Name:   "beating",
			Common: config.Common{DatabaseURL: d.URL, ShutdownGrace: 5 * time.Second},
			NoNATS: true, NoHTTP: true, Heartbeat: 10 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		}, func(ctx context.Context, p *service.Process) error {
			started <- p.SessionID
			<-ctx.Done()
			return nil
		})
	}()
	var id int64
	select {
	case id = <-started:
	case err := <-errc:
		t.Fatalf("service stopped early: %v", err)
	}
	seen := func() (n int) {
		var ts *time.Time
		require.NoError(t, d.Pool.QueryRow(context.Background(), `SELECT last_seen_at FROM ops.session_log WHERE id = $1`, id).Scan(&ts))
		if ts != nil {
			n = int(ts.UnixMicro())
		}
		return n
	}
	require.Eventually(t, func() bool { return seen() != 0 }, 30*time.Second, 5*time.Millisecond, "first heartbeat")
	first := seen()
	require.Eventually(t, func() bool { return seen() > first }, 30*time.Second, 5*time.Millisecond, "a later heartbeat")
	var stopped *time.Time
	require.NoError(t, d.Pool.QueryRow(context.Background(), `SELECT stopped_at FROM ops.session_log WHERE id = $1`, id).Scan(&stopped))
	require.Nil(t, stopped, "running")

	cancel()
	require.NoError(t, <-errc)
	var every time.Duration
	require.NoError(t, d.Pool.QueryRow(context.Background(), `SELECT stopped_at, heartbeat_every FROM ops.session_log WHERE id = $1`, id).Scan(&stopped, &every))
	require.NotNil(t, stopped, "a clean stop is stamped")
	require.Equal(t, 10*time.Millisecond, every)
}
