package exchange

import "github.com/prometheus/client_golang/prometheus"

// Collector exports a limiter's state to Prometheus: the weight used and budgeted in the current
// window, waits, and the 429/418/403 and 5xx answers received. Register one per exchange host.
type Collector struct{ l *Limiter }

// NewCollector returns a collector for l (Client.Limiter()).
func NewCollector(l *Limiter) *Collector { return &Collector{l: l} }

var (
	descWeightUsed = prometheus.NewDesc("cp_exchange_weight_used",
		"Request weight counted in the current window.", []string{"host"}, nil)
	descWeightBudget = prometheus.NewDesc("cp_exchange_weight_budget",
		"Request weight the limiter lets through per window (the exchange's limit less a margin).", []string{"host"}, nil)
	descJobsUsed = prometheus.NewDesc("cp_exchange_weight_jobs_used",
		"Request weight counted in the current window for calls other than tick sampling (market jobs, backfill).", []string{"host"}, nil)
	descJobsBudget = prometheus.NewDesc("cp_exchange_weight_jobs_budget",
		"Request weight market jobs and backfill may spend per window: the budget less the ticks' reserve.", []string{"host"}, nil)
	descWaits = prometheus.NewDesc("cp_exchange_limiter_waits_total",
		"Calls that waited for the weight window to roll or a Retry-After to pass.", []string{"host"}, nil)
	descWaitSeconds = prometheus.NewDesc("cp_exchange_limiter_wait_seconds_total",
		"Time calls spent waiting on the limiter.", []string{"host"}, nil)
	descRejected = prometheus.NewDesc("cp_exchange_rejected_total",
		"Answers 429 (rate limited), 418 (banned), 403 (firewall) and 5xx (server error, each attempt) received.", []string{"host", "status"}, nil)
)

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descWeightUsed, descWeightBudget, descJobsUsed, descJobsBudget, descWaits, descWaitSeconds, descRejected} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.l.Stats()
	ch <- prometheus.MustNewConstMetric(descWeightUsed, prometheus.GaugeValue, float64(s.Used), s.Host)
	ch <- prometheus.MustNewConstMetric(descWeightBudget, prometheus.GaugeValue, float64(s.Budget), s.Host)
	ch <- prometheus.MustNewConstMetric(descJobsUsed, prometheus.GaugeValue, float64(s.JobsUsed), s.Host)
	ch <- prometheus.MustNewConstMetric(descJobsBudget, prometheus.GaugeValue, float64(s.JobsBudget), s.Host)
	ch <- prometheus.MustNewConstMetric(descWaits, prometheus.CounterValue, float64(s.Waits), s.Host)
	ch <- prometheus.MustNewConstMetric(descWaitSeconds, prometheus.CounterValue, s.WaitTime.Seconds(), s.Host)
	ch <- prometheus.MustNewConstMetric(descRejected, prometheus.CounterValue, float64(s.RateLimited), s.Host, "429")
	ch <- prometheus.MustNewConstMetric(descRejected, prometheus.CounterValue, float64(s.Banned), s.Host, "418")
	ch <- prometheus.MustNewConstMetric(descRejected, prometheus.CounterValue, float64(s.Firewalled), s.Host, "403")
	ch <- prometheus.MustNewConstMetric(descRejected, prometheus.CounterValue, float64(s.ServerErrors), s.Host, "5xx")
}
