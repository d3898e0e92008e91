package events

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// instrumentationName names the tracer of this package.
const instrumentationName = "cryptopill.dev/jobs/libs/events"

// PublisherConfig configures a Publisher. Only Source is required.
type PublisherConfig struct {
	// Source is the ce-source of every event published, the service name ("orchestrator").
	// Required.
	Source string

	// MaxInFlight bounds the asynchronous publishes awaiting their PubAck (including those
	// waiting to be retried); PublishAsync blocks while it is reached. 0 means 256.
	MaxInFlight int

	// AckTimeout bounds the wait for one PubAck before the attempt counts as failed. 0 means 5s.
	AckTimeout time.Duration

	// RetryAttempts is how many times a publish that failed without a server verdict (ack
	// timeout, disconnect, no stream responding) is sent again, with the same Nats-Msg-Id, so a
	// first attempt that did land is de-duplicated rather than doubled. A publish the server
	// rejected (an API error) is not retried. 0 means 5; negative means none.
	//
	// A retried asynchronous publish can land after publishes sent later; a caller that needs
	// stream order under failures sets a negative value and handles failures itself.
	RetryAttempts int

	// RetryWait is the wait before the first retry; it doubles per retry, up to 5s. 0 means
	// 250ms.
	RetryWait time.Duration

	// OnResult, when set, is called once for every asynchronous publish with its final outcome,
	// after its Future resolves and before Flush can return. It runs on the publisher's
	// completion goroutine, in completion order: it must be quick, and must not call
	// PublishAsync or Flush (it would wait on itself).
	OnResult func(Result)

	// ClaimCheck, when set, stores the payload of an event over its threshold in its bucket and
	// publishes the reference instead (ClaimCheck.Offload), before the publish; consumers
	// resolve it transparently. nil means no offload: a message over the server's max_payload
	// fails to publish (nats.ErrMaxPayload).
	ClaimCheck *ClaimCheck

	// TracerProvider makes a producer span per publish. nil means otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
}

// Result is the final outcome of one asynchronous publish.
type Result struct {
	// ID and Subject of the event.
	ID      string
	Subject string
	// Ack is the stream's PubAck (Ack.Duplicate when JetStream dropped it as a duplicate); nil on
	// failure.
	Ack *jetstream.PubAck
	// Err is why the publish failed after its retries; nil on success.
	Err error
	// Attempts is how many times the message was sent.
	Attempts int
}

// Future is the pending outcome of one asynchronous publish.
type Future struct {
	done chan struct{}
	res  Result
}

// Done is closed when the publish has its final Result.
func (f *Future) Done() <-chan struct{} { return f.done }

// Result is the final outcome; call it after Done is closed (it blocks until then).
func (f *Future) Result() Result {
	<-f.done
	return f.res
}

// Wait blocks until the publish resolves or ctx ends, and returns its PubAck or error.
func (f *Future) Wait(ctx context.Context) (*jetstream.PubAck, error) {
	select {
	case <-f.done:
		return f.res.Ack, f.res.Err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// PublisherStats counts a Publisher's outcomes since it was created.
type PublisherStats struct {
	// Acked is publishes the stream acknowledged, duplicates included.
	Acked uint64
	// Duplicates is acknowledged publishes JetStream dropped as duplicates (same Nats-Msg-Id
	// inside the stream's duplicate window).
	Duplicates uint64
	// Failed is publishes that failed after their retries.
	Failed uint64
	// Retries is attempts beyond the first.
	Retries uint64
	// InFlight is asynchronous publishes not resolved yet.
	InFlight int
}

// Publisher publishes events to JetStream, synchronously or asynchronously with a bounded number
// in flight. It is safe for concurrent use.
type Publisher struct {
	cfg    PublisherConfig
	js     jetstream.JetStream
	tracer trace.Tracer

	slots       chan struct{}
	pending     sync.Map // *nats.Msg → *asyncPub, for the ack callbacks
	completions chan completion
	stop        chan struct{}
	stopped     chan struct{}

	mu          sync.Mutex
	outstanding int
	idle        []chan struct{}
	closed      bool
	aborted     atomic.Bool

	acked, duplicates, failed, retries atomic.Uint64
}

type asyncPub struct {
	msg      *nats.Msg
	fut      *Future
	span     trace.Span
	attempts int
}

type completion struct {
	p   *asyncPub
	ack *jetstream.PubAck
	err error
}

// NewPublisher returns a publisher on nc. It keeps its own JetStream context, so its
// asynchronous acks do not mix with other publishers'.
func NewPublisher(nc *nats.Conn, cfg PublisherConfig) (*Publisher, error) {
	if cfg.Source == "" {
		return nil, errors.New("events: PublisherConfig.Source is required")
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 256
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 5 * time.Second
	}
	if cfg.RetryAttempts == 0 {
		cfg.RetryAttempts = 5
	} else if cfg.RetryAttempts < 0 {
		cfg.RetryAttempts = 0
	}
	if cfg.RetryWait <= 0 {
		cfg.RetryWait = 250 * time.Millisecond
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = otel.GetTracerProvider()
	}
	p := &Publisher{
		cfg:         cfg,
		tracer:      cfg.TracerProvider.Tracer(instrumentationName),
		slots:       make(chan struct{}, cfg.MaxInFlight),
		completions: make(chan completion, cfg.MaxInFlight),
		stop:        make(chan struct{}),
		stopped:     make(chan struct{}),
	}
	js, err := jetstream.New(nc,
		// Our slots bound what is pending; the margin only keeps jetstream from ever stalling.
		jetstream.WithPublishAsyncMaxPending(cfg.MaxInFlight+16),
		jetstream.WithPublishAsyncTimeout(cfg.AckTimeout),
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, m *nats.Msg, ack *jetstream.PubAck) {
			p.complete(m, ack, nil)
		}),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) {
			p.complete(m, nil, err)
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("events: jetstream: %w", err)
	}
	p.js = js
	go p.run()
	return p, nil
}

