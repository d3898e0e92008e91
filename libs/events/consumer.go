package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// MetadataAttempts is the durable consumer metadata key that sets the handler attempts per
// message (a positive integer), for a durable declared with an unbounded MaxDeliver (-1). The
// server then redelivers an unsettled message forever, so a dead letter that could not be
// written before the process stopped is never dropped by the server: the next delivery beyond
// the attempts writes it. With a bounded MaxDeliver and no such key, the attempts are
// MaxDeliver-1 (the last delivery is reserved for the dead letter).
const MetadataAttempts = "cp_attempts"

// maxPrefetch caps the messages pulled ahead of free handlers. They get no InProgress heartbeat
// while they wait, so with many slow handlers a large buffer would outlive its ack wait and be
// delivered twice.
const maxPrefetch = 32

// pullExpiry and pullHeartbeat bound how long a pull can go dead unnoticed. A pull request lives
// on the server that led the consumer when it was sent; when that server dies (an R3 leader
// loss) the client only learns it from missed idle heartbeats, after 2×heartbeat, and then pulls
// anew. nats.go's default (expiry 30 s, heartbeat 15 s) left a consumer idle for 30 s after a
// leader kill in the chaos suite; these detect it in 2 s at the cost of one pull per 6 s and one
// heartbeat per second per idle consumer.
const (
	pullExpiry    = 6 * time.Second
	pullHeartbeat = time.Second
)

// PullOptions are the pull settings every long-running consumer of the platform uses (see
// pullExpiry): exported for the consumers that do not run through Consumer (ordered consumers).
func PullOptions() []jetstream.PullMessagesOpt {
	return []jetstream.PullMessagesOpt{jetstream.PullExpiry(pullExpiry), jetstream.PullHeartbeat(pullHeartbeat)}
}

// ConsumerConfig configures a Consumer. Stream, Durable and Handler are required.
type ConsumerConfig struct {
	// Stream and Durable name an existing durable pull consumer with explicit acks, e.g.
	// StreamTicks and ConsumerStrauxTicks, declared in a Topology. Its BackOff spaces retries,
	// its AckWait sets the heartbeat. The handler gets the attempts its metadata
	// MetadataAttempts sets, else MaxDeliver-1 when MaxDeliver is above 1: the deliveries
	// beyond the attempts are reserved for the dead letter, so a message whose last attempt
	// never settled (the process died mid-handler) is still dead-lettered instead of being
	// stranded. Declare MaxDeliver -1 with MetadataAttempts: with a bounded MaxDeliver, a dead
	// letter still unwritten on the last delivery when the consumer stops cannot be redelivered
	// (the server gives up on the message) and is counted as lost.
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

	// ClaimCheck resolves claim-checked payloads (header Cp-Claim) before decoding, so handlers
	// see the whole payload, and offloads dead letters too large for a message. nil means the
	// consumer binds the CP_CLAIMS bucket on first need, with the default threshold.
	ClaimCheck *ClaimCheck

	// DeadLetterRetryWait is the wait after a failed dead-letter write; it doubles per failure
	// up to DeadLetterRetryMax. The write is retried, the message heartbeated, until it succeeds
	// or the consumer stops. 0 means 250ms and 10s.
	DeadLetterRetryWait, DeadLetterRetryMax time.Duration

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
	// DeadLetterFailures is failed dead-letter writes; each is retried until it succeeds or the
	// consumer stops.
	DeadLetterFailures uint64
	// DeadLetterPending is messages whose dead letter is being retried right now; they are not
	// settled until it is written.
	DeadLetterPending int64
	// DeadLetterEncodeFailures is dead letters that could not be encoded whole (written
	// minimal instead: stream, sequence, reason, raw payload and the encoding error).
	DeadLetterEncodeFailures uint64
	// DeadLettersLost is dead letters given up when the consumer stopped on a last delivery of a
	// bounded MaxDeliver (the server will not redeliver them), and dead letters not encodable
	// even minimal (terminated: they would fail on every instance); each is logged as an error
	// with its stream and sequence (the message itself stays in its stream).
	DeadLettersLost uint64
	// SettleFailures is acks, naks, terms and heartbeats (InProgress) that could not be sent,
	// by operation ("ack", "nak", "term", "in_progress"). A lost ack or term means a
	// redelivery; a lost heartbeat may mean one.
	SettleFailures map[string]uint64
	// ConsumeErrors is failed pulls the consumer went on after, and deliveries without
	// JetStream metadata (which cannot be settled).
	ConsumeErrors uint64
	// OperatorDeliveries is messages an operator handed to the handler outside JetStream
	// (Deliver), by mode ("redrive", "replay") then outcome ("ok", "failed", "dead_lettered").
	OperatorDeliveries map[DeliverMode]map[string]uint64
}

