// Package redeliver is the operator's side of re-driving dead letters and replaying streams
// (`cpctl dlq`, `cpctl replay`): it reads JetStream itself (CP_DLQ entries, a range of a stream
// through an ephemeral consumer it creates and deletes) and hands the messages to one replica of
// the service owning the durable, on that service's operator endpoint
// cp.ops.<service>.deliver (service.DeliverEndpoint), which runs exactly that durable's handler
// chain on them (events.Consumer.Deliver) and answers per message.
//
// So a re-drive reaches only the consumer that dead-lettered the message (no other reader of
// the subject sees it, and nothing is published into the stream's duplicate window, which would
// drop it), and a replay never touches the durable or needs a restart.
package redeliver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/service"
)

// Config configures a Client. NC is required.
type Config struct {
	NC *nats.Conn
	// Topology says which service owns which durable. The zero value is events.NewTopology.
	Topology *events.Topology
	// Timeout bounds one request to a service (one batch). 0 means 2 minutes.
	Timeout time.Duration
	// Batch is how many messages go in one request. 0 means 20.
	Batch int
	// Logger logs what cannot be reported otherwise. nil means slog.Default().
	Logger *slog.Logger
}

// Client reads JetStream as the operator and hands messages to services.
type Client struct {
	cfg    Config
	nc     *nats.Conn
	js     jetstream.JetStream
	topo   events.Topology
	claims *events.ClaimCheck
}

// New returns a Client on cfg.NC.
func New(cfg Config) (*Client, error) {
	if cfg.NC == nil {
		return nil, errors.New("redeliver: Config needs NC")
	}
	js, err := jetstream.New(cfg.NC)
	if err != nil {
		return nil, fmt.Errorf("redeliver: jetstream: %w", err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Minute
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 20
	}
	cfg.Batch = min(cfg.Batch, service.MaxDeliverBatch)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	topo := events.NewTopology(events.TopologyConfig{})
	if cfg.Topology != nil {
		topo = *cfg.Topology
	}
	return &Client{cfg: cfg, nc: cfg.NC, js: js, topo: topo}, nil
}

// JetStream is the client's JetStream context.
func (c *Client) JetStream() jetstream.JetStream { return c.js }

// Owner returns the service that runs durable on stream, from the topology.
func (c *Client) Owner(durable string) (service, stream string, err error) {
	var known []string
	for _, d := range c.topo.Consumers {
		if d.Config.Durable == durable {
			return d.Owner, d.Stream, nil
		}
		known = append(known, d.Config.Durable)
	}
	return "", "", fmt.Errorf("durable %q is not declared (declared: %s)", durable, strings.Join(known, ", "))
}

// Durables returns the durables service runs on stream, from the topology.
func (c *Client) Durables(service, stream string) []string {
	var out []string
	for _, d := range c.topo.Consumers {
		if d.Owner == service && (stream == "" || d.Stream == stream) {
			out = append(out, d.Config.Durable)
		}
	}
	return out
}

// claimCheck binds the claim bucket on first need: only claim-checked messages need it.
func (c *Client) claimCheck(ctx context.Context) (*events.ClaimCheck, error) {
	if c.claims != nil {
		return c.claims, nil
	}
	cc, err := events.NewClaimCheck(ctx, c.js, events.ClaimConfig{Logger: c.cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("claim bucket %s: %w", events.ClaimBucket, err)
	}
	c.claims = cc
	return cc, nil
}

// deliver sends one batch to service's deliver endpoint and returns its results, one per
// message in order.
func (c *Client) deliver(ctx context.Context, svc string, req service.DeliverRequest) ([]service.DeliverResult, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	if max := c.nc.MaxPayload(); int64(len(body)) > max {
		return nil, fmt.Errorf("request of %d bytes is over the server's max_payload %d: use a smaller batch", len(body), max)
	}
	subject := service.OpsSubject(svc, service.DeliverEndpoint)
	rctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	msg, err := c.nc.RequestWithContext(rctx, subject, body)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil, fmt.Errorf("no replica of %s answers on %s: is it running (nats micro ls)?", svc, subject)
	case errors.Is(err, context.DeadlineExceeded) && errors.Is(c.nc.LastError(), nats.ErrPermissionViolation):
		return nil, fmt.Errorf("%s: refused by the NATS server's permissions (the batch was not handed over): %w", subject, c.nc.LastError())
	case errors.Is(err, context.DeadlineExceeded):
		return nil, fmt.Errorf("%s: no reply within %s (the batch may still be handled; handlers are idempotent, so running it again is safe)", subject, c.cfg.Timeout)
	case err != nil:
		return nil, fmt.Errorf("request %s: %w", subject, err)
	}
	if e := msg.Header.Get(micro.ErrorHeader); e != "" {
		return nil, fmt.Errorf("%s refused: %s (%s)", subject, e, msg.Header.Get(micro.ErrorCodeHeader))
	}
	var reply service.DeliverReply
	if err := json.Unmarshal(msg.Data, &reply); err != nil {
		return nil, fmt.Errorf("%s reply: %w", subject, err)
	}
	if len(reply.Results) != len(req.Messages) {
		return nil, fmt.Errorf("%s answered %d results for %d messages", subject, len(reply.Results), len(req.Messages))
	}
	return reply.Results, nil
}

// scan reads stream through an ephemeral consumer with cfg (no acks, deleted at the end) and
// calls fn with each message until fn says stop or the messages pending when it started are
// read. onStart gets how many messages were pending then.
func (c *Client) scan(ctx context.Context, stream string, cfg jetstream.ConsumerConfig, onStart func(pending uint64),
	fn func(jetstream.Msg, *jetstream.MsgMetadata) (stop bool, err error)) error {
	cfg.AckPolicy = jetstream.AckNonePolicy
	cfg.InactiveThreshold = 5 * time.Minute // gone on its own if this process dies
	cfg.MemoryStorage = true
	cfg.Name = "cpctl-" + strings.ReplaceAll(events.NewID(), "-", "")[:16]
	cons, err := c.js.CreateConsumer(ctx, stream, cfg)
	if err != nil {
		return fmt.Errorf("create a temporary consumer on %s: %w", stream, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := c.js.DeleteConsumer(dctx, stream, cfg.Name); err != nil {
			c.cfg.Logger.Warn("temporary consumer not deleted; it goes by itself after its inactive threshold",
				"stream", stream, "consumer", cfg.Name, "err", err)
		}
	}()
	pending := cons.CachedInfo().NumPending
	if onStart != nil {
		onStart(pending)
	}
	if pending == 0 {
		return nil
	}
	for {
		batch, err := cons.Fetch(c.cfg.Batch, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return fmt.Errorf("read %s: %w", stream, err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			md, err := msg.Metadata()
			if err != nil {
				return fmt.Errorf("read %s: %w", stream, err)
			}
			stop, err := fn(msg, md)
			if err != nil || stop {
				return err
			}
			if md.NumPending == 0 {
				return nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return fmt.Errorf("read %s: %w", stream, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if n == 0 {
			info, err := cons.Info(ctx)
			if err != nil {
				return fmt.Errorf("read %s: %w", stream, err)
			}
			if info.NumPending == 0 {
				return nil
			}
		}
	}
}

// SubjectMatches reports whether subject matches the NATS subject filter (tokens, * and >).
func SubjectMatches(filter, subject string) bool {
	ft, st := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, f := range ft {
		switch {
		case f == ">":
			return len(st) > i
		case i >= len(st):
			return false
		case f != "*" && f != st[i]:
			return false
		}
	}
	return len(ft) == len(st)
}
