package exchange

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/testkit/clocktest"
)

// Binance's documented signing example (DOMAIN.md §6).
func TestSignatureExample(t *testing.T) {
	t.Parallel()
	sign := signer("NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j")
	require.Equal(t, "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71",
		sign("symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"))
}

func TestWeights(t *testing.T) {
	t.Parallel()
	for n, w := range map[int]int{0: 80, 1: 2, 20: 2, 21: 40, 100: 40, 101: 80, 500: 80} {
		require.Equal(t, w, Ticker24hWeight(n), "ticker/24hr with %d symbols", n)
	}
	for limit, w := range map[int]int{0: 5, 5: 5, 100: 5, 101: 25, 500: 25, 501: 50, 1000: 50, 1001: 250, 5000: 250} {
		require.Equal(t, w, DepthWeight(limit), "depth limit %d", limit)
	}
	require.Equal(t, 2, tickerPriceWeight(true))
	require.Equal(t, 4, tickerPriceWeight(false))
	require.Equal(t, "X-Mbx-Used-Weight-1m", usedWeightHeader(time.Minute))
	require.Equal(t, "X-Mbx-Used-Weight-10s", usedWeightHeader(10*time.Second))
	require.Equal(t, "X-Mbx-Used-Weight-1d", usedWeightHeader(24*time.Hour))
	w, ok := rateLimitWindow("MINUTE", 1)
	require.True(t, ok)
	require.Equal(t, time.Minute, w)
	_, ok = rateLimitWindow("FORTNIGHT", 1)
	require.False(t, ok)
}

func TestLimiterWaitsForTheNextWindow(t *testing.T) {
	t.Parallel()
	// The clock starts just after a window boundary (past the 10 ms guard) so the first 90 fit
	// in one window.
	now := clocktest.Running(clocktest.Afternoon.Truncate(time.Second).Add(15 * time.Millisecond))
	l := newLimiter("test", now)
	l.configure(100, time.Second) // budget 90
	ctx := context.Background()
	k := l.windowOf(now())
	for range 9 {
		r, err := l.acquire(ctx, 10)
		require.NoError(t, err)
		l.finish(r, http.StatusOK, http.Header{})
	}
	require.Equal(t, 90, l.Stats().Used)
	r, err := l.acquire(ctx, 10)
	require.NoError(t, err)
	require.Equal(t, k+1, l.windowOf(r.sent), "the tenth call waited for the next window")
	require.Equal(t, uint64(1), l.Stats().Waits)
	l.finish(r, http.StatusOK, http.Header{})

	// The exchange's count raises the local one.
	r, err = l.acquire(ctx, 1)
	require.NoError(t, err)
	l.finish(r, http.StatusOK, http.Header{"X-Mbx-Used-Weight-1s": {"80"}})
	if l.windowOf(now().Add(l.guard)) == l.windowOf(r.sent.Add(-l.guard)) { // not slowed past the window's end
		require.Equal(t, 80, l.Stats().Used)
	}

	// A wait past the deadline fails at once.
	l = newLimiter("test", now)
	l.configure(100, time.Minute)
	l.mu.Lock()
	l.used[l.windowOf(now())] = 90
	l.used[l.windowOf(now())+1] = 90
	l.mu.Unlock()
	dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = l.acquire(dctx, 10)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 150*time.Millisecond)
}

func TestLimiterCountsCallsInFlightAcrossWindows(t *testing.T) {
	t.Parallel()
	// The clock starts 100 ms before a window boundary.
	now := clocktest.Running(clocktest.Afternoon.Truncate(time.Second).Add(900 * time.Millisecond))
	l := newLimiter("test", now)
	l.configure(100, time.Second)
	ctx := context.Background()
	r, err := l.acquire(ctx, 50)
	require.NoError(t, err)
	// Still in flight when the next window starts: it may land there.
	time.Sleep(l.windowStart(l.windowOf(now()) + 1).Add(l.guard).Sub(now()))
	require.GreaterOrEqual(t, l.Stats().Used, 50)
	require.Equal(t, 50, l.Stats().InFlight)
	l.finish(r, http.StatusOK, http.Header{})
	require.Equal(t, 0, l.Stats().InFlight)
	require.GreaterOrEqual(t, l.Stats().Used, 50)
}

func TestIntervalDuration(t *testing.T) {
	for s, want := range map[string]time.Duration{"1s": time.Second, "30m": 30 * time.Minute, "4h": 4 * time.Hour,
		"1d": 24 * time.Hour, "1w": 7 * 24 * time.Hour, "1M": 30 * 24 * time.Hour} {
		got, ok := IntervalDuration(s)
		if !ok || got != want {
			t.Errorf("IntervalDuration(%q) = %s, %v; want %s", s, got, ok, want)
		}
	}
	if _, ok := IntervalDuration("3h"); ok {
		t.Error("3h is not a Binance interval")
	}
}

func TestLimiterKeepsTheTicksReserveFromJobs(t *testing.T) {
	t.Parallel()
	// A minute's window starting just now: nothing here crosses it.
	now := clocktest.Running(clocktest.Afternoon.Truncate(time.Minute).Add(time.Second))
	l := newLimiter("test", now)
	l.configure(100, time.Minute) // budget 90
	require.NoError(t, l.SetTickReserve(70))
	require.Error(t, l.SetTickReserve(101))
	ctx := context.Background()
	jobs, backfill, ticks := WithClass(ctx, ClassJobs), WithClass(ctx, ClassBackfill), WithClass(ctx, ClassTicks)
	require.Equal(t, ClassJobs, ClassOf(ctx), "unclassified calls are jobs")

	// Jobs and backfill share 90 − 63 = 27.
	for _, c := range []context.Context{jobs, backfill} {
		r, err := l.acquire(c, 10)
		require.NoError(t, err)
		l.finish(r, http.StatusOK, http.Header{})
	}
	for _, c := range []context.Context{ctx, jobs, backfill} {
		// A wait for the next window is past this deadline, so it fails at once.
		dctx, cancel := context.WithTimeout(c, 5*time.Second)
		_, err := l.acquire(dctx, 10)
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded, "class %s past its share", ClassOf(c))
	}
	require.Equal(t, 20, l.Stats().JobsUsed)
	require.Equal(t, 27, l.Stats().JobsBudget)
	// The ticks still get the whole rest of the budget.
	for range 7 {
		r, err := l.acquire(ticks, 10)
		require.NoError(t, err)
		l.finish(r, http.StatusOK, http.Header{})
	}
	require.Equal(t, 90, l.Stats().Used)

	// Ticks use the jobs' share while it is idle.
	l = newLimiter("test", now)
	l.configure(100, time.Minute)
	require.NoError(t, l.SetTickReserve(70))
	for range 9 {
		r, err := l.acquire(ticks, 10)
		require.NoError(t, err)
		l.finish(r, http.StatusOK, http.Header{})
	}
	require.Equal(t, 90, l.Stats().Used)

	// Without a reserve, jobs may spend the whole budget (the API as before).
	l = newLimiter("test", now)
	l.configure(100, time.Minute)
	for range 9 {
		r, err := l.acquire(jobs, 10)
		require.NoError(t, err)
		l.finish(r, http.StatusOK, http.Header{})
	}
	require.Equal(t, 90, l.Stats().Used)
}
