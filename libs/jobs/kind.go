package jobs

// Kind is the type of work a job does. The set is fixed by ingest.jobs' jobs_kind_known check.
type Kind string

// The job kinds of CryptoPill (DOMAIN.md §5).
const (
	KindFetchKlines       Kind = "fetch_klines"
	KindFetchTicker       Kind = "fetch_ticker"
	KindFetchOrderbook    Kind = "fetch_orderbook"
	KindComputeStrVectors Kind = "compute_str_vectors"
	KindComputeMatrices   Kind = "compute_matrices"
	KindComputeMEA        Kind = "compute_mea"
)

// Kinds lists every job kind.
func Kinds() []Kind {
	return []Kind{KindFetchKlines, KindFetchTicker, KindFetchOrderbook,
		KindComputeStrVectors, KindComputeMatrices, KindComputeMEA}
}

// Valid reports whether k is one of [Kinds].
func (k Kind) Valid() bool {
	for _, known := range Kinds() {
		if k == known {
			return true
		}
	}
	return false
}

// Status is where a job is in its life: queued → running → succeeded | failed, back to queued for
// retries and periodic runs, and cancelled from queued or running.
type Status string

// Job statuses, as stored in ingest.jobs.status.
const (
	StatusQueued    Status = "queued"
	StatusRunning   Status = "running"
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
	StatusCancelled Status = "cancelled"
)
