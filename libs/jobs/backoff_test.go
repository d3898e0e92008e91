package jobs

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBackoffGrowsWithJitterUpToTheCap(t *testing.T) {
	t.Parallel()
	const base, limit = time.Second, 5 * time.Minute
	var prevMax time.Duration
	for attempt := 1; attempt <= 40; attempt++ {
		d := base << (attempt - 1)
		if attempt > 12 || d > limit {
			d = limit
		}
		lo, hi := time.Duration(1<<62), time.Duration(0)
		for range 2000 {
			got := backoff(attempt, base, limit)
			lo, hi = min(lo, got), max(hi, got)
		}
		require.GreaterOrEqual(t, lo, d/2, "attempt %d", attempt)
		require.LessOrEqual(t, hi, d, "attempt %d", attempt)
		require.LessOrEqual(t, hi, limit)
		require.Greater(t, hi-lo, d/4, "attempt %d: retries should spread out", attempt)
		// Equal jitter: the shortest delay of the next attempt is at least the longest of this
		// one, until the cap.
		if d < limit {
			require.GreaterOrEqual(t, lo, prevMax, "attempt %d", attempt)
		}
		prevMax = hi
	}
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	c, err := Config{}.withDefaults()
	require.NoError(t, err)
	require.Equal(t, DefaultWorkers, c.Workers)
	require.Equal(t, DefaultBatchSize, c.BatchSize)
	require.Equal(t, DefaultLease, c.Lease)
	require.Equal(t, DefaultBackoffBase, c.BackoffBase)
	require.Equal(t, DefaultBackoffCap, c.BackoffCap)
	require.Equal(t, DefaultPollInterval, c.PollInterval)
	require.Equal(t, DefaultJobTimeout, c.JobTimeout)
	require.NotEmpty(t, c.WorkerID)
	require.NotNil(t, c.Logger)

	_, err = Config{Workers: -1, BackoffBase: time.Minute, BackoffCap: time.Second}.withDefaults()
	require.ErrorContains(t, err, "Workers")
	require.ErrorContains(t, err, "BackoffCap")
}
