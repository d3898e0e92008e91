package events

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
)

// DeliverMode is why an operator hands a message to a consumer's handler outside JetStream.
type DeliverMode string

const (
	// DeliverRedrive is a dead letter sent back to the consumer that wrote it: a failure is
	// dead-lettered again (a new entry), so nothing is lost.
	DeliverRedrive DeliverMode = "redrive"
	// DeliverReplay is a range of a stream re-run through the handler: a failure is reported,
	// never dead-lettered (the message stays in its stream; the replay can be run again).
	DeliverReplay DeliverMode = "replay"
)

// Outcomes of Consumer.Deliver.
const (
	OutcomeOK           = "ok"
	OutcomeFailed       = "failed"
	OutcomeDeadLettered = "dead_lettered"
)

// HeaderRedrivenFrom is set on a dead letter written by a failed re-drive: the CP_DLQ sequence
// of the entry it replaces (which the operator tool removes once this one is written).
const HeaderRedrivenFrom = "Cp-Redriven-From"

// DeliveredMsg is one message handed to a consumer's handler by an operator: a stream message
// read by the operator tool (replay), or the original message of a dead letter (re-drive).
type DeliveredMsg struct {
	Subject string
	Header  nats.Header
	Data    []byte
	// Stream and Sequence are where the original message is (or was) stored; Time is when.
	Stream   string
	Sequence uint64
	Time     time.Time
	// DeadLetterSeq is the CP_DLQ sequence of the entry being re-driven (DeliverRedrive).
	DeadLetterSeq uint64
}

// DeliverResult is the outcome of one DeliveredMsg.
type DeliverResult struct {
	// Outcome is OutcomeOK, OutcomeFailed or OutcomeDeadLettered.
	Outcome string
	// Err is the handler's (or the dead-letter write's) error; "" when OK.
	Err string
	// DeadLetterSeq is the new CP_DLQ entry of a failed re-drive (OutcomeDeadLettered).
	DeadLetterSeq uint64
}

type operatorKey struct{}

// OperatorDelivery reports whether ctx is a handler call for a message an operator handed over
// (Consumer.Deliver), and why. A handler may repair differently then: straux, which cannot
// sample a past order book again, backfills a replayed past period from klines.
func OperatorDelivery(ctx context.Context) (DeliverMode, bool) {
	m, ok := ctx.Value(operatorKey{}).(DeliverMode)
	return m, ok
}

// Stream is the stream the consumer reads.
func (c *Consumer) Stream() string { return c.cfg.Stream }

// Durable is the durable consumer's name.
func (c *Consumer) Durable() string { return c.cfg.Durable }

// Deliver runs the consumer's whole handler chain (claim-check resolution, decode, the built-in
// and configured middleware, the handler) on one message outside JetStream: the durable is not
// touched and no other reader of the subject sees the message. It is what the operator's re-drive
// and replay use. One attempt: with DeliverRedrive a failure (undecodable, rejected or failed)
// is written to CP_DLQ as a new dead letter, whose sequence is returned once its PubAck is in;
// if that write fails the outcome is OutcomeFailed and the caller keeps the old entry. With
// DeliverReplay a failure is OutcomeFailed.
func (c *Consumer) Deliver(ctx context.Context, mode DeliverMode, m DeliveredMsg) DeliverResult {
	res := c.deliver(ctx, mode, m)
	c.countDelivery(mode, res.Outcome)
	log := c.log.With("mode", string(mode), "subject", m.Subject, "stream_seq", m.Sequence, "outcome", res.Outcome)
	switch res.Outcome {
	case OutcomeOK:
		log.Debug("operator delivery handled")
	case OutcomeDeadLettered:
		log.Warn("operator delivery failed again; dead-lettered anew", "err", res.Err,
			"old_dlq_seq", m.DeadLetterSeq, "dlq_seq", res.DeadLetterSeq)
	default:
		log.Warn("operator delivery failed", "err", res.Err, "old_dlq_seq", m.DeadLetterSeq)
	}
	return res
}

func (c *Consumer) deliver(ctx context.Context, mode DeliverMode, m DeliveredMsg) DeliverResult {
	if mode != DeliverRedrive && mode != DeliverReplay {
		return DeliverResult{Outcome: OutcomeFailed, Err: fmt.Sprintf("delivery mode %q: want %q or %q", mode, DeliverRedrive, DeliverReplay)}
	}
	if err := validSubject(m.Subject, false); err != nil {
		return DeliverResult{Outcome: OutcomeFailed, Err: err.Error()}
	}
	if m.Header == nil {
		m.Header = nats.Header{}
	}
	md := &jetstream.MsgMetadata{
		Sequence:  jetstream.SequencePair{Stream: m.Sequence},
		Stream:    m.Stream,
		Consumer:  c.cfg.Durable,
		Timestamp: m.Time,
		// 1: the handler sees a first delivery; nothing here is redelivered.
		NumDelivered: 1,
	}
	hctx := context.WithValue(ctx, operatorKey{}, mode)
	fail := func(reason eventsv1.DeadLetter_Reason, err error) DeliverResult {
		// A service stopping (its context cancelled) is not the message's fault: the entry is
		// kept, never dead-lettered anew.
		if mode == DeliverReplay || ctx.Err() != nil || errors.Is(err, context.Canceled) {
			return DeliverResult{Outcome: OutcomeFailed, Err: err.Error()}
		}
		return c.redeadLetter(hctx, m, md, reason, err)
	}
	data, err := c.claims.Resolve(hctx, m.Header, m.Data)
	if err != nil {
		reason := eventsv1.DeadLetter_REASON_RETRIES_EXHAUSTED
		switch {
		case errors.Is(err, ErrClaimMissing):
			reason = eventsv1.DeadLetter_REASON_CLAIM_MISSING
		case errors.Is(err, ErrClaimCorrupt):
			reason = eventsv1.DeadLetter_REASON_CLAIM_CORRUPT
		}
		return fail(reason, err)
	}
	hctx, ev, err := Decode(hctx, &nats.Msg{Subject: m.Subject, Header: m.Header, Data: data})
	if err != nil {
		return fail(eventsv1.DeadLetter_REASON_UNDECODABLE, err)
	}
	ev.Metadata = md
	if err := c.handler(hctx, ev); err != nil {
		reason := eventsv1.DeadLetter_REASON_RETRIES_EXHAUSTED
		if errors.Is(err, ErrPermanent) {
			reason = eventsv1.DeadLetter_REASON_REJECTED
		}
		return fail(reason, err)
	}
	return DeliverResult{Outcome: OutcomeOK}
}