// Consumer runs a Handler over one durable pull consumer: explicit acks, heartbeats for long
// handlers, delayed redelivery, dead letters, graceful stop. Several processes may run the same
// durable; JetStream spreads the messages among them.
type Consumer struct {
	cfg       ConsumerConfig
	js        jetstream.JetStream
	cons      jetstream.Consumer
	handler   Handler
	log       *slog.Logger
	claims    *ClaimCheck
	lastDeliv uint64 // the server's MaxDeliver; 0 = it redelivers forever
	attempts  uint64 // handler attempts per message; 0 = unbounded
	backOff   []time.Duration
	heartbeat time.Duration
	running   atomic.Bool

	acked, retried, deadLettered, dlqFailures, dlqLost, consumeErrors atomic.Uint64
	dlqEncodeFailures                                                 atomic.Uint64
	dlqPending                                                        atomic.Int64
	settleFailures                                                    [settleOps]atomic.Uint64
	// operator deliveries (Deliver), by mode (redrive, replay) and outcome.
	delivered      [2][3]atomic.Uint64
	handlerSeconds atomic.Value // prometheus.Observer, set by Collector.AddConsumer
}

// Settlement operations, for SettleFailures.
const (
	opAck = iota
	opNak
	opTerm
	opInProgress
	settleOps
)

var settleOpNames = [settleOps]string{"ack", "nak", "term", "in_progress"}

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
	if cfg.DeadLetterRetryWait <= 0 {
		cfg.DeadLetterRetryWait = 250 * time.Millisecond
	}
	if cfg.DeadLetterRetryMax <= 0 {
		cfg.DeadLetterRetryMax = 10 * time.Second
	}
	if cfg.ClaimCheck == nil {
		if cfg.ClaimCheck, err = newClaimCheck(js, ClaimConfig{}); err != nil {
			return nil, fmt.Errorf("consumer %s on %s: %w", cfg.Durable, cfg.Stream, err)
		}
	}
	attempts, err := budget(info.Config)
	if err != nil {
		return nil, fmt.Errorf("consumer %s on %s: %w", cfg.Durable, cfg.Stream, err)
	}
	c := &Consumer{
		cfg:       cfg,
		js:        js,
		cons:      cons,
		log:       cfg.Logger.With("stream", cfg.Stream, "consumer", cfg.Durable),
		claims:    cfg.ClaimCheck,
		lastDeliv: uint64(max(info.Config.MaxDeliver, 0)),
		attempts:  attempts,
		backOff:   info.Config.BackOff,
		heartbeat: cfg.HeartbeatInterval,
	}
	if c.heartbeat <= 0 {
		c.heartbeat = max(info.Config.AckWait/3, 10*time.Millisecond)
	}
	mws := append([]Middleware{Trace(cfg.TracerProvider, cfg.Durable), Recover(), Timeout(cfg.HandlerTimeout)}, cfg.Middleware...)
	c.handler = Chain(cfg.Handler, mws...)
	return c, nil
}

