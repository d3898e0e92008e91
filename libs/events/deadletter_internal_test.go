package events

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/testkit/natstest"
)

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A dead letter that cannot be encoded at all (here: a consumer whose dead-letter subject is
// not a valid subject) would fail the same way on every retry and every instance: it is not
// retried, the message is terminated, and the loss is counted and logged with its sequence,
// instead of the durable being held behind it.
func TestDeadLetterThatCannotBeEncodedIsNotRetried(t *testing.T) {
	t.Parallel()
	srv := natstest.NewServer(t)
	js, err := jetstream.New(srv.Connect(t))
	require.NoError(t, err)
	ctx := context.Background()
	topo := NewTopology(TopologyConfig{})
	topo.Consumers = append(topo.Consumers, ConsumerDecl{Stream: StreamTicks, Config: jetstream.ConsumerConfig{
		Durable: "unencodable", FilterSubject: "cp.tick.unencodable", AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: time.Second, MaxDeliver: -1, Metadata: attemptsMetadata(1),
	}})
	require.NoError(t, topo.Apply(ctx, js))
	var logs lockedBuffer
	c, err := NewConsumer(ctx, js, ConsumerConfig{
		Stream: StreamTicks, Durable: "unencodable", Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
		Handler:             func(context.Context, Event) error { return nil },
		DeadLetterRetryWait: 10 * time.Millisecond, DeadLetterRetryMax: 10 * time.Millisecond,
	})
	require.NoError(t, err)
	c.cfg.Durable = "not a subject token" // DeadLetterSubject is then refused by Encode

	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })
	_, err = js.PublishMsg(ctx, &nats.Msg{Subject: "cp.tick.unencodable", Data: []byte("garbage")})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return c.Stats().DeadLettersLost == 1 }, 15*time.Second, 10*time.Millisecond)
	require.Zero(t, c.Stats().DeadLetterFailures, "not retried as a write failure")
	require.EqualValues(t, 1, c.Stats().DeadLetterEncodeFailures)
	cons, err := js.Consumer(ctx, StreamTicks, "unencodable")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.AckFloor.Stream == 1
	}, 15*time.Second, 10*time.Millisecond, "the durable moves on")
	require.True(t, strings.Contains(logs.String(), `"msg":"consume: dead letter lost: not encodable even minimal`), logs.String())
	require.Contains(t, logs.String(), `"stream_seq":1`)
}
