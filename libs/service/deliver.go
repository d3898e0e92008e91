package service

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"cryptopill.dev/jobs/libs/events"
)

// DeliverEndpoint is the operator endpoint every service with consumers answers on
// cp.ops.<service>.deliver: it runs one of its durables' handler chains over the messages in
// the request (events.Consumer.Deliver) and answers per message. `cpctl dlq redrive` and
// `cpctl replay` read JetStream themselves and send the messages here, so only the consumer
// that owns the durable sees them, nothing is published into a duplicate window, and the
// durable itself is never touched.
const DeliverEndpoint = "deliver"

// OpsSubject is the subject of a service's operator endpoint: cp.ops.<service>.<endpoint>.
func OpsSubject(service, endpoint string) string {
	return OpsSubjectPrefix + "." + service + "." + endpoint
}

// DeliverRequest is the body of a request to DeliverEndpoint (JSON).
type DeliverRequest struct {
	// Durable names the consumer whose handler runs, e.g. events.ConsumerStrauxTicks.
	Durable string `json:"durable"`
	// Mode is events.DeliverRedrive or events.DeliverReplay.
	Mode     events.DeliverMode `json:"mode"`
	Messages []DeliverMessage   `json:"messages"`
}

// DeliverMessage is one message of a DeliverRequest.
type DeliverMessage struct {
	Subject string      `json:"subject"`
	Header  nats.Header `json:"headers,omitempty"`
	// Data is the payload as stored (JSON base64).
	Data     []byte    `json:"data"`
	Stream   string    `json:"stream"`
	Sequence uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	// DeadLetterSeq is the CP_DLQ entry a re-drive comes from.
	DeadLetterSeq uint64 `json:"dlq_seq,omitempty"`
}

// DeliverReply answers a DeliverRequest: one result per message, in order.
type DeliverReply struct {
	Results []DeliverResult `json:"results"`
	// Replica says which process answered (service/session).
	Replica string `json:"replica,omitempty"`
}

// DeliverResult is one message's outcome.
type DeliverResult struct {
	Sequence      uint64 `json:"seq"`
	Outcome       string `json:"outcome"`
	Error         string `json:"error,omitempty"`
	DeadLetterSeq uint64 `json:"new_dlq_seq,omitempty"`
}

// MaxDeliverBatch bounds the messages of one DeliverRequest: the request must fit a NATS message
// and its reply the requester's timeout.
const MaxDeliverBatch = 500

// deliverHandler serves DeliverEndpoint with the consumers the service added to p.Events. Each
// request runs in its own goroutine (a long replay must not hold up the endpoint's
// subscription), its messages one after the other in order (a universe change must not overtake
// an earlier one); handlers get the process's context, so a stopping service ends them.
func (p *Process) deliverHandler(ctx context.Context) micro.HandlerFunc {
	return func(req micro.Request) {
		p.opsWG.Add(1)
		go func() {
			defer p.opsWG.Done()
			p.serveDeliver(ctx, req)
		}()
	}
}

func (p *Process) serveDeliver(ctx context.Context, req micro.Request) {
	var r DeliverRequest
	if err := json.Unmarshal(req.Data(), &r); err != nil {
		p.opsError(req, "400", fmt.Errorf("deliver: request body: %w", err))
		return
	}
	c, ok := p.Events.Consumer(r.Durable)
	if !ok {
		p.opsError(req, "404", fmt.Errorf("deliver: %s runs no consumer %q (it runs %v)", p.Name, r.Durable, p.Events.Consumers()))
		return
	}
	if r.Mode != events.DeliverRedrive && r.Mode != events.DeliverReplay {
		p.opsError(req, "400", fmt.Errorf("deliver: mode %q: want %q or %q", r.Mode, events.DeliverRedrive, events.DeliverReplay))
		return
	}
	if len(r.Messages) > MaxDeliverBatch {
		p.opsError(req, "400", fmt.Errorf("deliver: %d messages in one request, at most %d", len(r.Messages), MaxDeliverBatch))
		return
	}
	reply := DeliverReply{Results: make([]DeliverResult, 0, len(r.Messages)), Replica: fmt.Sprintf("%s/%d", p.Name, p.SessionID)}
	for _, m := range r.Messages {
		if ctx.Err() != nil {
			reply.Results = append(reply.Results, DeliverResult{Sequence: m.Sequence, Outcome: events.OutcomeFailed,
				Error: "the service is stopping; not handled (a dead letter is kept)"})
			continue
		}
		res := c.Deliver(ctx, r.Mode, events.DeliveredMsg{Subject: m.Subject, Header: m.Header, Data: m.Data,
			Stream: m.Stream, Sequence: m.Sequence, Time: m.Time, DeadLetterSeq: m.DeadLetterSeq})
		reply.Results = append(reply.Results, DeliverResult{Sequence: m.Sequence, Outcome: res.Outcome, Error: res.Err, DeadLetterSeq: res.DeadLetterSeq})
	}
	p.Logger.Info("operator delivery", "durable", r.Durable, "mode", string(r.Mode), "messages", len(r.Messages))
	if err := req.RespondJSON(reply); err != nil {
		// The requester times out and says so; the work is done and idempotent to repeat.
		p.Logger.Error("deliver: reply not sent", "durable", r.Durable, "err", err)
	}
}

func (p *Process) opsError(req micro.Request, code string, err error) {
	p.Logger.Warn("operator request refused", "subject", req.Subject(), "err", err)
	if rerr := req.Error(code, err.Error(), nil); rerr != nil {
		p.Logger.Error("ops: error reply not sent", "subject", req.Subject(), "err", rerr, slog.String("refused", err.Error()))
	}
}