// budget returns the handler attempts per message the durable's configuration gives (0 =
// unbounded): its MetadataAttempts, else MaxDeliver-1 (the last delivery reserved for the dead
// letter) when MaxDeliver is above 1, else MaxDeliver.
func budget(cfg jetstream.ConsumerConfig) (uint64, error) {
	if v, ok := cfg.Metadata[MetadataAttempts]; ok {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == 0 {
			return 0, fmt.Errorf("metadata %s %q: want a positive integer", MetadataAttempts, v)
		}
		if cfg.MaxDeliver > 0 && n >= uint64(cfg.MaxDeliver) {
			return 0, fmt.Errorf("metadata %s %d needs MaxDeliver -1 or above %d (a delivery reserved for the dead letter), not %d",
				MetadataAttempts, n, n, cfg.MaxDeliver)
		}
		return n, nil
	}
	switch {
	case cfg.MaxDeliver > 1:
		return uint64(cfg.MaxDeliver - 1), nil
	case cfg.MaxDeliver == 1:
		return 1, nil
	}
	return 0, nil
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
	it, err := c.cons.Messages(append(PullOptions(), jetstream.PullMaxMessages(min(c.cfg.Concurrency, maxPrefetch)))...)
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
				c.consumeErrors.Add(1)
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
			c.process(ctx, hctx, msg)
		}()
	}

	// Stop pulling; hand back what was pulled but not started.
	it.Drain()
	for {
		msg, err := it.Next(jetstream.NextMaxWait(time.Second))
		if err != nil {
			break
		}
		if err := msg.Nak(); err != nil {
			// It comes back after its ack wait instead of at once.
			c.settleFailed(opNak, c.log, err)
		}
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
	s := ConsumerStats{
		Acked:                    c.acked.Load(),
		Retried:                  c.retried.Load(),
		DeadLettered:             c.deadLettered.Load(),
		DeadLetterFailures:       c.dlqFailures.Load(),
		DeadLetterPending:        c.dlqPending.Load(),
		DeadLettersLost:          c.dlqLost.Load(),
		DeadLetterEncodeFailures: c.dlqEncodeFailures.Load(),
		SettleFailures:           make(map[string]uint64, settleOps),
		ConsumeErrors:            c.consumeErrors.Load(),
	}
	for i, name := range settleOpNames {
		s.SettleFailures[name] = c.settleFailures[i].Load()
	}
	s.OperatorDeliveries = make(map[DeliverMode]map[string]uint64, len(deliverModes))
	for i, mode := range deliverModes {
		s.OperatorDeliveries[mode] = make(map[string]uint64, len(deliverOutcomes))
		for j, o := range deliverOutcomes {
			s.OperatorDeliveries[mode][o] = c.delivered[i][j].Load()
		}
	}
	return s
}

