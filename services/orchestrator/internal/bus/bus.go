// Package bus publishes the change relay's events on JetStream: the libs/events envelope around
// payloads the relay has already encoded, asynchronously, with outcomes reported in order.
package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"cryptopill.dev/jobs/libs/events"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
	"cryptopill.dev/jobs/services/orchestrator/internal/relay"
)

// ChangePublisher implements relay.Publisher and relay.ConnectionReporter.
//
// It does not retry: a retried asynchronous publish can land after later ones and break a
// table's commit order, so the relay handles a failure itself by replaying from its slot (the
// ids make the replay idempotent). Give it a connection of its own without a reconnect buffer
// (nats.ReconnectBufSize(-1)), so nothing published while disconnected lands after what the
// drop lost.
type ChangePublisher struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	source  string
	stream  string
	claims  *events.ClaimCheck
	ceType  string
	pending chan pending
	tracer  trace.Tracer
	wg      sync.WaitGroup
	mu      sync.RWMutex
	closed  bool
}

type pending struct {
	fut  jetstream.PubAckFuture
	done func(error)
}

// Config configures a ChangePublisher.
type Config struct {
	// Source is ce-source. Default "orchestrator".
	Source string
	// MaxInFlight bounds publishes awaiting their PubAck. Default 8192.
	MaxInFlight int
	// AckTimeout fails a publish whose PubAck has not come. Default 5 s.
	AckTimeout time.Duration
	// Stream is the stream the changes land in. Default events.StreamCDC.
	Stream string
	// Claims offloads an event over its threshold (half the server's max_payload by default) to
	// its Object Store bucket before the publish, so a row of any size reaches the stream as a
	// reference consumers resolve (libs/events). Without it an event over max_payload cannot be
	// published: the relay reports itself blocked on it.
	Claims *events.ClaimCheck
	// TracerProvider makes a producer span per row change, "send <subject>", with the commit
	// LSN, xid and index in the transaction as attributes; it ends when the PubAck (or the
	// failure) comes, and consumers continue its trace from the traceparent it sends. Default:
	// otel's global provider.
	TracerProvider trace.TracerProvider
}

// ErrClosed is returned by PublishAsync after Close.
var ErrClosed = errors.New("bus: change publisher closed")

// New returns a publisher on nc. Close it after the relay has stopped.
func New(nc *nats.Conn, cfg Config) (*ChangePublisher, error) {
	if cfg.Source == "" {
		cfg.Source = "orchestrator"
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 8192
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 5 * time.Second
	}
	if cfg.Stream == "" {
		cfg.Stream = events.StreamCDC
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = otel.GetTracerProvider()
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(cfg.MaxInFlight),
		jetstream.WithPublishAsyncTimeout(cfg.AckTimeout))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	p := &ChangePublisher{
		nc: nc, js: js, source: cfg.Source, stream: cfg.Stream, claims: cfg.Claims,
		ceType:  events.TypeOf(&eventsv1.RowChange{}),
		pending: make(chan pending, cfg.MaxInFlight),
		tracer:  cfg.TracerProvider.Tracer("cryptopill.dev/jobs/services/orchestrator/bus"),
	}
	p.wg.Add(1)
	go p.resolve()
	return p, nil
}

// resolve reports outcomes in publish order. JetStream acknowledges a connection's publishes in
// that order, so waiting on each future in turn delays nothing.
func (p *ChangePublisher) resolve() {
	defer p.wg.Done()
	for pd := range p.pending {
		select {
		case <-pd.fut.Ok():
			pd.done(nil)
		case err := <-pd.fut.Err():
			pd.done(err)
		}
	}
}

// Position headers of every change event: where the change stands in the WAL. A relay starting a
// session reads them from each table's last stored event to skip what the stream already holds,
// without decoding (or resolving) the payload.
const (
	HeaderCommitLSN = "Cp-Commit-Lsn"
	HeaderIndexInTx = "Cp-Index-In-Tx"
)

// Message builds the NATS message of a change: its already-encoded payload in the events
// envelope, with the trace context of ctx and the position headers.
func (p *ChangePublisher) Message(ctx context.Context, c *relay.Change) (*nats.Msg, error) {
	msg, err := events.Encode(ctx, events.Event{Subject: c.Subject, ID: c.ID, Type: p.ceType, Source: p.source, Data: c.Data})
	if err != nil {
		return nil, err
	}
	msg.Header[HeaderCommitLSN] = []string{strconv.FormatUint(c.CommitLSN, 10)}
	msg.Header[HeaderIndexInTx] = []string{strconv.FormatUint(uint64(c.Index), 10)}
	return msg, nil
}

