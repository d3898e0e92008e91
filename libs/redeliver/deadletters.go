package redeliver

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/service"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
)

// DeadLetter is one CP_DLQ entry, decoded.
type DeadLetter struct {
	// Seq is the entry's CP_DLQ sequence: what show, redrive and purge take.
	Seq             uint64      `json:"seq"`
	Consumer        string      `json:"consumer"`
	Reason          string      `json:"reason"`
	Error           string      `json:"error"`
	OriginalSubject string      `json:"original_subject"`
	Stream          string      `json:"stream"`
	StreamSeq       uint64      `json:"stream_seq"`
	Deliveries      uint64      `json:"deliveries"`
	FailedAt        time.Time   `json:"failed_at"`
	Stored          time.Time   `json:"stored"`
	RedrivenFrom    uint64      `json:"redriven_from,omitempty"`
	Header          nats.Header `json:"-"`
	Payload         []byte      `json:"-"`
}

// Filter selects dead letters. The zero value is every entry.
type Filter struct {
	// Consumer is a durable's name ("" = any).
	Consumer string
	// Subject is a NATS filter on the original subject ("" = any).
	Subject string
	// Since keeps entries stored at or after it (zero = any).
	Since time.Time
}

func (f Filter) matches(dl DeadLetter) bool {
	return (f.Subject == "" || SubjectMatches(f.Subject, dl.OriginalSubject)) &&
		(f.Consumer == "" || dl.Consumer == f.Consumer)
}

// DeadLetters reads the CP_DLQ entries f selects, oldest first.
func (c *Client) DeadLetters(ctx context.Context, f Filter) ([]DeadLetter, error) {
	cfg := jetstream.ConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy, FilterSubject: events.SubjectsDLQ}
	if f.Consumer != "" {
		cfg.FilterSubject = events.DeadLetterSubject(f.Consumer)
	}
	if !f.Since.IsZero() {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &f.Since
	}
	var out []DeadLetter
	err := c.scan(ctx, events.StreamDLQ, cfg, nil, func(msg jetstream.Msg, md *jetstream.MsgMetadata) (bool, error) {
		dl, err := c.decodeDeadLetter(ctx, md.Sequence.Stream, msg.Subject(), msg.Headers(), msg.Data(), md.Timestamp)
		if err != nil {
			// Listed with what is known: an entry nobody can read is still an entry.
			dl.Error = err.Error()
		}
		if f.matches(dl) {
			out = append(out, dl)
		}
		return false, nil
	})
	return out, err
}

// DeadLetter reads one CP_DLQ entry by its sequence.
func (c *Client) DeadLetter(ctx context.Context, seq uint64) (DeadLetter, error) {
	s, err := c.js.Stream(ctx, events.StreamDLQ)
	if err != nil {
		return DeadLetter{}, fmt.Errorf("stream %s: %w", events.StreamDLQ, err)
	}
	m, err := s.GetMsg(ctx, seq)
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return DeadLetter{}, fmt.Errorf("dead letter %d: no such entry in %s (removed, or never there)", seq, events.StreamDLQ)
		}
		return DeadLetter{}, fmt.Errorf("dead letter %d: %w", seq, err)
	}
	return c.decodeDeadLetter(ctx, seq, m.Subject, m.Header, m.Data, m.Time)
}

// decodeDeadLetter decodes a CP_DLQ message (claim-checked ones resolved).
func (c *Client) decodeDeadLetter(ctx context.Context, seq uint64, subject string, h nats.Header, data []byte, stored time.Time) (DeadLetter, error) {
	dl := DeadLetter{Seq: seq, Stored: stored, Consumer: consumerOf(subject)}
	if h.Get(events.HeaderClaim) != "" {
		cc, err := c.claimCheck(ctx)
		if err != nil {
			return dl, fmt.Errorf("dead letter %d: %w", seq, err)
		}
		if data, err = cc.Resolve(ctx, h, data); err != nil {
			return dl, fmt.Errorf("dead letter %d: %w", seq, err)
		}
	}
	_, ev, err := events.Decode(ctx, &nats.Msg{Subject: subject, Header: h, Data: data})
	if err != nil {
		return dl, fmt.Errorf("dead letter %d: %w", seq, err)
	}
	p, ok := ev.Payload.(*eventsv1.DeadLetter)
	if !ok {
		return dl, fmt.Errorf("dead letter %d: carries %T, want DeadLetter", seq, ev.Payload)
	}
	if p.GetConsumer() != "" {
		dl.Consumer = p.GetConsumer()
	}
	dl.Reason = p.GetReason().String()
	dl.Error = p.GetError()
	dl.OriginalSubject = p.GetOriginalSubject()
	dl.Stream = p.GetStream()
	dl.StreamSeq = p.GetStreamSequence()
	dl.Deliveries = p.GetDeliveryCount()
	dl.FailedAt = p.GetFailedAt().AsTime()
	dl.Payload = p.GetOriginalPayload()
	dl.Header = nats.Header{}
	for k, v := range p.GetOriginalHeaders() {
		dl.Header[k] = v.GetValues()
	}
	if v := h.Get(events.HeaderRedrivenFrom); v != "" {
		dl.RedrivenFrom, _ = strconv.ParseUint(v, 10, 64)
	}
	return dl, nil
}