// process resolves, decodes, handles and settles one message. stop ends when the consumer
// stops; ctx only after ShutdownTimeout.
func (c *Consumer) process(stop, ctx context.Context, msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		// Not a JetStream delivery; nothing to settle.
		c.consumeErrors.Add(1)
		c.log.Error("consume: message without metadata", "subject", msg.Subject(), "err", err)
		return
	}
	log := c.log.With("subject", msg.Subject(), "stream_seq", md.Sequence.Stream, "delivery", md.NumDelivered)
	stopHeartbeat := c.startHeartbeat(msg, log)
	defer stopHeartbeat()
	if c.attempts > 0 && md.NumDelivered > c.attempts {
		// A reserved delivery: the handler had all its attempts, and the last one never settled
		// or its dead letter was not written before its process stopped.
		// Looked up still heartbeated: the look-up may take as long as a short ack wait.
		reason, cause, noted := c.reservedCause(ctx, md, log)
		stopHeartbeat()
		if c.deadLetter(stop, ctx, msg, md, reason, cause) && noted {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			if err := c.claims.deleteNote(dctx, pendingNoteName(DeadLetterID(md.Stream, md.Sequence.Stream, c.cfg.Durable))); err != nil {
				log.Debug("consume: dead letter's note not deleted; it expires with the bucket's TTL", "err", err)
			}
			cancel()
		}
		return
	}
	exhausted := c.attempts > 0 && md.NumDelivered >= c.attempts

	// Claim-checked payloads are resolved first, so that handlers see the whole payload. A
	// missing object may be a writer lagging behind its message: retried like a handler error.
	data, err := c.claims.Resolve(ctx, msg.Headers(), msg.Data())
	if err != nil {
		stopHeartbeat()
		reason := eventsv1.DeadLetter_REASON_RETRIES_EXHAUSTED
		switch {
		case errors.Is(err, ErrClaimMissing):
			reason = eventsv1.DeadLetter_REASON_CLAIM_MISSING
		case errors.Is(err, ErrClaimCorrupt):
			reason = eventsv1.DeadLetter_REASON_CLAIM_CORRUPT
		}
		if exhausted {
			c.deadLetter(stop, ctx, msg, md, reason, err)
			return
		}
		log.Warn("consume: claim-checked payload not resolved; redelivering", "err", err)
		c.redeliver(ctx, msg, md, log, err)
		return
	}

	ctx, ev, err := Decode(ctx, &nats.Msg{Subject: msg.Subject(), Header: msg.Headers(), Data: data})
	if err != nil {
		stopHeartbeat()
		c.deadLetter(stop, ctx, msg, md, eventsv1.DeadLetter_REASON_UNDECODABLE, err)
		return
	}
	ev.Metadata = md
	start := time.Now()
	err = c.handler(ctx, ev)
	if o, ok := c.handlerSeconds.Load().(prometheus.Observer); ok {
		o.Observe(time.Since(start).Seconds())
	}
	// No InProgress after this point: one landing after a delayed Nak would push the retry back
	// to the ack wait.
	stopHeartbeat()
	switch {
	case err == nil:
		if err := msg.Ack(); err != nil {
			c.settleFailed(opAck, log.With("id", ev.ID), err)
		}
		c.acked.Add(1)
	case errors.Is(err, ErrPermanent):
		c.deadLetter(stop, ctx, msg, md, eventsv1.DeadLetter_REASON_REJECTED, err)
	case exhausted:
		c.deadLetter(stop, ctx, msg, md, eventsv1.DeadLetter_REASON_RETRIES_EXHAUSTED, err)
	default:
		c.redeliver(ctx, msg, md, log.With("id", ev.ID), err)
	}
}

// redeliver naks msg with the retry delay of its delivery. ctx carries the event's trace, so the
// log line joins it.
func (c *Consumer) redeliver(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata, log *slog.Logger, cause error) {
	delay := c.retryDelay(md.NumDelivered)
	// Warn, not debug: a handler failure is what an operator looks for first (it is also counted
	// in the consumer's retried total); outages of Postgres are waited out in place instead.
	log.WarnContext(ctx, "consume: handler failed, redelivering", "delivery", md.NumDelivered, "delay", delay, "err", cause)
	if err := msg.NakWithDelay(delay); err != nil {
		c.settleFailed(opNak, log, err)
	}
	c.retried.Add(1)
}

func (c *Consumer) settleFailed(op int, log *slog.Logger, err error) {
	c.settleFailures[op].Add(1)
	log.Warn("consume: "+settleOpNames[op]+" not sent; the message will be redelivered", "err", err)
}

