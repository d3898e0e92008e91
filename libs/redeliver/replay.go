package redeliver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/service"
)

// ReplayOptions is one replay: a range of a stream, re-run through one durable's handler.
type ReplayOptions struct {
	// Stream and Service are required; Durable is needed only when Service runs several durables
	// on Stream.
	Stream, Service, Durable string
	// Start of the range: Since (stored at or after it) or StartSeq; exactly one.
	Since    time.Time
	StartSeq uint64
	// End of the range (inclusive): Until or EndSeq; neither means the stream's last message when
	// the replay starts.
	Until  time.Time
	EndSeq uint64
	// Subject narrows the range to a NATS subject filter; "" means the durable's own filters.
	// Messages outside the durable's filters are never handed over (it would not read them).
	Subject string
}

// ReplayFailure is one message the handler failed on.
type ReplayFailure struct {
	Seq     uint64 `json:"seq"`
	Subject string `json:"subject"`
	Error   string `json:"error"`
}

// ReplayReport sums up a replay.
type ReplayReport struct {
	Stream  string `json:"stream"`
	Service string `json:"service"`
	Durable string `json:"durable"`
	// Filters is what the temporary consumer read.
	Filters []string `json:"filters"`
	// FirstSeq and LastSeq are the range actually handed over (0 when none).
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	// Messages handed over; OK and Failed their outcomes; Skipped read but outside the durable's
	// filters.
	Messages int `json:"messages"`
	OK       int `json:"ok"`
	Failed   int `json:"failed"`
	Skipped  int `json:"skipped"`
	// Failures lists the first 100 failures.
	Failures []ReplayFailure `json:"failures,omitempty"`
}

// Note says what a replay through durable can and cannot redo, where that is not obvious; ""
// when there is nothing to say. `cpctl replay` prints it with the summary.
func Note(durable string) string {
	switch durable {
	case events.ConsumerStrauxTicks:
		return "straux cannot sample a past order book again: a replayed tick of a period that was missed " +
			"(skipped, failed, or never ticked) is repaired by the kline backfill of that period (each symbol without a price " +
			"gets the close of the last 1m kline before it, flagged kline_backfill: no spread, imbalance or volume); " +
			"a period whose symbols all have a price is left as it is"
	case events.ConsumerCinimportChanges:
		return "cinimport re-runs the import of each replayed change's scope: moves already imported are not imported twice"
	}
	return ""
}

// maxFailuresListed bounds ReplayReport.Failures.
const maxFailuresListed = 100

// Replay reads opts' range of the stream through a temporary consumer and hands it, a batch per
// request, to one replica of opts.Service, which runs the durable's handler on each message
// (events.DeliverReplay: a failure is reported, never dead-lettered). The durable is only read
// (its filters), never changed. onStart gets the number of messages to read (an upper bound
// when the range ends before the stream does); onDone the number handled after each batch.
func (c *Client) Replay(ctx context.Context, opts ReplayOptions, onStart func(total uint64), onDone func(n int)) (ReplayReport, error) {
	rep := ReplayReport{Stream: opts.Stream, Service: opts.Service}
	durable, err := c.replayDurable(opts)
	if err != nil {
		return rep, err
	}
	rep.Durable = durable
	if opts.Since.IsZero() == (opts.StartSeq == 0) {
		return rep, errors.New("replay: give exactly one start: a time (since) or a start sequence")
	}
	if !opts.Until.IsZero() && opts.EndSeq != 0 {
		return rep, errors.New("replay: give at most one end: a time (until) or an end sequence")
	}
	live, err := c.js.Consumer(ctx, opts.Stream, durable)
	if err != nil {
		return rep, fmt.Errorf("durable %s on %s: %w", durable, opts.Stream, err)
	}
	filters := live.CachedInfo().Config.FilterSubjects
	if f := live.CachedInfo().Config.FilterSubject; f != "" {
		filters = []string{f}
	}
	reads := func(subject string) bool {
		return len(filters) == 0 || slices.ContainsFunc(filters, func(f string) bool { return SubjectMatches(f, subject) })
	}
	rep.Filters = filters
	if opts.Subject != "" {
		rep.Filters = []string{opts.Subject}
	}
	end := opts.EndSeq
	if end == 0 && opts.Until.IsZero() {
		s, err := c.js.Stream(ctx, opts.Stream)
		if err != nil {
			return rep, fmt.Errorf("stream %s: %w", opts.Stream, err)
		}
		end = s.CachedInfo().State.LastSeq
	}
	cfg := jetstream.ConsumerConfig{FilterSubjects: rep.Filters, DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: opts.StartSeq}
	if !opts.Since.IsZero() {
		cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, 0, &opts.Since
	}

	req := service.DeliverRequest{Durable: durable, Mode: events.DeliverReplay}
	flush := func() error {
		if len(req.Messages) == 0 {
			return nil
		}
		results, err := c.deliver(ctx, opts.Service, req)
		if err != nil {
			return fmt.Errorf("replay %s seq %d-%d: %w", opts.Stream, req.Messages[0].Sequence, req.Messages[len(req.Messages)-1].Sequence, err)
		}
		for i, r := range results {
			rep.Messages++
			if r.Outcome == events.OutcomeOK {
				rep.OK++
				continue
			}
			rep.Failed++
			if len(rep.Failures) < maxFailuresListed {
				rep.Failures = append(rep.Failures, ReplayFailure{Seq: r.Sequence, Subject: req.Messages[i].Subject, Error: r.Error})
			}
		}
		if onDone != nil {
			onDone(len(req.Messages))
		}
		req.Messages = req.Messages[:0]
		return nil
	}
	err = c.scan(ctx, opts.Stream, cfg, onStart, func(msg jetstream.Msg, md *jetstream.MsgMetadata) (bool, error) {
		seq := md.Sequence.Stream
		if (end != 0 && seq > end) || (!opts.Until.IsZero() && md.Timestamp.After(opts.Until)) {
			return true, nil
		}
		if !reads(msg.Subject()) {
			rep.Skipped++
			return false, nil
		}
		if rep.FirstSeq == 0 {
			rep.FirstSeq = seq
		}
		rep.LastSeq = seq
		req.Messages = append(req.Messages, service.DeliverMessage{Subject: msg.Subject(), Header: msg.Headers(), Data: msg.Data(),
			Stream: opts.Stream, Sequence: seq, Time: md.Timestamp})
		if len(req.Messages) >= c.cfg.Batch {
			return false, flush()
		}
		return false, nil
	})
	if err == nil {
		err = flush()
	}
	return rep, err
}

// replayDurable is opts.Durable checked against the topology, or the one durable opts.Service
// runs on opts.Stream.
func (c *Client) replayDurable(opts ReplayOptions) (string, error) {
	if opts.Stream == "" || opts.Service == "" {
		return "", errors.New("replay: a stream and a service are required")
	}
	ds := c.Durables(opts.Service, opts.Stream)
	switch {
	case opts.Durable != "" && slices.Contains(ds, opts.Durable):
		return opts.Durable, nil
	case opts.Durable != "":
		return "", fmt.Errorf("replay: %s runs no durable %q on %s (it runs %v)", opts.Service, opts.Durable, opts.Stream, ds)
	case len(ds) == 1:
		return ds[0], nil
	case len(ds) == 0:
		return "", fmt.Errorf("replay: %s runs no durable on %s", opts.Service, opts.Stream)
	}
	return "", fmt.Errorf("replay: %s runs several durables on %s (%v): name one with -durable", opts.Service, opts.Stream, ds)
}
