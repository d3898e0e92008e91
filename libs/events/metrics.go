package events

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports the counters of publishers and consumers to Prometheus, so that operators
// see acks, duplicates, failures, retries and dead letters per publisher and per durable consumer.
// Register it once per process (service.Process.Registry) and add components as they are built.
type Collector struct {
	mu         sync.Mutex
	publishers map[string]*Publisher
	consumers  map[string]*Consumer
}

// NewCollector returns an empty collector.
func NewCollector() *Collector {
	return &Collector{publishers: map[string]*Publisher{}, consumers: map[string]*Consumer{}}
}

// AddPublisher exports p's counters under the label publisher=name.
func (c *Collector) AddPublisher(name string, p *Publisher) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.publishers[name] = p
}

// AddConsumer exports k's counters under the label consumer=<durable>.
func (c *Collector) AddConsumer(k *Consumer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.consumers[k.cfg.Durable] = k
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
)

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descPublished
	ch <- descPublishRetries
	ch <- descPublishInFlight
	ch <- descConsumed
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
	}
}