// deadLetter writes msg to CP_DLQ and only then terminates it, and reports whether it did. A
// failed write is retried with backoff (DeadLetterRetryWait doubling to DeadLetterRetryMax), the
// message heartbeated so that its ack wait never lapses, until the write succeeds or the consumer
// stops. On stop the message is left unsettled (nak'ed) for the server to redeliver to the next
// consumer instance, which writes the dead letter on that delivery; what this instance knew (the
// reason and the handler's error) is left for it as a note in the claim bucket. Only when the
// server would not redeliver it (the last delivery of a bounded MaxDeliver) does the write go on
// until ctx ends (ShutdownTimeout), and a dead letter still unwritten then is counted and logged
// as lost.
//
// A dead letter too large for a message (its payload embeds the original's payload and headers)
// is claim-checked. A claim-checked original's payload is copied under the dead letter's own
// name (ClaimCheck.Keep) and the dead letter points at the copy, so the payload lives as long as
// the dead letter. Strings the JSON encoding refuses (invalid UTF-8 in a header or the error) are
// sanitised; a dead letter that still cannot be encoded is written minimal (stream, sequence,
// reason, raw payload, the encoding error), never retried as if a write had failed.
func (c *Consumer) deadLetter(stop, ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata, reason eventsv1.DeadLetter_Reason, cause error) (written bool) {
	id := DeadLetterID(md.Stream, md.Sequence.Stream, c.cfg.Durable)
	subject := DeadLetterSubject(c.cfg.Durable)
	log := c.log.With("subject", msg.Subject(), "stream_seq", md.Sequence.Stream,
		"delivery", md.NumDelivered, "reason", reason.String(), "cause", cause, "dlq_id", id)
	lastDelivery := c.lastDeliv > 0 && md.NumDelivered >= c.lastDeliv
	claimed := msg.Headers().Get(HeaderClaim) != ""

	wait := c.cfg.DeadLetterRetryWait
	// Heartbeat from the first write on: one write can outlast a short ack wait, and on a last
	// delivery a lapsed ack wait is the server giving up on the message.
	// At once too: the handler's heartbeat may have been about to fire.
	c.inProgress(msg, log)
	stopHeartbeat := c.startHeartbeat(msg, log)
	defer stopHeartbeat()
	var nmsg *nats.Msg
	var builtAt time.Time
	for failures := 1; ; failures++ {
		var err error
		// Rebuilt while retrying a claim-checked one: the kept copy's age restarts, so it still
		// outlives a dead letter written after a long CP_DLQ outage.
		if nmsg == nil || claimed && time.Since(builtAt) > keepRefresh {
			nmsg, err = c.deadLetterMsg(ctx, msg.Subject(), msg.Headers(), msg.Data(), md, reason, cause, id, subject, log)
			builtAt = time.Now()
		}
		if errors.Is(err, errUnencodable) {
			// It would fail the same way on every retry and every instance.
			stopHeartbeat()
			c.dlqLost.Add(1)
			log.Error("consume: dead letter lost: not encodable even minimal; terminating the message, "+
				"which stays in its stream at its sequence", "err", err)
			if err := msg.TermWithReason("dead letter not encodable"); err != nil {
				c.settleFailed(opTerm, log, err)
			}
			return false
		}
		if err == nil {
			err = c.writeDeadLetter(ctx, nmsg)
		}
		if err == nil {
			break
		}
		c.dlqFailures.Add(1)
		if failures == 1 {
			c.dlqPending.Add(1)
			defer c.dlqPending.Add(-1)
		}
		log.Warn("consume: dead letter not written; retrying, the message unsettled",
			"failures", failures, "retry_in", wait, "last_delivery", lastDelivery, "err", err)
		select {
		case <-time.After(wait):
			wait = min(wait*2, c.cfg.DeadLetterRetryMax)
			continue
		case <-stop.Done():
			if lastDelivery {
				// The server would not redeliver it: keep trying through the shutdown timeout.
				log.Error("consume: stopping with the dead letter of a last delivery unwritten; retrying until the shutdown timeout", "err", err)
				stop = context.Background()
				continue
			}
		case <-ctx.Done():
		}
		stopHeartbeat()
		if !lastDelivery {
			log.Warn("consume: stopping with the dead letter unwritten; the message is left for redelivery", "err", err)
			c.notePending(ctx, id, reason, cause, err, log)
			// At once: whoever gets it next retries the write with its own backoff.
			if err := msg.Nak(); err != nil {
				c.settleFailed(opNak, log, err) // it comes back after its ack wait
			}
			return false
		}
		c.dlqLost.Add(1)
		log.Error("consume: dead letter lost: shut down on the last delivery (MaxDeliver) before it could be written; "+
			"the message stays in its stream at its sequence, re-drive it from there", "err", err)
		return false
	}
	stopHeartbeat()
	if err := msg.TermWithReason("dead-lettered: " + reason.String()); err != nil {
		c.settleFailed(opTerm, log, err)
	}
	c.deadLettered.Add(1)
	log.WarnContext(ctx, "consume: dead-lettered", "dlq_subject", subject)
	return true
}