// RedriveDeadLetterID is the id of the dead letter a failed re-drive of CP_DLQ entry dlqSeq
// writes: distinct from the original dead letter's (which CP_DLQ's duplicate window would
// drop), and the same when that re-drive is retried, so a retry does not write it twice.
func RedriveDeadLetterID(stream string, streamSeq uint64, consumer string, dlqSeq uint64) string {
	return StableID("dead_letter_redrive", stream, strconv.FormatUint(streamSeq, 10), consumer, strconv.FormatUint(dlqSeq, 10))
}

// redeadLetter writes a failed re-drive's new dead letter and waits for its PubAck, retrying a
// failed write while ctx lasts.
func (c *Consumer) redeadLetter(ctx context.Context, m DeliveredMsg, md *jetstream.MsgMetadata, reason eventsv1.DeadLetter_Reason, cause error) DeliverResult {
	id := RedriveDeadLetterID(m.Stream, m.Sequence, c.cfg.Durable, m.DeadLetterSeq)
	subject := DeadLetterSubject(c.cfg.Durable)
	log := c.log.With("subject", m.Subject, "stream_seq", m.Sequence, "reason", reason.String(), "dlq_id", id)
	cause = fmt.Errorf("re-drive of dead letter %d: %w", m.DeadLetterSeq, cause)
	wait := c.cfg.DeadLetterRetryWait
	var lastErr error
	for failures := 0; ; failures++ {
		nmsg, err := c.deadLetterMsg(ctx, m.Subject, m.Header, m.Data, md, reason, cause, id, subject, log)
		if errors.Is(err, errUnencodable) {
			c.dlqLost.Add(1)
			return DeliverResult{Outcome: OutcomeFailed, Err: fmt.Sprintf("%v; new dead letter not encodable (%v): the old entry is kept", cause, err)}
		}
		if err == nil {
			nmsg.Header.Set(HeaderRedrivenFrom, strconv.FormatUint(m.DeadLetterSeq, 10))
			var ack *jetstream.PubAck
			ack, err = c.publishDeadLetter(ctx, nmsg)
			if err == nil && ack.Sequence == m.DeadLetterSeq {
				// Never answer with the entry being re-driven: the caller would remove it.
				return DeliverResult{Outcome: OutcomeFailed, Err: fmt.Sprintf("%v; the new dead letter was taken for the old entry %d (duplicate): the old entry is kept", cause, m.DeadLetterSeq)}
			}
			if err == nil {
				c.deadLettered.Add(1)
				return DeliverResult{Outcome: OutcomeDeadLettered, Err: cause.Error(), DeadLetterSeq: ack.Sequence}
			}
		}
		c.dlqFailures.Add(1)
		lastErr = err
		log.Warn("re-drive: new dead letter not written; retrying", "failures", failures+1, "err", err)
		select {
		case <-time.After(wait):
			wait = min(wait*2, c.cfg.DeadLetterRetryMax)
		case <-ctx.Done():
			return DeliverResult{Outcome: OutcomeFailed,
				Err: fmt.Sprintf("%v; new dead letter not written (%v): the old entry is kept", cause, lastErr)}
		}
	}
}

// publishDeadLetter is writeDeadLetter returning the PubAck (the new entry's sequence).
func (c *Consumer) publishDeadLetter(ctx context.Context, nmsg *nats.Msg) (*jetstream.PubAck, error) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := c.claims.Offload(actx, nmsg); err != nil {
		return nil, err
	}
	return c.js.PublishMsg(actx, nmsg)
}

var (
	deliverModes    = [2]DeliverMode{DeliverRedrive, DeliverReplay}
	deliverOutcomes = [3]string{OutcomeOK, OutcomeFailed, OutcomeDeadLettered}
)

func (c *Consumer) countDelivery(mode DeliverMode, outcome string) {
	for i, m := range deliverModes {
		for j, o := range deliverOutcomes {
			if m == mode && o == outcome {
				c.delivered[i][j].Add(1)
				return
			}
		}
	}
	// An unknown mode was refused before any handling: counted as a failed replay, so it shows.
	c.delivered[1][1].Add(1)
}
