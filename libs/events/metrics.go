package events

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// scrapeTimeout bounds the JetStream look-ups of one scrape (consumer info, dead-letter counts),
// well inside Prometheus' default 10 s scrape timeout.
const scrapeTimeout = 3 * time.Second

// Collector exports the counters of publishers and consumers to Prometheus, so that operators
// see acks, duplicates, failures, retries and dead letters per publisher and per durable consumer.
// Register it once per process (service.Process.Registry) and add components as they are built.
//
// At each scrape it also reads, for each durable it was given, the consumer's info (messages
// pending and awaiting ack) and the durable's dead letters held in CP_DLQ: a few JetStream API
// requests per scrape, by the service that consumes, so the numbers are there whenever the
// service is.
type Collector struct {
	mu             sync.Mutex
	publishers     map[string]*Publisher
	consumers      map[string]*Consumer
	claims         map[*ClaimCheck]string
	handlerSeconds *prometheus.HistogramVec
	lookupFailures *prometheus.CounterVec
}

// NewCollector returns an empty collector.
func NewCollector() *Collector {
	return &Collector{publishers: map[string]*Publisher{}, consumers: map[string]*Consumer{}, claims: map[*ClaimCheck]string{},
		handlerSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "cp_events_handler_duration_seconds",
			Help:    "Time a consumer's handler took for one delivery, whatever its result, by durable consumer.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}, []string{"consumer"}),
		lookupFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cp_events_consumer_info_failures_total",
			Help: "Scrapes whose consumer info or dead-letter count could not be read from JetStream (the gauges are then absent), by durable consumer."},
			[]string{"consumer"}),
	}
}

// AddClaimCheck exports cc's counters under the label claim_check=name. A consumer's own
// claim-check (one it made because its config had none) is exported with the consumer, named
// after its durable.
func (c *Collector) AddClaimCheck(name string, cc *ClaimCheck) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.claims[cc] = name
}

// AddPublisher exports p's counters under the label publisher=name.
func (c *Collector) AddPublisher(name string, p *Publisher) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.publishers[name] = p
}

// Consumer returns the consumer added for durable, if any: the operator endpoints hand
// messages to it (Consumer.Deliver).
func (c *Collector) Consumer(durable string) (*Consumer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.consumers[durable]
	return k, ok
}

// Consumers lists the durables of the consumers added.
func (c *Collector) Consumers() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.consumers))
	for d := range c.consumers {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}

// AddConsumer exports k's counters under the label consumer=<durable>.
func (c *Collector) AddConsumer(k *Consumer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.consumers[k.cfg.Durable] = k
	k.handlerSeconds.Store(c.handlerSeconds.WithLabelValues(k.cfg.Durable))
	c.lookupFailures.WithLabelValues(k.cfg.Durable)
	if _, ok := c.claims[k.claims]; !ok {
		c.claims[k.claims] = k.cfg.Durable
	}
}