// keepRefresh is how old a dead letter's copy of its claim-checked payload may get while the
// write is retried before it is copied again; ClaimMaxAge is DLQMaxAge and an hour.
const keepRefresh = 10 * time.Minute

// errUnencodable is a dead letter that cannot be encoded even minimal: permanent.
var errUnencodable = errors.New("dead letter not encodable")

// deadLetterMsg builds and encodes msg's dead letter. Its errors are transient (copying a
// claim-checked payload failed) except errUnencodable.
func (c *Consumer) deadLetterMsg(ctx context.Context, origSubject string, headers nats.Header, data []byte, md *jetstream.MsgMetadata,
	reason eventsv1.DeadLetter_Reason, cause error, id, subject string, log *slog.Logger) (*nats.Msg, error) {
	errText := cause.Error()
	if headers.Get(HeaderClaim) != "" && reason != eventsv1.DeadLetter_REASON_CLAIM_MISSING && reason != eventsv1.DeadLetter_REASON_CLAIM_CORRUPT {
		kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		kept, err := c.claims.Keep(kctx, headers, keptPayloadName(id))
		cancel()
		switch {
		case err == nil:
			headers = kept
		case errors.Is(err, ErrClaimMissing), errors.Is(err, ErrClaimCorrupt):
			// Nothing sound to copy: the reference stays as it is, and the dead letter says why.
			errText += "; its claim-checked payload could not be kept: " + err.Error()
		default:
			return nil, err
		}
	}
	dl := &eventsv1.DeadLetter{
		Reason:          reason,
		Error:           validUTF8(errText),
		OriginalSubject: validUTF8(origSubject),
		OriginalHeaders: make(map[string]*eventsv1.HeaderValues, len(headers)),
		OriginalPayload: data,
		Stream:          validUTF8(md.Stream),
		StreamSequence:  md.Sequence.Stream,
		Consumer:        validUTF8(md.Consumer),
		DeliveryCount:   md.NumDelivered,
		FailedAt:        timestamppb.Now(),
	}
	for k, vs := range headers {
		// Two keys that differ only in invalid bytes become one: their values are kept together.
		hv := dl.OriginalHeaders[validUTF8(k)]
		if hv == nil {
			hv = &eventsv1.HeaderValues{}
			dl.OriginalHeaders[validUTF8(k)] = hv
		}
		for _, v := range vs {
			hv.Values = append(hv.Values, validUTF8(v))
		}
	}
	ev := Event{Subject: subject, ID: id, Source: c.cfg.Source, Payload: dl}
	nmsg, err := Encode(ctx, ev)
	if err == nil {
		return nmsg, nil
	}
	c.dlqEncodeFailures.Add(1)
	log.Error("consume: dead letter not encodable; writing a minimal one (stream, sequence, reason, payload)", "err", err)
	ev.Payload = &eventsv1.DeadLetter{
		Reason:          reason,
		Error:           validUTF8("encode failed: " + err.Error() + "; " + errText),
		OriginalPayload: data,
		Stream:          validUTF8(md.Stream),
		StreamSequence:  md.Sequence.Stream,
		Consumer:        validUTF8(md.Consumer),
		DeliveryCount:   md.NumDelivered,
		FailedAt:        dl.FailedAt,
	}
	nmsg, merr := Encode(ctx, ev)
	if merr != nil {
		return nil, fmt.Errorf("%w: %w (minimal: %w)", errUnencodable, err, merr)
	}
	return nmsg, nil
}

// validUTF8 replaces invalid UTF-8 (which protojson refuses in string fields) with U+FFFD. The
// exact bytes stay in the original message in its stream.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// keptPayloadName is the object a dead letter's copy of its claim-checked payload is stored as.
func keptPayloadName(dlID string) string { return dlID + "/original" }

