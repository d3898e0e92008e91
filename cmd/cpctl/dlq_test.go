package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/config"
	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/service"
	"cryptopill.dev/jobs/libs/testkit/natstest"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
)

// dlqFixture is a real NATS with the platform's streams and a running seeder process (the
// service runtime with its deliver endpoint) whose handler a test can break; cpctl runs against
// it as an operator would.
type dlqFixture struct {
	t       *testing.T
	url     string
	js      jetstream.JetStream
	broken  atomic.Bool
	handled atomic.Int64
	now     time.Time
}

func setupDLQFixture(t *testing.T) *dlqFixture {
	t.Helper()
	t.Parallel()
	ns := natstest.NewServer(t)
	f := &dlqFixture{t: t, url: ns.URL, now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	var err error
	f.js, err = jetstream.New(ns.Connect(t))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, events.NewTopology(events.TopologyConfig{}).ApplyAs(ctx, f.js, events.ServiceOrchestrator))
	running := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- service.Start(ctx, service.Options{Name: events.ServiceSeeder, NoDatabase: true, NoHTTP: true,
			Common: config.Common{Env: config.EnvDev, NATSURL: ns.URL, ShutdownGrace: 5 * time.Second},
			Logger: slog.New(slog.DiscardHandler)},
			func(ctx context.Context, p *service.Process) error {
				c, err := events.NewConsumer(ctx, p.JS, events.ConsumerConfig{Stream: events.StreamUniverse, Durable: events.ConsumerSeederUniverse,
					Logger: p.Logger, Handler: func(ctx context.Context, ev events.Event) error {
						if f.broken.Load() {
							return events.Permanent(errors.New("universe table unreadable"))
						}
						f.handled.Add(1)
						return nil
					}})
				if err != nil {
					return err
				}
				p.Events.AddConsumer(c)
				close(running)
				return c.Run(ctx)
			})
	}()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	select {
	case <-running:
	case err := <-done:
		t.Fatalf("service stopped: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("service did not start")
	}
	return f
}

// run runs a cpctl command (dlq or replay) and returns its exit status, stdout and stderr.
func (f *dlqFixture) run(cmd func(context.Context, []string, cmdEnv, func() time.Time) int, args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	env := cmdEnv{stdout: &out, stderr: &errOut, lookupEnv: func(k string) (string, bool) {
		if k == "NATS_URL" {
			return f.url, true
		}
		return "", false
	}}
	code := cmd(context.Background(), args, env, func() time.Time { return f.now })
	return code, out.String(), errOut.String()
}

func (f *dlqFixture) list() dlqListReport {
	f.t.Helper()
	_, out, errOut := f.run(dlqCommand, "list", "--json")
	var rep dlqListReport
	require.NoError(f.t, json.Unmarshal([]byte(out), &rep), errOut)
	return rep
}

