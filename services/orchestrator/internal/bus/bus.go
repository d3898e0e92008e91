// Package bus publishes the change relay's events on JetStream: the libs/events envelope around
// payloads the relay has already encoded, asynchronously, with outcomes reported in order.
package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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
	ceType  string
	pending chan pending
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
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(cfg.MaxInFlight),
		jetstream.WithPublishAsyncTimeout(cfg.AckTimeout))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	p := &ChangePublisher{
		nc: nc, js: js, source: cfg.Source,
		ceType:  events.TypeOf(&eventsv1.RowChange{}),
		pending: make(chan pending, cfg.MaxInFlight),
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

// Message builds the NATS message of a change: its already-encoded payload in the events
// envelope, with the trace context of ctx.
func (p *ChangePublisher) Message(ctx context.Context, c *relay.Change) (*nats.Msg, error) {
	return events.Encode(ctx, events.Event{Subject: c.Subject, ID: c.ID, Type: p.ceType, Source: p.source, Data: c.Data})
}

// PublishAsync implements relay.Publisher.
func (p *ChangePublisher) PublishAsync(ctx context.Context, c *relay.Change, done func(error)) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return ErrClosed
	}
	msg, err := p.Message(ctx, c)
	if err != nil {
		return err
	}
	// No library retry either: nats.go resends a "no responders" publish after a pause, which
	// could store it after later events of the same table.
	fut, err := p.js.PublishMsgAsync(msg, jetstream.WithRetryAttempts(0))
	if err != nil {
		return fmt.Errorf("publish %s %s: %w", c.Subject, c.ID, err)
	}
	p.pending <- pending{fut: fut, done: done}
	return nil
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
