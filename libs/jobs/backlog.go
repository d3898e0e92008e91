package jobs

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BacklogConfig configures a [Backlog]. The zero value is usable.
type BacklogConfig struct {
	// Interval is how often ingest.jobs is counted. Default 30s: one GROUP BY over the table,
	// whatever the number of scrapers.
	Interval time.Duration
	// Logger receives failed counts. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock stamped on each count. Default time.Now.
	Now func() time.Time
}

// Backlog counts ingest.jobs per kind and status every Interval and exports the last count to
// Prometheus: cp_jobs_backlog{kind,status}, the oldest due time of each kind's queued jobs, and
// when the count was taken. One process runs it (the seeder), as the numbers are the table's,
// not a replica's.
type Backlog struct {
	q   Querier
	cfg BacklogConfig

	mu     sync.Mutex
	counts []Count
	at     time.Time // of counts; zero before the first count

	backlog, oldest, refreshed *prometheus.Desc
	failures                   prometheus.Counter
}

// NewBacklog returns a backlog counter over q; register it, then Run it.
func NewBacklog(q Querier, cfg BacklogConfig) *Backlog {
	if cfg.Interval <= 0 {
		cfg.Interval = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Backlog{q: q, cfg: cfg,
		backlog: prometheus.NewDesc("cp_jobs_backlog",
			"Jobs in ingest.jobs by kind and status (queued, running, succeeded, failed, cancelled), as of the last count.",
			[]string{"kind", "status"}, nil),
		oldest: prometheus.NewDesc("cp_jobs_backlog_oldest_due_timestamp_seconds",
			"Earliest scheduled_for of the kind's queued jobs, Unix seconds, as of the last count; absent when none is queued.",
			[]string{"kind"}, nil),
		refreshed: prometheus.NewDesc("cp_jobs_backlog_counted_timestamp_seconds",
			"When ingest.jobs was last counted, Unix seconds.", nil, nil),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "cp_jobs_backlog_count_failures_total",
			Help: "Counts of ingest.jobs that failed (the last good count stays exported)."}),
	}
}

// Run counts now and every Interval until ctx is done. A failed count is counted, logged and
// retried at the next interval; Run returns only when ctx is done.
func (b *Backlog) Run(ctx context.Context) error {
	t := time.NewTicker(b.cfg.Interval)
	defer t.Stop()
	for {
		_ = b.Refresh(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Refresh counts ingest.jobs once.
func (b *Backlog) Refresh(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, statementTimeout)
	defer cancel()
	counts, err := Counts(sctx, b.q)
	if err != nil {
		if ctx.Err() == nil { // not a shutdown
			b.failures.Inc()
			b.cfg.Logger.Warn("count job backlog", "err", err)
		}
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.counts, b.at = counts, b.cfg.Now()
	return nil
}

// Describe implements prometheus.Collector.
func (b *Backlog) Describe(ch chan<- *prometheus.Desc) {
	ch <- b.backlog
	ch <- b.oldest
	ch <- b.refreshed
	b.failures.Describe(ch)
}

// Collect implements prometheus.Collector. Every kind and status is exported, 0 when the table
// has none, so that a kind's first queued job is a change, not a new series.
func (b *Backlog) Collect(ch chan<- prometheus.Metric) {
	b.mu.Lock()
	counts, at := b.counts, b.at
	b.mu.Unlock()
	b.failures.Collect(ch)
	if at.IsZero() {
		return
	}
	type key struct {
		k Kind
		s Status
	}
	n := map[key]int64{}
	for _, c := range counts {
		n[key{c.Kind, c.Status}] += c.Jobs
		if c.Status == StatusQueued && !c.OldestDue.IsZero() {
			ch <- prometheus.MustNewConstMetric(b.oldest, prometheus.GaugeValue, float64(c.OldestDue.UnixMilli())/1e3, string(c.Kind))
		}
	}
	for _, k := range Kinds() {
		for _, s := range []Status{StatusQueued, StatusRunning, StatusSucceeded, StatusFailed, StatusCancelled} {
			ch <- prometheus.MustNewConstMetric(b.backlog, prometheus.GaugeValue, float64(n[key{k, s}]), string(k), string(s))
		}
	}
	ch <- prometheus.MustNewConstMetric(b.refreshed, prometheus.GaugeValue, float64(at.UnixMilli())/1e3)
}