// OriginalPayload is the dead letter's original payload, its claim-checked payload resolved.
func (c *Client) OriginalPayload(ctx context.Context, dl DeadLetter) ([]byte, error) {
	if dl.Header.Get(events.HeaderClaim) == "" {
		return dl.Payload, nil
	}
	cc, err := c.claimCheck(ctx)
	if err != nil {
		return nil, err
	}
	data, err := cc.Resolve(ctx, dl.Header, dl.Payload)
	if err != nil {
		return nil, fmt.Errorf("dead letter %d: original payload: %w", dl.Seq, err)
	}
	return data, nil
}

// consumerOf is the durable of a dead-letter subject cp.dlq.<durable>.
func consumerOf(subject string) string {
	const prefix = "cp.dlq."
	if len(subject) > len(prefix) && subject[:len(prefix)] == prefix {
		return subject[len(prefix):]
	}
	return ""
}

// ConsumerSummary is the dead letters of one consumer.
type ConsumerSummary struct {
	Consumer string         `json:"consumer"`
	Count    int            `json:"count"`
	Oldest   time.Time      `json:"oldest"`
	Newest   time.Time      `json:"newest"`
	Reasons  map[string]int `json:"reasons"`
	Subjects map[string]int `json:"subjects"`
	Service  string         `json:"service,omitempty"`
}

// Summarize groups dead letters per consumer, consumers by name.
func (c *Client) Summarize(dls []DeadLetter) []ConsumerSummary {
	by := map[string]*ConsumerSummary{}
	for _, dl := range dls {
		s := by[dl.Consumer]
		if s == nil {
			s = &ConsumerSummary{Consumer: dl.Consumer, Oldest: dl.Stored, Reasons: map[string]int{}, Subjects: map[string]int{}}
			s.Service, _, _ = c.Owner(dl.Consumer)
			by[dl.Consumer] = s
		}
		s.Count++
		if dl.Stored.Before(s.Oldest) {
			s.Oldest = dl.Stored
		}
		if dl.Stored.After(s.Newest) {
			s.Newest = dl.Stored
		}
		s.Reasons[dl.Reason]++
		s.Subjects[dl.OriginalSubject]++
	}
	out := make([]ConsumerSummary, 0, len(by))
	for _, s := range by {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Consumer < out[j].Consumer })
	return out
}

// RedriveResult is one re-driven entry's outcome.
type RedriveResult struct {
	Seq      uint64 `json:"seq"`
	Consumer string `json:"consumer"`
	// Outcome is "ok" (handled; entry removed), "dead_lettered" (failed again: NewSeq is its new
	// entry; the old one removed) or "failed" (not handed over or not written anew: the entry is
	// kept).
	Outcome string `json:"outcome"`
	Error   string `json:"error,omitempty"`
	NewSeq  uint64 `json:"new_seq,omitempty"`
	// Removed says whether the old entry was removed from CP_DLQ.
	Removed bool `json:"removed"`
}

// RedriveReport sums up a re-drive.
type RedriveReport struct {
	Results      []RedriveResult `json:"results"`
	OK           int             `json:"ok"`
	DeadLettered int             `json:"dead_lettered"`
	Failed       int             `json:"failed"`
	// NotRemoved counts entries handled (or dead-lettered anew) whose old entry could not be
	// removed: handled twice at the next re-drive unless purged.
	NotRemoved int `json:"not_removed"`
}

