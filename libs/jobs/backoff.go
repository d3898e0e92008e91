package jobs

import (
	"math/rand/v2"
	"time"
)

// backoff is the delay before retrying a job whose attempt-th attempt failed: uniform in
// [d/2, d], d = min(limit, base·2^(attempt−1)). Equal jitter keeps growth monotone — the
// shortest delay after attempt n+1 equals the longest after attempt n — while spreading the
// retries of jobs that failed together.
func backoff(attempt int, base, limit time.Duration) time.Duration {
	d := base
	for i := 1; i < attempt && d < limit; i++ {
		d *= 2
	}
	if d > limit || d <= 0 {
		d = limit
	}
	half := d / 2
	return half + rand.N(d-half+1)
}
