package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// maxPrefetch caps the messages pulled ahead of free handlers. They get no InProgress heartbeat
// while they wait, so with many slow handlers a large buffer would outlive its ack wait and be
// delivered twice.
const maxPrefetch = 32

// ConsumerConfig configures a Consumer. Stream, Durable and Handler are required.
type ConsumerConfig struct {
	// Stream and Durable name an existing durable pull consumer with explicit acks, e.g.
	// StreamTicks and ConsumerStrauxTicks, declared in a Topology. Its MaxDeliver bounds
	// redelivery, its BackOff spaces retries, its AckWait sets the heartbeat. When MaxDeliver
	// is above 1, its last delivery is reserved for the dead letter: the handler gets
	// MaxDeliver-1 attempts, and a message whose last attempt never settled (the process died
	// mid-handler) is still dead-lettered on that reserved delivery instead of being stranded.
	Stream  string
	Durable string

	// Handler processes each event.
	Handler Handler

	// Middleware wraps Handler inside the built-in Trace, Recover and Timeout middleware; the
	// first is the outermost.
	Middleware []Middleware

	// Concurrency is how many handlers run at once in this process. 0 means 1. At most this
	// many messages (and never more than 32) are pulled ahead of free handlers.
	Concurrency int

	// HandlerTimeout bounds one handler call (the Timeout middleware). 0 means no bound beyond
	// the consumer's lifetime.
	HandlerTimeout time.Duration

	// HeartbeatInterval is how often a running handler's message is marked in progress, which
	// resets the server's ack timer. 0 means a third of the consumer's AckWait.
	HeartbeatInterval time.Duration

	// RetryDelay is the redelivery delay after the handler failed on the given delivery
	// (1-based). nil means the consumer's BackOff entry for that delivery (the last entry once
	// past the end), or, without a BackOff, 1s doubling per delivery up to 1 minute.
	RetryDelay func(delivery uint64) time.Duration

	// ShutdownTimeout is how long Run waits, once its context ends, for running handlers before
	// cancelling their contexts. 0 means 30s.
	ShutdownTimeout time.Duration

	// Source is the ce-source of this consumer's dead letters. "" means Durable.
	Source string

	// Logger logs dead letters and unexpected consume errors. nil means slog.Default().
	Logger *slog.Logger

	// TracerProvider makes the consumer spans. nil means otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
}

// ConsumerStats counts a Consumer's outcomes since it was created.
type ConsumerStats struct {
	// Acked is messages handled successfully.
	Acked uint64
	// Retried is handler failures answered with a delayed redelivery.
	Retried uint64
	// DeadLettered is messages written to CP_DLQ and terminated.
	DeadLettered uint64
	// DeadLetterFailures is dead letters that could not be written; the message was left for
	// redelivery instead.
	DeadLetterFailures uint64
}

// Consumer runs a Handler over one durable pull consumer: explicit acks, heartbeats for long
// handlers, delayed redelivery, dead letters, graceful stop. Several processes may run the same
// durable; JetStream spreads the messages among them.
type Consumer struct {
	cfg        ConsumerConfig
	js         jetstream.JetStream
	cons       jetstream.Consumer
	handler    Handler
	log        *slog.Logger
	maxDeliver int
	attempts   int // handler attempts: maxDeliver-1 when maxDeliver > 1 (the last is reserved), else maxDeliver; 0 = unbounded
	backOff    []time.Duration
	heartbeat  time.Duration
	running    atomic.Bool

	acked, retried, deadLettered, dlqFailures atomic.Uint64
}

// NewConsumer looks up the durable consumer and prepares to run cfg.Handler over it. The
// consumer must exist (Topology.Apply); a missing one gives an error wrapping
// jetstream.ErrConsumerNotFound. Dead letters are published through js.
func NewConsumer(ctx context.Context, js jetstream.JetStream, cfg ConsumerConfig) (*Consumer, error) {
	if cfg.Stream == "" || cfg.Durable == "" || cfg.Handler == nil {
		return nil, errors.New("events: ConsumerConfig needs Stream, Durable and Handler")
	}
	cons, err := js.Consumer(ctx, cfg.Stream, cfg.Durable)
	if err != nil {
		return nil, fmt.Errorf("consumer %s on %s: %w", cfg.Durable, cfg.Stream, err)
	}
	info := cons.CachedInfo()
	if info.Config.AckPolicy != jetstream.AckExplicitPolicy {
		return nil, fmt.Errorf("consumer %s on %s: ack policy %s, want explicit", cfg.Durable, cfg.Stream, info.Config.AckPolicy)
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 1
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 30 * time.Second
	}
	if cfg.Source == "" {
		cfg.Source = cfg.Durable
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = otel.GetTracerProvider()
	}
	c := &Consumer{
		cfg:        cfg,
		js:         js,
		cons:       cons,
		log:        cfg.Logger.With("stream", cfg.Stream, "consumer", cfg.Durable),
		maxDeliver: info.Config.MaxDeliver,
		attempts:   info.Config.MaxDeliver,
		backOff:    info.Config.BackOff,
		heartbeat:  cfg.HeartbeatInterval,
	}
	if c.maxDeliver > 1 {
		c.attempts = c.maxDeliver - 1
	}
	if c.heartbeat <= 0 {
		c.heartbeat = max(info.Config.AckWait/3, 10*time.Millisecond)
	}
	mws := append([]Middleware{Trace(cfg.TracerProvider, cfg.Durable), Recover(), Timeout(cfg.HandlerTimeout)}, cfg.Middleware...)
	c.handler = Chain(cfg.Handler, mws...)
	return c, nil
}