// Publish sends ev and waits for its PubAck, retrying as PublisherConfig.RetryAttempts says
// while ctx lasts. For low-rate publishers; high rates use PublishAsync.
func (p *Publisher) Publish(ctx context.Context, ev Event) (*jetstream.PubAck, error) {
	if p.isClosed() {
		return nil, ErrPublisherClosed
	}
	ctx, span := p.startSpan(ctx, ev)
	defer span.End()
	msg, err := p.encode(ctx, ev)
	if err != nil {
		recordErr(span, err)
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, p.cfg.AckTimeout)
		ack, err := p.js.PublishMsg(actx, msg)
		cancel()
		if err == nil {
			p.countAck(ack)
			span.SetAttributes(attribute.Int64("messaging.nats.stream_sequence", int64(ack.Sequence)),
				attribute.Bool("messaging.nats.duplicate", ack.Duplicate))
			return ack, nil
		}
		if !retryable(err) || attempt > p.cfg.RetryAttempts || ctx.Err() != nil {
			p.failed.Add(1)
			err = fmt.Errorf("publish %s %s: %w", msg.Subject, ev.ID, err)
			recordErr(span, err)
			return nil, err
		}
		p.retries.Add(1)
		select {
		case <-time.After(p.retryDelay(attempt)):
		case <-ctx.Done():
			p.failed.Add(1)
			err = fmt.Errorf("publish %s %s: %w", msg.Subject, ev.ID, ctx.Err())
			recordErr(span, err)
			return nil, err
		}
	}
}

// PublishAsync sends ev without waiting for its PubAck and returns its Future. It blocks while
// MaxInFlight publishes are unresolved, until ctx ends. Every publish it accepts resolves
// exactly once (Future, OnResult). An error return means the event was not sent.
func (p *Publisher) PublishAsync(ctx context.Context, ev Event) (*Future, error) {
	if p.isClosed() {
		return nil, ErrPublisherClosed
	}
	sctx, span := p.startSpan(ctx, ev)
	msg, err := p.encode(sctx, ev)
	if err != nil {
		recordErr(span, err)
		span.End()
		return nil, err
	}
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		recordErr(span, ctx.Err())
		span.End()
		return nil, ctx.Err()
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.slots
		span.End()
		return nil, ErrPublisherClosed
	}
	p.outstanding++
	p.mu.Unlock()

	a := &asyncPub{msg: msg, span: span, fut: &Future{
		done: make(chan struct{}),
		res:  Result{ID: msg.Header.Get(HeaderID), Subject: msg.Subject},
	}}
	p.pending.Store(msg, a)
	p.send(a)
	return a.fut, nil
}

// Flush waits until every asynchronous publish accepted so far has resolved (and its OnResult
// returned), or ctx ends.
func (p *Publisher) Flush(ctx context.Context) error {
	p.mu.Lock()
	if p.outstanding == 0 {
		p.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	p.idle = append(p.idle, ch)
	p.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops accepting publishes, waits for the outstanding ones as Flush does, and releases
// the publisher. If ctx ends first, what is still unresolved fails with ErrPublisherClosed and
// Close returns ctx's error. It does not close the NATS connection.
func (p *Publisher) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.stopped
		return nil
	}
	p.closed = true
	p.mu.Unlock()

	err := p.Flush(ctx)
	if err != nil {
		// Fail what is left: pending acks through the error callback, scheduled retries
		// through send.
		p.aborted.Store(true)
		p.js.CleanupPublisher()
		_ = p.Flush(context.Background())
	}
	p.js.CleanupPublisher()
	close(p.stop)
	<-p.stopped
	return err
}