var (
	descPublished = prometheus.NewDesc("cp_events_published_total",
		"Publishes resolved, by result (acked includes duplicates).", []string{"publisher", "result"}, nil)
	descPublishRetries = prometheus.NewDesc("cp_events_publish_retries_total",
		"Publish attempts beyond the first.", []string{"publisher"}, nil)
	descPublishInFlight = prometheus.NewDesc("cp_events_publish_in_flight",
		"Asynchronous publishes awaiting their PubAck.", []string{"publisher"}, nil)
	descConsumed = prometheus.NewDesc("cp_events_consumed_total",
		"Messages settled by a consumer, by outcome.", []string{"consumer", "outcome"}, nil)
	descDeadLetterPending = prometheus.NewDesc("cp_events_dead_letter_pending",
		"Messages whose dead-letter write is failing and being retried; they stay unsettled until it succeeds.", []string{"consumer"}, nil)
	descDeadLettersLost = prometheus.NewDesc("cp_events_dead_letters_lost_total",
		"Dead letters given up: at shutdown on a last delivery (bounded MaxDeliver), or not encodable even minimal; the message stays in its stream.", []string{"consumer"}, nil)
	descDeadLetterEncodeFailures = prometheus.NewDesc("cp_events_dead_letter_encode_failures_total",
		"Dead letters that could not be encoded whole and were written minimal (stream, sequence, reason, payload, the encoding error).", []string{"consumer"}, nil)
	descSettleFailures = prometheus.NewDesc("cp_events_settle_failures_total",
		"Acks, naks, terms and in-progress heartbeats that could not be sent, by operation.", []string{"consumer", "op"}, nil)
	descConsumeErrors = prometheus.NewDesc("cp_events_consume_errors_total",
		"Failed pulls a consumer went on after, and deliveries without JetStream metadata.", []string{"consumer"}, nil)
	descOperatorDeliveries = prometheus.NewDesc("cp_events_operator_deliveries_total",
		"Messages an operator handed to a consumer's handler outside JetStream (cpctl dlq redrive, cpctl replay), by mode and outcome (ok, failed, dead_lettered).",
		[]string{"consumer", "mode", "outcome"}, nil)
	descConsumerPending = prometheus.NewDesc("cp_events_consumer_pending_messages",
		"Messages in the durable's stream it has not been delivered yet (consumer info num_pending): its lag.", []string{"consumer"}, nil)
	descConsumerAckPending = prometheus.NewDesc("cp_events_consumer_ack_pending_messages",
		"Messages delivered to the durable and not settled yet (consumer info num_ack_pending).", []string{"consumer"}, nil)
	descDeadLetters = prometheus.NewDesc("cp_events_dead_letters",
		"Dead letters of the durable held in CP_DLQ (messages on cp.dlq.<consumer>); falls only when they expire or are purged.", []string{"consumer"}, nil)
	descClaims = prometheus.NewDesc("cp_events_claims_total",
		"Claim-check operations, by result: offloaded, offload_failed, resolved, missing, corrupt, resolve_failed, kept (copied for a dead letter), keep_failed, no_space (a Put refused by a full bucket).", []string{"claim_check", "result"}, nil)
	descClaimBytes = prometheus.NewDesc("cp_events_claim_offloaded_bytes_total",
		"Payload bytes stored in the claim bucket.", []string{"claim_check"}, nil)
)

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descPublished
	ch <- descPublishRetries
	ch <- descPublishInFlight
	ch <- descConsumed
	ch <- descOperatorDeliveries
	ch <- descDeadLetterPending
	ch <- descDeadLettersLost
	ch <- descDeadLetterEncodeFailures
	ch <- descSettleFailures
	ch <- descConsumeErrors
	ch <- descClaims
	ch <- descClaimBytes
	ch <- descConsumerPending
	ch <- descConsumerAckPending
	ch <- descDeadLetters
	c.handlerSeconds.Describe(ch)
	c.lookupFailures.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for name, p := range c.publishers {
		s := p.Stats()
		counter(descPublished, s.Acked, name, "acked")
		counter(descPublished, s.Duplicates, name, "duplicate")
		counter(descPublished, s.Failed, name, "failed")
		counter(descPublishRetries, s.Retries, name)
		ch <- prometheus.MustNewConstMetric(descPublishInFlight, prometheus.GaugeValue, float64(s.InFlight), name)
	}
	for name, k := range c.consumers {
		s := k.Stats()
		counter(descConsumed, s.Acked, name, "acked")
		counter(descConsumed, s.Retried, name, "retried")
		counter(descConsumed, s.DeadLettered, name, "dead_lettered")
		counter(descConsumed, s.DeadLetterFailures, name, "dead_letter_failed")
		ch <- prometheus.MustNewConstMetric(descDeadLetterPending, prometheus.GaugeValue, float64(s.DeadLetterPending), name)
		counter(descDeadLettersLost, s.DeadLettersLost, name)
		counter(descDeadLetterEncodeFailures, s.DeadLetterEncodeFailures, name)
		for _, op := range settleOpNames {
			counter(descSettleFailures, s.SettleFailures[op], name, op)
		}
		counter(descConsumeErrors, s.ConsumeErrors, name)
		for mode, outcomes := range s.OperatorDeliveries {
			for o, v := range outcomes {
				counter(descOperatorDeliveries, v, name, string(mode), o)
			}
		}
	}
	c.collectJetStream(ch)
	c.handlerSeconds.Collect(ch)
	c.lookupFailures.Collect(ch)
	for cc, name := range c.claims {
		s := cc.Stats()
		counter(descClaims, s.Offloaded, name, "offloaded")
		counter(descClaims, s.OffloadFailures, name, "offload_failed")
		counter(descClaims, s.Resolved, name, "resolved")
		counter(descClaims, s.Missing, name, "missing")
		counter(descClaims, s.Corrupt, name, "corrupt")
		counter(descClaims, s.ResolveFailures, name, "resolve_failed")
		counter(descClaims, s.Kept, name, "kept")
		counter(descClaims, s.KeepFailures, name, "keep_failed")
		counter(descClaims, s.NoSpace, name, "no_space")
		counter(descClaimBytes, s.OffloadedBytes, name)
	}
}

// collectJetStream exports each durable's lag, ack-pending and dead letters, read from
// JetStream now. A failed look-up is counted and logged, and leaves the durable's gauges out of
// this scrape rather than reporting a stale or zero value. Called with c.mu held.
func (c *Collector) collectJetStream(ch chan<- prometheus.Metric) {
	if len(c.consumers) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	var dlq map[string]uint64 // subject → messages; nil when CP_DLQ could not be read
	var dlqErr error
	for name, k := range c.consumers {
		info, err := k.cons.Info(ctx)
		if err != nil {
			c.lookupFailures.WithLabelValues(name).Inc()
			k.log.Warn("metrics: read consumer info", "consumer", name, "err", err)
		} else {
			ch <- prometheus.MustNewConstMetric(descConsumerPending, prometheus.GaugeValue, float64(info.NumPending), name)
			ch <- prometheus.MustNewConstMetric(descConsumerAckPending, prometheus.GaugeValue, float64(info.NumAckPending), name)
		}
		if dlq == nil && dlqErr == nil {
			dlq, dlqErr = deadLetterCounts(ctx, k.js)
		}
		if dlqErr != nil {
			c.lookupFailures.WithLabelValues(name).Inc()
			k.log.Warn("metrics: count dead letters", "consumer", name, "stream", StreamDLQ, "err", dlqErr)
			continue
		}
		ch <- prometheus.MustNewConstMetric(descDeadLetters, prometheus.GaugeValue, float64(dlq[DeadLetterSubject(name)]), name)
	}
}

// deadLetterCounts returns the messages per subject in CP_DLQ (one stream info request).
func deadLetterCounts(ctx context.Context, js jetstream.JetStream) (map[string]uint64, error) {
	s, err := js.Stream(ctx, StreamDLQ)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", StreamDLQ, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(SubjectsDLQ))
	if err != nil {
		return nil, fmt.Errorf("stream %s info, subjects %s: %w", StreamDLQ, SubjectsDLQ, err)
	}
	counts := info.State.Subjects
	if counts == nil {
		counts = map[string]uint64{}
	}
	return counts, nil
}
