package exchange_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/exchange"
	"cryptopill.dev/jobs/libs/simex"
)

// A 403 is the firewall: not retried, and every call to the host pauses, whatever its client.
func TestFirewallPausesTheHost(t *testing.T) {
	t.Parallel()
	b := setup(t, options{client: func(c *exchange.Config) { c.MaxRetries, c.WeightLimit = 3, 6000 }})
	ctx := context.Background()
	b.ex.SetFirewall(true)
	_, err := b.client.Depth(ctx, "BTCUSDT", 5)
	require.ErrorIs(t, err, exchange.ErrFirewall)
	require.NotErrorIs(t, err, exchange.ErrServer)
	var apiErr *exchange.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusForbidden, apiErr.Status)
	require.Zero(t, apiErr.Code)
	requireShortText(t, err.Error())
	require.Contains(t, err.Error(), "HTTP 403: HTML page: ERROR: The request could not be satisfied")
	require.Equal(t, int64(1), b.requests("/api/v3/depth"), "not retried")

	st := b.client.Limiter().Stats()
	require.Equal(t, uint64(1), st.Firewalled)
	require.WithinDuration(t, b.now().Add(5*time.Minute), st.BlockedUntil, 5*time.Second)

	// The block lifts at the exchange, but the host stays paused: a call with a deadline before
	// the pause ends fails at once, without sending, on this client and on another one.
	b.ex.SetFirewall(false)
	other := b.newClient(t, nil)
	for _, c := range []*exchange.Client{b.client, other} {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		start := time.Now()
		_, err = c.Depth(dctx, "BTCUSDT", 5)
		cancel()
		require.ErrorIs(t, err, exchange.ErrFirewall)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Less(t, time.Since(start), 5*time.Second)
	}
	require.Equal(t, int64(1), b.requests("/api/v3/depth"))
	require.Contains(t, b.logs.String(), "exchange firewall blocked the request")
	require.NotContains(t, b.logs.String(), "<")
}

// requireShortText checks that an error carries no markup and no whole page.
func requireShortText(t *testing.T, msg string) {
	t.Helper()
	require.NotContains(t, msg, "<")
	require.NotContains(t, msg, ">")
	require.NotContains(t, msg, "\n")
	require.Less(t, len(msg), 250, msg)
}

func TestGatewayPagesAreShortServerErrors(t *testing.T) {
	t.Parallel()
	b := setup(t, options{client: func(c *exchange.Config) { c.MaxRetries, c.WeightLimit = 2, 6000 }})
	require.NoError(t, b.ex.SetFaults(simex.Faults{GatewayErrorRate: 1}))
	_, err := b.client.Depth(context.Background(), "BTCUSDT", 5)
	// Three attempts: 502, 504, then 500 -1000; the last one is returned.
	require.ErrorIs(t, err, exchange.ErrServer)
	var apiErr *exchange.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusInternalServerError, apiErr.Status)
	require.Equal(t, -1000, apiErr.Code)
	require.Equal(t, int64(3), b.requests("/api/v3/depth"))
	logs := b.logs.String()
	require.Contains(t, logs, "HTTP 502: HTML page: 502 Bad Gateway")
	require.Contains(t, logs, "HTTP 504: HTML page: 504 Gateway Time-out")
	require.NotContains(t, logs, "<html")
	require.NotContains(t, logs, "center")
	require.Equal(t, uint64(3), b.client.Limiter().Stats().ServerErrors)

	// The collector counts each class under cp_exchange_rejected_total's status label.
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(exchange.NewCollector(b.client.Limiter())))
	n, err := testutil.GatherAndCount(reg, "cp_exchange_rejected_total")
	require.NoError(t, err)
	require.Equal(t, 4, n)
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP cp_exchange_rejected_total Answers 429 (rate limited), 418 (banned), 403 (firewall) and 5xx (server error, each attempt) received.
# TYPE cp_exchange_rejected_total counter
cp_exchange_rejected_total{host="`+strings.TrimPrefix(b.url, "http://")+`",status="403"} 0
cp_exchange_rejected_total{host="`+strings.TrimPrefix(b.url, "http://")+`",status="418"} 0
cp_exchange_rejected_total{host="`+strings.TrimPrefix(b.url, "http://")+`",status="429"} 0
cp_exchange_rejected_total{host="`+strings.TrimPrefix(b.url, "http://")+`",status="5xx"} 3
`), "cp_exchange_rejected_total"))
}

// An overloaded exchange (-1008, with no fault switched on) is a server error, retried with
// backoff until it answers.
func TestOverloadedIsRetried(t *testing.T) {
	t.Parallel()
	b := setup(t, options{
		simex: func(c *simex.Config) { c.MaxInFlight = 1 },
		client: func(c *exchange.Config) {
			c.MaxRetries, c.WeightLimit = 10, 6000
			c.MinBackoff, c.MaxBackoff = 50*time.Millisecond, 200*time.Millisecond
		},
	})
	require.NoError(t, b.ex.SetFaults(simex.Faults{Latency: 300 * time.Millisecond}))
	ctx := context.Background()
	var wg sync.WaitGroup
	wg.Go(func() {
		_, err := b.client.ServerTime(ctx)
		require.NoError(t, err)
	})
	require.Eventually(t, func() bool { return b.requests("/api/v3/time") == 1 }, 10*time.Second, time.Millisecond)
	_, err := b.client.Depth(ctx, "BTCUSDT", 5)
	require.NoError(t, err)
	wg.Wait()
	require.Positive(t, b.ex.Stats().Statuses[http.StatusServiceUnavailable])
	require.Contains(t, b.logs.String(), "code -1008")
	require.Positive(t, b.client.Limiter().Stats().ServerErrors)

	// With no retries left the caller sees it as ErrServer.
	c := b.newClient(t, func(c *exchange.Config) { c.MaxRetries, c.WeightLimit = -1, 6000 })
	wg.Go(func() { _, _ = b.client.ServerTime(ctx) })
	require.Eventually(t, func() bool { return b.requests("/api/v3/time") == 2 }, 10*time.Second, time.Millisecond)
	_, err = c.Depth(ctx, "BTCUSDT", 5)
	require.ErrorIs(t, err, exchange.ErrServer)
	require.ErrorContains(t, err, "Server is currently overloaded")
	wg.Wait()
}
