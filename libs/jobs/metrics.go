package jobs

import "github.com/prometheus/client_golang/prometheus"

// Collector exports an engine's counters to Prometheus, every job metric by kind: jobs claimed,
// their outcomes, jobs in flight, jobs of other engines rescued, failed jobs since the kind's
// last success, handler run time; and the time spent in claim and completion statements (one
// statement serves many kinds, so those have none). Register one per engine.
//
// The counters add up: per kind, cp_jobs_claimed_total = sum by (kind) (cp_jobs_outcomes_total)
// + cp_jobs_in_flight.
type Collector struct{ e *Engine }

// NewCollector returns a collector for e.
func NewCollector(e *Engine) *Collector { return &Collector{e: e} }

var (
	descJobsClaimed = prometheus.NewDesc("cp_jobs_claimed_total",
		"Jobs this engine claimed, by kind.", []string{"kind"}, nil)
	descJobsOutcomes = prometheus.NewDesc("cp_jobs_outcomes_total",
		"Jobs this engine claimed and finished with, by kind and outcome: succeeded, retried (the attempt failed, another is scheduled), failed (for good), released (handed back unfinished at stop), cancelled (by an operator, while held), stale (no longer this engine's: cancelled or rescued by another).",
		[]string{"kind", "outcome"}, nil)
	descJobsRescued = prometheus.NewDesc("cp_jobs_rescued_total",
		"Jobs with expired leases (another engine's, or this worker's previous life) this engine recovered, by kind and result (requeued, failed: it was the last attempt).",
		[]string{"kind", "result"}, nil)
	descJobsInFlight = prometheus.NewDesc("cp_jobs_in_flight",
		"Jobs claimed and not yet finished by a handler, by kind.", []string{"kind"}, nil)
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
	ch <- descJobsClaimed
	ch <- descJobsOutcomes
	ch <- descJobsRescued
	ch <- descJobsInFlight
	ch <- descJobConsecutiveFailures
	ch <- descJobsPruned
	ch <- descJobErrors
	ch <- descJobStatements
	ch <- descJobStatementSeconds
	c.e.durations.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.e.Stats()
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for kind, k := range s.Kinds {
		name := string(kind)
		counter(descJobsClaimed, k.Claimed, name)
		counter(descJobsOutcomes, k.Succeeded, name, "succeeded")
		counter(descJobsOutcomes, k.Retried, name, "retried")
		counter(descJobsOutcomes, k.Failed, name, "failed")
		counter(descJobsOutcomes, k.Released, name, "released")
		counter(descJobsOutcomes, k.Stale, name, "stale")
		counter(descJobsRescued, k.RescuedRequeued, name, "requeued")
		counter(descJobsRescued, k.RescuedFailed, name, "failed")
		counter(descJobsOutcomes, k.Cancelled, name, "cancelled")
		ch <- prometheus.MustNewConstMetric(descJobsInFlight, prometheus.GaugeValue, float64(k.InFlight), name)
	}
	counter(descJobsPruned, s.PrunedJobs, "jobs")
	counter(descJobsPruned, s.PrunedRuns, "runs")
	counter(descJobErrors, s.PruneErrors, "prune")
	counter(descJobErrors, s.RunRecordErrors, "record_runs")
	for kind, n := range s.ConsecutiveFailures {
		ch <- prometheus.MustNewConstMetric(descJobConsecutiveFailures, prometheus.GaugeValue, float64(n), string(kind))
	}
	counter(descJobStatements, s.ClaimQueries, "claim")
	counter(descJobStatements, s.CompleteQueries, "complete")
	ch <- prometheus.MustNewConstMetric(descJobStatementSeconds, prometheus.CounterValue, s.ClaimTime.Seconds(), "claim")
	ch <- prometheus.MustNewConstMetric(descJobStatementSeconds, prometheus.CounterValue, s.CompleteTime.Seconds(), "complete")
	c.e.durations.Collect(ch)
}
