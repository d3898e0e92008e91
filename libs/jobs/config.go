package jobs

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// Config configures an [Engine]. The zero value of every field is a sensible default; the
// defaults are what `make bench-jobs` measures.
type Config struct {
	// Workers is how many handlers run at once. Default 100.
	Workers int
	// BatchSize is the most jobs one claim statement takes and one completion statement records.
	// Default 1000. An engine holds at most Workers jobs running plus a prefetch of claimed jobs
	// that grows with its measured throughput (about 100 ms of work, at most BatchSize), so fast
	// jobs are claimed in large batches while slow ones are not hoarded away from other engines.
	BatchSize int
	// Lease is how long a claim stays valid without being renewed. Default 30s. An engine renews
	// the leases of the jobs it holds every Lease/3 and looks for expired leases every Lease/2;
	// a job whose worker died is back in the queue within about 1.5 × Lease.
	Lease time.Duration
	// BackoffBase is the retry delay after the first failed attempt. Default 1s. The delay after
	// attempt n is drawn uniformly from [d/2, d] with d = min(BackoffCap, BackoffBase·2^(n−1)):
	// it grows with every attempt, never exceeds BackoffCap, and retries of jobs that failed
	// together spread out.
	BackoffBase time.Duration
	// BackoffCap is the longest retry delay. Default 5m.
	BackoffCap time.Duration
	// PollInterval is the fallback check for due work when no notification, Wake or known
	// schedule woke the engine earlier (a notification lost while the listener reconnected, a
	// job made due by another engine's retry). Default 5s.
	PollInterval time.Duration
	// JobTimeout bounds one handler run: its context is cancelled after it and the run counts as
	// a failed attempt. Default 1m; negative: no limit.
	JobTimeout time.Duration
	// WorkerID prefixes the identity the engine writes to locked_by; each Start appends a random
	// suffix. Default: host name and process id.
	WorkerID string
	// Logger receives the engine's logs (retries, failures, rescues, database errors). Default
	// slog.Default().
	Logger *slog.Logger
	// FailureWarnAfter is the number of consecutive failed jobs of one kind (all attempts used,
	// none of the kind succeeding in between), and of consecutive failed occurrences of one
	// recurring job, at which the engine logs a warning. Default 3.
	FailureWarnAfter int
	// OnOutcome, when set, receives every batch of outcomes once it is recorded: successes,
	// retries (Status queued, with the error) and failures. Releases at shutdown and outcomes
	// dropped as stale are not reported. It runs on the engine's completer: keep it quick (an
	// asynchronous publish, a counter), or outcomes queue up behind it.
	OnOutcome func([]Outcome)
	// Retention is how long finished jobs (succeeded, failed, cancelled; failed occurrences of
	// recurring jobs) and ops.job_run rows are kept: the engine prunes older ones at start and
	// every PruneEvery. Default DefaultRetention (7 days); negative: never prune. Services read
	// it from JOBS_RETENTION.
	Retention time.Duration
	// PruneEvery is how often the engine prunes. Default 1h.
	PruneEvery time.Duration
	// SessionID is the process's ops.session_log id, recorded with every run in ops.job_run.
	// Zero: not recorded.
	SessionID int64
	// Now is the clock the retention is measured on and runs are timed with. Default time.Now.
	Now func() time.Time
}

// Defaults of Config's zero-valued fields.
const (
	DefaultWorkers      = 100
	DefaultBatchSize    = 1000
	DefaultLease        = 30 * time.Second
	DefaultBackoffBase  = time.Second
	DefaultBackoffCap   = 5 * time.Minute
	DefaultPollInterval = 5 * time.Second
	DefaultJobTimeout   = time.Minute
	// DefaultFailureWarnAfter is Config.FailureWarnAfter's default.
	DefaultFailureWarnAfter = 3
	DefaultRetention        = 7 * 24 * time.Hour
	DefaultPruneEvery       = time.Hour
)

// withDefaults validates c and fills in its zero fields.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	neg := func(name string, bad bool) {
		if bad {
			errs = append(errs, fmt.Errorf("jobs: Config.%s must not be negative", name))
		}
	}
	neg("Workers", c.Workers < 0)
	neg("BatchSize", c.BatchSize < 0)
	neg("Lease", c.Lease < 0)
	neg("BackoffBase", c.BackoffBase < 0)
	neg("BackoffCap", c.BackoffCap < 0)
	neg("PollInterval", c.PollInterval < 0)
	neg("FailureWarnAfter", c.FailureWarnAfter < 0)
	neg("PruneEvery", c.PruneEvery < 0)
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.PruneEvery == 0 {
		c.PruneEvery = DefaultPruneEvery
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.FailureWarnAfter == 0 {
		c.FailureWarnAfter = DefaultFailureWarnAfter
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.Lease == 0 {
		c.Lease = DefaultLease
	}
	if c.Lease > 0 && c.Lease < 30*time.Millisecond {
		errs = append(errs, fmt.Errorf("jobs: Config.Lease %s is shorter than 30ms", c.Lease))
	}
	if c.BackoffBase == 0 {
		c.BackoffBase = DefaultBackoffBase
	}
	if c.BackoffCap == 0 {
		c.BackoffCap = DefaultBackoffCap
	}
	if c.BackoffCap < c.BackoffBase {
		errs = append(errs, fmt.Errorf("jobs: Config.BackoffCap %s is below BackoffBase %s", c.BackoffCap, c.BackoffBase))
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.JobTimeout == 0 {
		c.JobTimeout = DefaultJobTimeout
	}
	if c.WorkerID == "" {
		host, _ := os.Hostname()
		c.WorkerID = fmt.Sprintf("%s/%d", host, os.Getpid())
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, errors.Join(errs...)
}

// runID is the locked_by identity of one Start: the configured prefix and a random suffix, so
// a restarted engine never mistakes its predecessor's claims for its own.
func (c Config) runID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return c.WorkerID + "/" + hex.EncodeToString(b[:])
}