// Run consumes until ctx ends, then stops gracefully: it stops pulling, returns the messages it
// had pulled but not started for immediate redelivery, waits for running handlers (up to
// ShutdownTimeout, then cancels their contexts and waits for them to return), and returns nil.
// It returns an error when consuming cannot go on (the consumer was deleted, the connection
// closed). A Consumer runs once at a time (ErrAlreadyRunning).
func (c *Consumer) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer c.running.Store(false)

	// Pull no more than there are handlers, and at most maxPrefetch: a pulled message waits
	// unheartbeated.
	it, err := c.cons.Messages(jetstream.PullMaxMessages(min(c.cfg.Concurrency, maxPrefetch)))
	if err != nil {
		return fmt.Errorf("consume %s on %s: %w", c.cfg.Durable, c.cfg.Stream, err)
	}
	// Handlers outlive ctx: stopping must not abort work in flight, only ShutdownTimeout does.
	hctx, cancelHandlers := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHandlers()

	slots := make(chan struct{}, c.cfg.Concurrency)
	var wg sync.WaitGroup
	var runErr error
loop:
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			break loop
		}
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			<-slots
			switch {
			case ctx.Err() != nil:
				break loop
			case errors.Is(err, jetstream.ErrMsgIteratorClosed), errors.Is(err, jetstream.ErrConsumerDeleted),
				errors.Is(err, jetstream.ErrConsumerNotFound), errors.Is(err, nats.ErrConnectionClosed):
				runErr = fmt.Errorf("consume %s on %s: %w", c.cfg.Durable, c.cfg.Stream, err)
				break loop
			default:
				c.log.Warn("consume: next message", "err", err)
				select {
				case <-time.After(100 * time.Millisecond):
				case <-ctx.Done():
					break loop
				}
				continue
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			c.process(hctx, msg)
		}()
	}

	// Stop pulling; hand back what was pulled but not started.
	it.Drain()
	for {
		msg, err := it.Next(jetstream.NextMaxWait(time.Second))
		if err != nil {
			break
		}
		_ = msg.Nak()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(c.cfg.ShutdownTimeout):
		c.log.Warn("consume: shutdown timeout, cancelling running handlers", "timeout", c.cfg.ShutdownTimeout)
		cancelHandlers()
		<-done
	}
	return runErr
}

// Stats returns the consumer's counters.
func (c *Consumer) Stats() ConsumerStats {
	return ConsumerStats{
		Acked:              c.acked.Load(),
		Retried:            c.retried.Load(),
		DeadLettered:       c.deadLettered.Load(),
		DeadLetterFailures: c.dlqFailures.Load(),
	}
}