// Redrive hands each dead letter's original message to the service that runs its consumer, in
// order, a batch per request. An entry is removed from CP_DLQ only once its message was handled
// (ok) or its new dead letter is written (dead_lettered); otherwise it stays. onDone, if set, is
// called after each batch with the number of entries it settled.
func (c *Client) Redrive(ctx context.Context, dls []DeadLetter, onDone func(n int)) (RedriveReport, error) {
	var rep RedriveReport
	dlq, err := c.js.Stream(ctx, events.StreamDLQ)
	if err != nil {
		return rep, fmt.Errorf("stream %s: %w", events.StreamDLQ, err)
	}
	add := func(r RedriveResult) {
		switch r.Outcome {
		case events.OutcomeOK:
			rep.OK++
		case events.OutcomeDeadLettered:
			rep.DeadLettered++
		default:
			rep.Failed++
		}
		if (r.Outcome == events.OutcomeOK || r.Outcome == events.OutcomeDeadLettered) && !r.Removed {
			rep.NotRemoved++
		}
		rep.Results = append(rep.Results, r)
	}
	for start := 0; start < len(dls); {
		// A batch is consecutive entries of one consumer (order kept per consumer).
		end := start + 1
		for end < len(dls) && end-start < c.cfg.Batch && dls[end].Consumer == dls[start].Consumer {
			end++
		}
		batch := dls[start:end]
		start = end
		durable := batch[0].Consumer
		svc, _, oerr := c.Owner(durable)
		req := service.DeliverRequest{Durable: durable, Mode: events.DeliverRedrive}
		var sent []DeadLetter
		for _, dl := range batch {
			if oerr == nil && dl.OriginalSubject == "" {
				add(RedriveResult{Seq: dl.Seq, Consumer: durable, Outcome: events.OutcomeFailed,
					Error: fmt.Sprintf("no original subject (a minimal dead letter): replay it from its stream instead: "+
						"cpctl replay -stream %s -start-seq %d -end-seq %d", dl.Stream, dl.StreamSeq, dl.StreamSeq)})
				continue
			}
			if oerr != nil {
				add(RedriveResult{Seq: dl.Seq, Consumer: durable, Outcome: events.OutcomeFailed, Error: oerr.Error()})
				continue
			}
			sent = append(sent, dl)
			req.Messages = append(req.Messages, service.DeliverMessage{Subject: dl.OriginalSubject, Header: dl.Header,
				Data: dl.Payload, Stream: dl.Stream, Sequence: dl.StreamSeq, Time: dl.FailedAt, DeadLetterSeq: dl.Seq})
		}
		if len(sent) == 0 {
			if onDone != nil {
				onDone(len(batch))
			}
			continue
		}
		results, err := c.deliver(ctx, svc, req)
		for i, dl := range sent {
			r := RedriveResult{Seq: dl.Seq, Consumer: durable, Outcome: events.OutcomeFailed}
			if err != nil {
				r.Error = err.Error()
				add(r)
				continue
			}
			res := results[i]
			r.Outcome, r.Error, r.NewSeq = res.Outcome, res.Error, res.DeadLetterSeq
			if r.Outcome == events.OutcomeOK || r.Outcome == events.OutcomeDeadLettered {
				// Only now: handled, or its new dead letter is written.
				if derr := dlq.DeleteMsg(ctx, dl.Seq); derr != nil && !errors.Is(derr, jetstream.ErrMsgNotFound) {
					r.Error = joinErr(r.Error, fmt.Sprintf("the old entry %d was not removed (remove it with purge): %v", dl.Seq, derr))
				} else {
					r.Removed = true
				}
			}
			add(r)
		}
		if onDone != nil {
			onDone(len(batch))
		}
		if err := ctx.Err(); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

func joinErr(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// Remove deletes CP_DLQ entries by sequence; it returns how many it removed.
func (c *Client) Remove(ctx context.Context, seqs []uint64) (int, error) {
	s, err := c.js.Stream(ctx, events.StreamDLQ)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", events.StreamDLQ, err)
	}
	n := 0
	for _, seq := range seqs {
		if err := s.DeleteMsg(ctx, seq); err != nil {
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				return n, fmt.Errorf("dead letter %d: no such entry in %s", seq, events.StreamDLQ)
			}
			return n, fmt.Errorf("remove dead letter %d: %w", seq, err)
		}
		n++
	}
	return n, nil
}

// PurgeConsumer removes every dead letter of durable; it returns how many there were.
func (c *Client) PurgeConsumer(ctx context.Context, durable string) (uint64, error) {
	s, err := c.js.Stream(ctx, events.StreamDLQ)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", events.StreamDLQ, err)
	}
	subject := events.DeadLetterSubject(durable)
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", events.StreamDLQ, err)
	}
	n := info.State.Subjects[subject]
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
		return 0, fmt.Errorf("purge %s of %s: %w", subject, events.StreamDLQ, err)
	}
	return n, nil
}
