// Package bus adapts the libs/events publisher to the small publishing interfaces of the
// orchestrator's components (the change relay, the tick publisher, the universe watcher).
package bus

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"cryptopill.dev/jobs/libs/events"
)

// Publisher publishes orchestrator events, synchronously or asynchronously.
type Publisher struct {
	nc      *nats.Conn
	ep      *events.Publisher
	pending chan pending
	wg      sync.WaitGroup
	mu      sync.RWMutex
	closed  bool
}

type pending struct {
	fut  *events.Future
	done func(error)
}

// Config configures a Publisher.
type Config struct {
	// Source is ce-source. Default "orchestrator".
	Source string
	// MaxInFlight bounds asynchronous publishes awaiting their PubAck. Default 8192.
	MaxInFlight int
	// AckTimeout fails a publish whose PubAck has not come. Default 5 s.
	AckTimeout time.Duration
}

// New returns a publisher on nc. Close it after its users have stopped.
//
// Asynchronous publishes are not retried by the publisher: a retried publish could land after
// later ones and break the stream's commit order, so the change relay handles a failure itself
// (it replays from its slot; ids make the replay idempotent).
func New(nc *nats.Conn, cfg Config) (*Publisher, error) {
	if cfg.Source == "" {
		cfg.Source = "orchestrator"
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 8192
	}
	ep, err := events.NewPublisher(nc, events.PublisherConfig{
		Source:        cfg.Source,
		MaxInFlight:   cfg.MaxInFlight,
		AckTimeout:    cfg.AckTimeout,
		RetryAttempts: -1,
	})
	if err != nil {
		return nil, err
	}
	p := &Publisher{nc: nc, ep: ep, pending: make(chan pending, cfg.MaxInFlight)}
	p.wg.Add(1)
	go p.resolve()
	return p, nil
}

// resolve reports outcomes in publish order. Without retries JetStream acknowledges in that
// order too, so waiting on each future in turn delays nothing.
func (p *Publisher) resolve() {
	defer p.wg.Done()
	for pd := range p.pending {
		pd.done(pd.fut.Result().Err)
	}
}

// PublishAsync publishes ev on subject with id as ce-id and Nats-Msg-Id without waiting; done
// is called once with the outcome. It blocks while the in-flight bound is reached.
func (p *Publisher) PublishAsync(ctx context.Context, subject, id string, ev proto.Message, done func(error)) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return events.ErrPublisherClosed
	}
	fut, err := p.ep.PublishAsync(ctx, events.Event{Subject: subject, ID: id, Payload: ev})
	if err != nil {
		return err
	}
	p.pending <- pending{fut: fut, done: done}
	return nil
}

// Publish publishes ev and waits for its PubAck. duplicate reports that JetStream already had
// an event with this id inside the stream's duplicate window.
func (p *Publisher) Publish(ctx context.Context, subject, id string, ev proto.Message) (duplicate bool, err error) {
	ack, err := p.ep.Publish(ctx, events.Event{Subject: subject, ID: id, Payload: ev})
	if err != nil {
		return false, err
	}
	return ack.Duplicate, nil
}

// Connection reports the NATS connection's generation (how often it reconnected) and whether
// it is connected now. Publishes in flight when a connection drops may be lost while later ones
// go through on the new connection; the change relay restarts its session on a new generation
// so that its replay keeps the stream in commit order.
func (p *Publisher) Connection() (generation uint64, connected bool) {
	return p.nc.Stats().Reconnects, p.nc.IsConnected()
}

// Close waits (until ctx ends) for outstanding publishes to resolve, reports them, and stops.
func (p *Publisher) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	err := p.ep.Close(ctx)
	close(p.pending)
	p.wg.Wait()
	return err
}