// process decodes, handles and settles one message.
func (c *Consumer) process(ctx context.Context, msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		// Not a JetStream delivery; nothing to settle.
		c.log.Error("consume: message without metadata", "subject", msg.Subject(), "err", err)
		return
	}
	stopHeartbeat := c.startHeartbeat(msg)
	defer stopHeartbeat()
	if c.attempts < c.maxDeliver && md.NumDelivered > uint64(c.attempts) {
		// The reserved delivery: the handler had all its attempts, the last one never settled.
		c.deadLetter(ctx, msg, md, eventsv1.DeadLetter_REASON_RETRIES_EXHAUSTED, fmt.Errorf(
			"%w: the last of %d attempts was never settled (its process stopped mid-handler)", ErrAttemptsExhausted, c.attempts))
		return
	}

	ctx, ev, err := Decode(ctx, &nats.Msg{Subject: msg.Subject(), Header: msg.Headers(), Data: msg.Data()})
	if err != nil {
		c.deadLetter(ctx, msg, md, eventsv1.DeadLetter_REASON_UNDECODABLE, err)
		return
	}
	ev.Metadata = md
	err = c.handler(ctx, ev)
	// No InProgress after this point: one landing after a delayed Nak would push the retry back
	// to the ack wait.
	stopHeartbeat()
	switch {
	case err == nil:
		if err := msg.Ack(); err != nil {
			c.log.Warn("consume: ack", "subject", ev.Subject, "id", ev.ID, "err", err)
		}
		c.acked.Add(1)
	case errors.Is(err, ErrPermanent):
		c.deadLetter(ctx, msg, md, eventsv1.DeadLetter_REASON_REJECTED, err)
	case c.attempts > 0 && md.NumDelivered >= uint64(c.attempts):
		c.deadLetter(ctx, msg, md, eventsv1.DeadLetter_REASON_RETRIES_EXHAUSTED, err)
	default:
		delay := c.retryDelay(md.NumDelivered)
		c.log.Debug("consume: handler failed, redelivering", "subject", ev.Subject, "id", ev.ID,
			"delivery", md.NumDelivered, "delay", delay, "err", err)
		if err := msg.NakWithDelay(delay); err != nil {
			c.log.Warn("consume: nak", "subject", ev.Subject, "id", ev.ID, "err", err)
		}
		c.retried.Add(1)
	}
}

// deadLetter writes msg to CP_DLQ and terminates it. If the dead letter cannot be written, the
// message is left for redelivery (never dropped): on its last delivery the failure is logged as
// an error, and the message stays in its stream at its sequence.
func (c *Consumer) deadLetter(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata, reason eventsv1.DeadLetter_Reason, cause error) {
	dl := &eventsv1.DeadLetter{
		Reason:          reason,
		Error:           cause.Error(),
		OriginalSubject: msg.Subject(),
		OriginalHeaders: make(map[string]*eventsv1.HeaderValues, len(msg.Headers())),
		OriginalPayload: msg.Data(),
		Stream:          md.Stream,
		StreamSequence:  md.Sequence.Stream,
		Consumer:        md.Consumer,
		DeliveryCount:   md.NumDelivered,
		FailedAt:        timestamppb.Now(),
	}
	for k, vs := range msg.Headers() {
		dl.OriginalHeaders[k] = &eventsv1.HeaderValues{Values: vs}
	}
	ev := Event{
		Subject: DeadLetterSubject(c.cfg.Durable),
		ID:      DeadLetterID(md.Stream, md.Sequence.Stream, c.cfg.Durable),
		Source:  c.cfg.Source,
		Payload: dl,
	}
	log := c.log.With("subject", msg.Subject(), "stream_seq", md.Sequence.Stream,
		"delivery", md.NumDelivered, "reason", reason.String(), "cause", cause)

	err := c.publishDeadLetter(ctx, ev)
	if err != nil {
		c.dlqFailures.Add(1)
		if c.maxDeliver > 0 && md.NumDelivered >= uint64(c.maxDeliver) {
			log.Error("consume: dead letter not written on last delivery; message stays in its stream only", "err", err)
		} else {
			log.Warn("consume: dead letter not written; redelivering", "err", err)
		}
		_ = msg.NakWithDelay(c.retryDelay(md.NumDelivered))
		return
	}
	if err := msg.TermWithReason("dead-lettered: " + reason.String()); err != nil {
		log.Warn("consume: term after dead letter", "err", err)
	}
	c.deadLettered.Add(1)
	log.Warn("consume: dead-lettered", "dlq_subject", ev.Subject)
}

func (c *Consumer) publishDeadLetter(ctx context.Context, ev Event) error {
	nmsg, err := Encode(ctx, ev)
	if err != nil {
		return err
	}
	var lastErr error
	for attempt := range 3 {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
		}
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_, lastErr = c.js.PublishMsg(actx, nmsg)
		cancel()
		if lastErr == nil || !retryable(lastErr) {
			return lastErr
		}
	}
	return lastErr
}

func (c *Consumer) startHeartbeat(msg jetstream.Msg) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(c.heartbeat)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				_ = msg.InProgress()
			case <-done:
				return
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); <-finished }) }
}

func (c *Consumer) retryDelay(delivery uint64) time.Duration {
	if c.cfg.RetryDelay != nil {
		return c.cfg.RetryDelay(delivery)
	}
	if n := len(c.backOff); n > 0 {
		i := int(min(delivery, uint64(n))) - 1
		return c.backOff[max(i, 0)]
	}
	d := time.Second << min(delivery-1, 6)
	return min(d, time.Minute)
}