// pendingNoteName is the object a consumer that stopped with a dead letter unwritten leaves for
// the instance that writes it.
func pendingNoteName(dlID string) string { return "pending-dead-letter/" + dlID }

// pendingNote is that object's content.
type pendingNote struct {
	Reason     string `json:"reason"`
	Error      string `json:"error"`
	WriteError string `json:"write_error"`
}

// notePending records, best effort, why msg was being dead-lettered: the next instance gets only
// a reserved delivery and would otherwise not know the handler's error. A note that cannot be
// written is logged; the next dead letter then says it found none.
func (c *Consumer) notePending(ctx context.Context, id string, reason eventsv1.DeadLetter_Reason, cause, writeErr error, log *slog.Logger) {
	data, err := json.Marshal(pendingNote{Reason: reason.String(), Error: validUTF8(cause.Error()), WriteError: validUTF8(writeErr.Error())})
	if err == nil {
		nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		err = c.claims.putNote(nctx, pendingNoteName(id), data)
		cancel()
	}
	if err != nil {
		log.Warn("consume: the unwritten dead letter's reason not recorded for the next instance", "err", err)
	}
}

// reservedCause is the reason and error of the dead letter written on a reserved delivery: the
// previous instance's, when it left a note (its dead-letter write had failed), else that the
// last attempt never settled.
func (c *Consumer) reservedCause(ctx context.Context, md *jetstream.MsgMetadata, log *slog.Logger) (eventsv1.DeadLetter_Reason, error, bool) {
	id := DeadLetterID(md.Stream, md.Sequence.Stream, c.cfg.Durable)
	nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	data, err := c.claims.getNote(nctx, pendingNoteName(id))
	cancel()
	var note pendingNote
	if err == nil {
		err = json.Unmarshal(data, &note)
	}
	switch {
	case err == nil:
		reason := eventsv1.DeadLetter_Reason(eventsv1.DeadLetter_Reason_value[note.Reason])
		if reason == eventsv1.DeadLetter_REASON_UNSPECIFIED {
			reason = eventsv1.DeadLetter_REASON_RETRIES_EXHAUSTED
		}
		return reason, fmt.Errorf("%s (written on a later delivery: the previous instance's dead-letter write had failed: %s)",
			note.Error, note.WriteError), true
	case errors.Is(err, jetstream.ErrObjectNotFound), errors.Is(err, jetstream.ErrBucketNotFound):
		return eventsv1.DeadLetter_REASON_RETRIES_EXHAUSTED, fmt.Errorf(
			"%w: the last of %d attempts was never settled and left no record of a failed dead-letter write "+
				"(its process stopped mid-handler, or could not record why)", ErrAttemptsExhausted, c.attempts), false
	default:
		log.Warn("consume: the previous instance's record of this dead letter not read", "err", err)
		return eventsv1.DeadLetter_REASON_RETRIES_EXHAUSTED, fmt.Errorf(
			"%w: the last of %d attempts was never settled; whether the previous instance's dead-letter write had failed is unknown (%v)",
			ErrAttemptsExhausted, c.attempts, err), false
	}
}

// writeDeadLetter claim-checks nmsg when it is too large (once: Offload leaves it small), then
// publishes it and waits for its PubAck.
func (c *Consumer) writeDeadLetter(ctx context.Context, nmsg *nats.Msg) error {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := c.claims.Offload(actx, nmsg); err != nil {
		return err
	}
	_, err := c.js.PublishMsg(actx, nmsg)
	return err
}

func (c *Consumer) startHeartbeat(msg jetstream.Msg, log *slog.Logger) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(c.heartbeat)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				c.inProgress(msg, log)
			case <-done:
				return
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); <-finished }) }
}

// inProgress resets msg's ack timer on the server.
func (c *Consumer) inProgress(msg jetstream.Msg, log *slog.Logger) {
	if err := msg.InProgress(); err != nil {
		c.settleFailures[opInProgress].Add(1)
		log.Warn("consume: heartbeat (in progress) not sent; the message may be redelivered when its ack wait lapses", "err", err)
	}
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
