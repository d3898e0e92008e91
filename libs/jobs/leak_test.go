package jobs_test

import (
	"bytes"
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/jobs"
)

// engineGoroutines returns the stacks of goroutines running the engine's code.
func engineGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("cryptopill.dev/jobs/libs/jobs.(*")) {
			out = append(out, string(g))
		}
	}
	return out
}

// TestStopLeavesNoGoroutines is deliberately not parallel: Go runs it before any parallel test
// resumes, so every engine goroutine in the process is this test's.
func TestStopLeavesNoGoroutines(t *testing.T) {
	require.Empty(t, engineGoroutines())
	b := setup(t)
	ctx := context.Background()
	counter := newRunCounter()
	e, err := jobs.New(b.pool, jobs.Config{Logger: testLogger(t), Workers: 8})
	require.NoError(t, err)
	require.NoError(t, e.Register(jobs.KindFetchTicker, counter))
	for range 3 { // start, work, stop, and again
		require.NoError(t, e.Start(ctx))
		ids := enqueue(t, b.pool, ticker("BTCUSDT"))
		waitStatus(t, b.pool, ids[0], jobs.StatusSucceeded)
		require.NotEmpty(t, engineGoroutines())
		stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		require.NoError(t, e.Stop(stopCtx))
		cancel()
		// A goroutine that has signalled its exit may still be returning: allow a moment, as
		// goleak does.
		if !assert.Eventually(t, func() bool { return len(engineGoroutines()) == 0 }, time.Second, time.Millisecond) {
			t.Fatalf("goroutines left after Stop:\n%s", engineGoroutines())
		}
	}
}