// PublishAsync implements relay.Publisher.
func (p *ChangePublisher) PublishAsync(ctx context.Context, c *relay.Change, done func(error)) (err error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return ErrClosed
	}
	// The row change starts its trace: the transaction is named by its commit LSN and xid.
	ctx, span := p.tracer.Start(ctx, "send "+c.Subject, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.destination.name", c.Subject),
			attribute.String("messaging.message.id", c.ID),
			attribute.String("cp.table", c.Table),
			attribute.String("cp.commit_lsn", pglogrepl.LSN(c.CommitLSN).String()),
			attribute.Int64("cp.xid", int64(c.Xid)),
			attribute.Int64("cp.index_in_tx", int64(c.Index)),
		))
	defer func() {
		if err != nil { // no PubAck will come
			span.RecordError(err)
			span.SetStatus(codes.Error, "publish failed")
			span.End()
		}
	}()
	traced := func(err error) {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "not acknowledged")
		}
		span.End()
		done(err)
	}
	msg, err := p.Message(ctx, c)
	if err != nil {
		return err
	}
	if p.claims != nil {
		// Synchronous: the object is stored before its reference is published, and the
		// reference takes the event's place in the stream's order.
		if _, err := p.claims.Offload(ctx, msg); err != nil {
			return err
		}
	}
	opts := []jetstream.PublishOpt{
		// No library retry either: nats.go resends a "no responders" publish after a pause, which
		// could store it after later events of the same table.
		jetstream.WithRetryAttempts(0),
	}
	if c.ExpectedLastID != "" {
		// The server stores the event only right after the one published before it.
		opts = append(opts, jetstream.WithExpectLastMsgID(c.ExpectedLastID))
	}
	fut, err := p.js.PublishMsgAsync(msg, opts...)
	if err != nil {
		return fmt.Errorf("publish %s %s: %w", c.Subject, c.ID, err)
	}
	p.pending <- pending{fut: fut, done: traced}
	return nil
}

// Stored implements relay.Publisher: CP_CDC's last sequence and, per table, the position of its
// last stored event (from the position headers, or the payload of an event written before them).
func (p *ChangePublisher) Stored(ctx context.Context, tables []string) (relay.Stored, error) {
	s, err := p.js.Stream(ctx, p.stream)
	if err != nil {
		return relay.Stored{}, fmt.Errorf("stream %s: %w", p.stream, err)
	}
	out := relay.Stored{LastSeq: s.CachedInfo().State.LastSeq, Tables: map[string]relay.StoredChange{}}
	if out.LastSeq > 0 {
		last, err := s.GetLastMsgForSubject(ctx, ">")
		switch {
		case err == nil:
			out.LastID = last.Header.Get(jetstream.MsgIDHeader)
		case !errors.Is(err, jetstream.ErrMsgNotFound): // not found: emptied since the info
			return relay.Stored{}, fmt.Errorf("last message of %s: %w", p.stream, err)
		}
	}
	for _, t := range tables {
		schema, table, _ := strings.Cut(t, ".")
		filter := events.ChangeFilter(schema, table)
		m, err := s.GetLastMsgForSubject(ctx, filter)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return relay.Stored{}, fmt.Errorf("last message of %s on %s: %w", filter, p.stream, err)
		}
		sc, err := p.position(ctx, m)
		if err != nil {
			// Not the relay's (something else published there): no position to skip by, which
			// must not stop the relay.
			if out.Unreadable == nil {
				out.Unreadable = map[string]error{}
			}
			out.Unreadable[t] = fmt.Errorf("last message of %s on %s (seq %d): %w", filter, p.stream, m.Sequence, err)
			continue
		}
		out.Tables[t] = sc
	}
	return out, nil
}

func (p *ChangePublisher) position(ctx context.Context, m *jetstream.RawStreamMsg) (relay.StoredChange, error) {
	sc := relay.StoredChange{Seq: m.Sequence}
	if lsn, idx := m.Header.Get(HeaderCommitLSN), m.Header.Get(HeaderIndexInTx); lsn != "" && idx != "" {
		l, err1 := strconv.ParseUint(lsn, 10, 64)
		i, err2 := strconv.ParseUint(idx, 10, 32)
		if err := errors.Join(err1, err2); err != nil {
			return sc, fmt.Errorf("position headers %s=%q %s=%q: %w", HeaderCommitLSN, lsn, HeaderIndexInTx, idx, err)
		}
		sc.CommitLSN, sc.Index = l, uint32(i)
	} else {
		_, ev, err := events.Decode(ctx, &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
		if err != nil {
			return sc, err
		}
		rc, ok := ev.Payload.(*eventsv1.RowChange)
		if !ok {
			return sc, fmt.Errorf("payload %T, want RowChange", ev.Payload)
		}
		sc.CommitLSN, sc.Index = rc.GetCommitLsn(), rc.GetIndexInTx()
	}
	// The relay names each event after its position. A copy stored under another id (a change
	// replayed into the stream by hand, with or without its headers) says nothing of what the
	// relay stored, and it may stand after later changes.
	if id, want := m.Header.Get(jetstream.MsgIDHeader), events.ChangeID(sc.CommitLSN, sc.Index); id != want {
		return sc, fmt.Errorf("not written by the relay: %s %q is not the id of the change at its position (%d, %d)",
			jetstream.MsgIDHeader, id, sc.CommitLSN, sc.Index)
	}
	return sc, nil
}

// Connection implements relay.ConnectionReporter: the connection's generation (how often it
// reconnected) and whether it is connected now.
func (p *ChangePublisher) Connection() (generation uint64, connected bool) {
	return p.nc.Stats().Reconnects, p.nc.IsConnected()
}

// Close waits (until ctx ends) for outstanding publishes to resolve, reports them, and stops.
func (p *ChangePublisher) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	var err error
	select {
	case <-p.js.PublishAsyncComplete():
	case <-ctx.Done():
		err = ctx.Err()
		// Fail what is left: the futures resolve with an error.
		p.js.CleanupPublisher()
	}
	close(p.pending)
	p.wg.Wait()
	return err
}