// Stats returns the publisher's counters.
func (p *Publisher) Stats() PublisherStats {
	p.mu.Lock()
	inFlight := p.outstanding
	p.mu.Unlock()
	return PublisherStats{
		Acked:      p.acked.Load(),
		Duplicates: p.duplicates.Load(),
		Failed:     p.failed.Load(),
		Retries:    p.retries.Load(),
		InFlight:   inFlight,
	}
}

func (p *Publisher) send(a *asyncPub) {
	a.attempts++
	if p.aborted.Load() {
		p.completions <- completion{p: a, err: ErrPublisherClosed}
		return
	}
	if _, err := p.js.PublishMsgAsync(a.msg); err != nil {
		// Not sent, so no callback will come.
		p.completions <- completion{p: a, err: err}
	}
}

// complete receives jetstream's ack and error callbacks. The completions channel has room for
// every slot and each publish has at most one attempt outstanding, so this never blocks the
// connection's dispatch goroutine.
func (p *Publisher) complete(m *nats.Msg, ack *jetstream.PubAck, err error) {
	v, ok := p.pending.Load(m)
	if !ok {
		return
	}
	p.completions <- completion{p: v.(*asyncPub), ack: ack, err: err}
}

// run resolves publishes, or schedules their retries, one completion at a time.
func (p *Publisher) run() {
	defer close(p.stopped)
	for {
		select {
		case c := <-p.completions:
			p.resolve(c)
		case <-p.stop:
			return
		}
	}
}

func (p *Publisher) resolve(c completion) {
	a := c.p
	if c.err != nil && retryable(c.err) && a.attempts <= p.cfg.RetryAttempts && !p.aborted.Load() {
		p.retries.Add(1)
		a.span.AddEvent("retry", trace.WithAttributes(attribute.String("error", c.err.Error())))
		time.AfterFunc(p.retryDelay(a.attempts), func() { p.send(a) })
		return
	}
	p.pending.Delete(a.msg)
	res := &a.fut.res
	res.Attempts = a.attempts
	if c.err != nil {
		p.failed.Add(1)
		res.Err = fmt.Errorf("publish %s %s: %w", res.Subject, res.ID, c.err)
		recordErr(a.span, res.Err)
	} else {
		res.Ack = c.ack
		p.countAck(c.ack)
		a.span.SetAttributes(attribute.Int64("messaging.nats.stream_sequence", int64(c.ack.Sequence)),
			attribute.Bool("messaging.nats.duplicate", c.ack.Duplicate))
	}
	a.span.End()
	if p.cfg.OnResult != nil {
		p.cfg.OnResult(*res)
	}
	close(a.fut.done)
	p.mu.Lock()
	p.outstanding--
	if p.outstanding == 0 {
		for _, ch := range p.idle {
			close(ch)
		}
		p.idle = nil
	}
	p.mu.Unlock()
	// Release the slot last, so InFlight never exceeds MaxInFlight.
	<-p.slots
}

func (p *Publisher) encode(ctx context.Context, ev Event) (*nats.Msg, error) {
	if ev.Source == "" {
		ev.Source = p.cfg.Source
	}
	msg, err := Encode(ctx, ev)
	if err != nil || p.cfg.ClaimCheck == nil {
		return msg, err
	}
	off, err := p.cfg.ClaimCheck.Offload(ctx, msg)
	if err != nil {
		p.failed.Add(1)
		return nil, fmt.Errorf("publish %s %s: %w", ev.Subject, ev.ID, err)
	}
	if off {
		trace.SpanFromContext(ctx).SetAttributes(attribute.String("cp.claim", msg.Header.Get(HeaderClaim)))
	}
	return msg, nil
}

func (p *Publisher) startSpan(ctx context.Context, ev Event) (context.Context, trace.Span) {
	return p.tracer.Start(ctx, "send "+ev.Subject,
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.destination.name", ev.Subject),
			attribute.String("messaging.message.id", ev.ID),
		))
}

func (p *Publisher) countAck(ack *jetstream.PubAck) {
	p.acked.Add(1)
	if ack.Duplicate {
		p.duplicates.Add(1)
	}
}

func (p *Publisher) retryDelay(attempt int) time.Duration {
	d := p.cfg.RetryWait << (attempt - 1)
	if d > 5*time.Second || d <= 0 {
		d = 5 * time.Second
	}
	return d
}

func (p *Publisher) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// retryable reports whether a failed publish may have failed for want of a server verdict, so
// sending it again (same Nats-Msg-Id) is safe and may succeed.
func retryable(err error) bool {
	var apiErr *jetstream.APIError
	switch {
	case errors.As(err, &apiErr):
		return false
	case errors.Is(err, ErrPublisherClosed), errors.Is(err, jetstream.ErrJetStreamPublisherClosed),
		errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrBadSubject),
		errors.Is(err, nats.ErrMaxPayload), errors.Is(err, context.Canceled):
		return false
	}
	return true
}

func recordErr(span trace.Span, err error) {
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
}