// A malformed message published to a consumed subject is listed and shown; re-driven while its
// consumer is broken it comes back as a new entry (exit 1); once the consumer is fixed, a good
// event re-drives clean (exit 0) and its entry is gone; purge needs -yes.
func TestDLQCommands(t *testing.T) {
	f := setupDLQFixture(t)
	ctx := context.Background()
	code, out, _ := f.run(dlqCommand, "list")
	require.Equal(t, 0, code)
	require.Contains(t, out, "no dead letters")

	_, err := f.js.Publish(ctx, events.SubjectUniverseChanged, []byte(`not an event`))
	require.NoError(t, err)
	f.broken.Store(true)
	msg, err := events.Encode(ctx, events.Event{Subject: events.SubjectUniverseChanged, ID: "u-7", Source: "test",
		Payload: &eventsv1.UniverseChanged{Version: "v7", Added: []string{"SOLUSDT"}}})
	require.NoError(t, err)
	_, err = f.js.PublishMsg(ctx, msg)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return f.list().Total == 2 }, 30*time.Second, 50*time.Millisecond)

	code, out, _ = f.run(dlqCommand, "list")
	require.Equal(t, 1, code, "dead letters are unhealthy")
	require.Contains(t, out, "seeder-universe  seeder   2")
	require.Contains(t, out, "REJECTED=1 UNDECODABLE=1")
	rep := f.list()
	malformed, good := rep.Entries[0], rep.Entries[1]
	require.Equal(t, "REASON_UNDECODABLE", malformed.Reason)

	code, out, _ = f.run(dlqCommand, "show", strconv.FormatUint(good.Seq, 10))
	require.Equal(t, 0, code)
	require.Contains(t, out, "original subject  cp.universe.changed")
	require.Contains(t, out, "payload (cryptopill.universe_changed.v1):")
	require.Contains(t, out, `"added": [`)
	require.Contains(t, out, "ce-id: u-7")
	code, out, _ = f.run(dlqCommand, "show", "--json", strconv.FormatUint(malformed.Seq, 10))
	require.Equal(t, 0, code)
	var shown dlqShowReport
	require.NoError(t, json.Unmarshal([]byte(out), &shown))
	require.Equal(t, "not an event", shown.PayloadRaw)
	require.NotEmpty(t, shown.PayloadError)

	// Still broken: both dead-lettered anew, nothing lost.
	code, out, _ = f.run(dlqCommand, "redrive", "-all")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "0 handled, 2 failed again")
	rep = f.list()
	require.Equal(t, 2, rep.Total)
	require.Equal(t, malformed.Seq, rep.Entries[0].RedrivenFrom)

	f.broken.Store(false)
	code, out, errOut := f.run(dlqCommand, "redrive", strconv.FormatUint(rep.Entries[1].Seq, 10))
	require.Equal(t, 0, code, out+errOut)
	require.Contains(t, out, "1 handled, 0 failed again")
	require.Equal(t, int64(1), f.handled.Load())
	rep = f.list()
	require.Equal(t, 1, rep.Total)

	code, _, errOut = f.run(dlqCommand, "purge", "-consumer", events.ConsumerSeederUniverse)
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "add -yes")
	code, out, _ = f.run(dlqCommand, "purge", "-consumer", events.ConsumerSeederUniverse, "-yes")
	require.Equal(t, 0, code)
	require.Contains(t, out, "removed 1")
	require.Equal(t, 0, f.list().Total)

	// Usage errors exit 2 and say what was wrong.
	code, _, errOut = f.run(dlqCommand, "show", "abc")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, `"abc" is not a CP_DLQ sequence`)
	code, _, errOut = f.run(dlqCommand, "redrive")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "redrive takes one of")
	code, _, errOut = f.run(dlqCommand, "show", "999")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "no such entry")
}

func TestReplayCommand(t *testing.T) {
	f := setupDLQFixture(t)
	ctx := context.Background()
	for i := range 3 {
		msg, err := events.Encode(ctx, events.Event{Subject: events.SubjectUniverseChanged, ID: fmt.Sprint("r-", i), Source: "test",
			Payload: &eventsv1.UniverseChanged{Version: fmt.Sprint(i)}})
		require.NoError(t, err)
		_, err = f.js.PublishMsg(ctx, msg)
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return f.handled.Load() == 3 }, 30*time.Second, 20*time.Millisecond)
	code, out, errOut := f.run(replayCommand, "-stream", events.StreamUniverse, "-service", events.ServiceSeeder, "-start-seq", "1")
	require.Equal(t, 0, code, out+errOut)
	require.Contains(t, out, "replayed CP_UNIVERSE (cp.universe.changed) seq 1-3 to seeder's seeder-universe: 3 messages, 3 ok, 0 failed")
	require.Contains(t, out, "the durable was not touched")
	require.Contains(t, errOut, "replay CP_UNIVERSE", "progress on stderr")
	require.Equal(t, int64(6), f.handled.Load())

	f.broken.Store(true)
	code, out, _ = f.run(replayCommand, "-stream", events.StreamUniverse, "-service", events.ServiceSeeder, "-start-seq", "2", "-end-seq", "2", "--json")
	require.Equal(t, 1, code)
	var rep struct {
		Messages, Failed int
		Failures         []struct{ Error string }
	}
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.Equal(t, 1, rep.Messages)
	require.Equal(t, 1, rep.Failed)
	require.Contains(t, rep.Failures[0].Error, "universe table unreadable")

	code, _, errOut = f.run(replayCommand, "-stream", events.StreamUniverse, "-service", events.ServiceSeeder)
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "exactly one of -since and -start-seq")
	code, _, errOut = f.run(replayCommand, "-stream", events.StreamUniverse, "-service", events.ServiceSeeder, "-since", "yesterday")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, `-since "yesterday"`)
}
