package jobs

import "github.com/prometheus/client_golang/prometheus"

// Collector exports an engine's counters to Prometheus: jobs by outcome, jobs in flight, failed
// jobs per kind since its last success, and the time spent in claim and completion statements. Register one per engine.
type Collector struct{ e *Engine }

// NewCollector returns a collector for e.
func NewCollector(e *Engine) *Collector { return &Collector{e: e} }

var (
	descJobs = prometheus.NewDesc("cp_jobs_total",
		"Jobs handled by this engine, by outcome.", []string{"outcome"}, nil)
	descJobsInFlight = prometheus.NewDesc("cp_jobs_in_flight",
		"Jobs claimed and not yet finished by a handler.", nil, nil)
	descJobConsecutiveFailures = prometheus.NewDesc("cp_jobs_consecutive_failures",
		"Jobs of a kind this engine recorded as failed (all attempts used; for a recurring job, one failed occurrence, its next one queued) since its last recorded success of the kind.",
		[]string{"kind"}, nil)
	descJobsPruned = prometheus.NewDesc("cp_jobs_pruned_total",
		"Finished jobs (table jobs) and ops.job_run rows (table runs) this engine deleted past the retention.", []string{"table"}, nil)
	descJobErrors = prometheus.NewDesc("cp_jobs_maintenance_errors_total",
		"Failed upkeep statements of this engine: prune (retention), record_runs (ops.job_run).", []string{"op"}, nil)
	descJobStatements = prometheus.NewDesc("cp_jobs_statements_total",
		"Claim and completion statements run.", []string{"statement"}, nil)
	descJobStatementSeconds = prometheus.NewDesc("cp_jobs_statement_seconds_total",
		"Time spent in claim and completion statements.", []string{"statement"}, nil)
)

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descJobs
	ch <- descJobsInFlight
	ch <- descJobConsecutiveFailures
	ch <- descJobsPruned
	ch <- descJobErrors
	ch <- descJobStatements
	ch <- descJobStatementSeconds
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.e.Stats()
	for outcome, v := range map[string]int64{"claimed": s.Claimed, "succeeded": s.Succeeded, "retried": s.Retried,
		"failed": s.Failed, "released": s.Released, "stale": s.Stale, "rescued": s.Rescued, "cancelled": s.Cancelled} {
		ch <- prometheus.MustNewConstMetric(descJobs, prometheus.CounterValue, float64(v), outcome)
	}
	ch <- prometheus.MustNewConstMetric(descJobsPruned, prometheus.CounterValue, float64(s.PrunedJobs), "jobs")
	ch <- prometheus.MustNewConstMetric(descJobsPruned, prometheus.CounterValue, float64(s.PrunedRuns), "runs")
	ch <- prometheus.MustNewConstMetric(descJobErrors, prometheus.CounterValue, float64(s.PruneErrors), "prune")
	ch <- prometheus.MustNewConstMetric(descJobErrors, prometheus.CounterValue, float64(s.RunRecordErrors), "record_runs")
	ch <- prometheus.MustNewConstMetric(descJobsInFlight, prometheus.GaugeValue, float64(s.InFlight))
	for kind, n := range s.ConsecutiveFailures {
		ch <- prometheus.MustNewConstMetric(descJobConsecutiveFailures, prometheus.GaugeValue, float64(n), string(kind))
	}
	ch <- prometheus.MustNewConstMetric(descJobStatements, prometheus.CounterValue, float64(s.ClaimQueries), "claim")
	ch <- prometheus.MustNewConstMetric(descJobStatements, prometheus.CounterValue, float64(s.CompleteQueries), "complete")
	ch <- prometheus.MustNewConstMetric(descJobStatementSeconds, prometheus.CounterValue, s.ClaimTime.Seconds(), "claim")
	ch <- prometheus.MustNewConstMetric(descJobStatementSeconds, prometheus.CounterValue, s.CompleteTime.Seconds(), "complete")
}
