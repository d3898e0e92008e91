package exchange_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/exchange"
	"cryptopill.dev/jobs/libs/simex"
	"cryptopill.dev/jobs/libs/testkit/clocktest"
	"cryptopill.dev/jobs/libs/testkit/logtest"
)

const (
	testKey    = "test-key"
	testSecret = "s3cr3t-NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqq"
)

type bundle struct {
	now    func() time.Time // the exchange's and the client's clock
	ex     *simex.Exchange
	url    string
	client *exchange.Client
	logs   *logtest.Buffer
}

type options struct {
	now     func() time.Time // the exchange's and the client's clock; default a running clocktest.Afternoon
	simex   func(*simex.Config)
	client  func(*exchange.Config)
	handler func(http.Handler) http.Handler // wraps the simulated exchange
}

func setup(t *testing.T, o options) *bundle {
	t.Helper()
	now := o.now
	if now == nil {
		now = clocktest.Running(clocktest.Afternoon)
	}
	scfg := simex.Config{Symbols: []string{"BTCUSDT", "ETHUSDT", "ETHBTC", "BNBUSDT"}, Seed: 3,
		APIKey: testKey, APISecret: testSecret, Now: now}
	if o.simex != nil {
		o.simex(&scfg)
	}
	ex, err := simex.New(scfg)
	require.NoError(t, err)
	var h http.Handler = ex
	if o.handler != nil {
		h = o.handler(ex)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		exchange.ForgetLimiter(srv.URL)
	})
	b := &bundle{now: now, ex: ex, url: srv.URL, logs: &logtest.Buffer{}}
	b.client = b.newClient(t, o.client)
	return b
}

func (b *bundle) newClient(t *testing.T, mod func(*exchange.Config)) *exchange.Client {
	t.Helper()
	cfg := exchange.Config{BaseURL: b.url, APIKey: testKey, APISecret: testSecret,
		MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Now: b.now,
		Logger: slog.New(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if mod != nil {
		mod(&cfg)
	}
	c, err := exchange.New(cfg)
	require.NoError(t, err)
	return c
}

func (b *bundle) requests(path string) int64 { return b.ex.Stats().Requests[path] }

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]exchange.Config{
		"path":          {BaseURL: "http://127.0.0.1:1/api"},
		"scheme":        {BaseURL: "ftp://127.0.0.1"},
		"user":          {BaseURL: "http://u:p@127.0.0.1"},
		"key no secret": {APIKey: "k"},
		"recvWindow":    {RecvWindow: 61 * time.Second},
		"weight":        {WeightLimit: -1},
	} {
		_, err := exchange.New(cfg)
		require.Error(t, err, name)
	}
	_, err := exchange.New(exchange.Config{})
	require.NoError(t, err)
}

// TestEndpoints calls every endpoint at instants across day, month and year boundaries, each on
// a stopped clock: every answer is the same whenever and however slowly the test runs.
func TestEndpoints(t *testing.T) {
	t.Parallel()
	for name, at := range clocktest.Instants() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testEndpoints(t, setup(t, options{now: clocktest.Fixed(at)}))
		})
	}
}

func testEndpoints(t *testing.T, b *bundle) {
	ctx := context.Background()
	c := b.client

	st, err := c.ServerTime(ctx)
	require.NoError(t, err)
	require.WithinDuration(t, b.now(), st, 2*time.Second)
	require.NoError(t, c.Init(ctx))
	require.Less(t, c.ClockOffset().Abs(), time.Second)

	info, err := c.ExchangeInfo(ctx)
	require.NoError(t, err)
	require.Len(t, info.Symbols, 4)
	require.Equal(t, exchange.RateLimit{Type: "REQUEST_WEIGHT", Interval: "MINUTE", IntervalNum: 1, Limit: 6000}, info.RateLimits[0])
	eth := info.Symbols[2]
	require.Equal(t, "ETHBTC", eth.Symbol)
	require.Equal(t, "TRADING", eth.Status)
	require.Equal(t, "ETH", eth.BaseAsset)
	require.Equal(t, "BTC", eth.QuoteAsset)
	require.True(t, eth.TickSize.Equal(decimal.New(1, -8)))
	require.True(t, eth.StepSize.Equal(decimal.New(1, -4)))
	one, err := c.ExchangeInfo(ctx, "BNBUSDT")
	require.NoError(t, err)
	require.Len(t, one.Symbols, 1)
	two, err := c.ExchangeInfo(ctx, "BNBUSDT", "ETHBTC")
	require.NoError(t, err)
	require.Len(t, two.Symbols, 2)

	ks, err := c.Klines(ctx, exchange.KlinesRequest{Symbol: "BTCUSDT", Interval: "1h", Limit: 24})
	require.NoError(t, err)
	require.Len(t, ks, 24)
	last := ks[23]
	require.False(t, last.CloseTime.Before(b.now()), "the last candle is still open")
	require.True(t, last.High.GreaterThanOrEqual(last.Close) && last.Low.LessThanOrEqual(last.Open))
	// The open candle may be a millisecond old (on the hour) and have no volume yet; the one
	// before it is a whole hour.
	require.False(t, last.Volume.IsNegative() || last.QuoteVolume.IsNegative())
	closed := ks[22]
	require.True(t, closed.Volume.IsPositive() && closed.QuoteVolume.IsPositive())
	require.Positive(t, closed.Trades)
	for i := 1; i < len(ks); i++ {
		require.Equal(t, ks[i-1].OpenTime.Add(time.Hour), ks[i].OpenTime)
	}
	ranged, err := c.Klines(ctx, exchange.KlinesRequest{Symbol: "BTCUSDT", Interval: "1h",
		StartTime: ks[10].OpenTime, EndTime: ks[12].OpenTime})
	require.NoError(t, err)
	require.Equal(t, ks[10:13], ranged)

	tk, err := c.Ticker24h(ctx, "ETHUSDT")
	require.NoError(t, err)
	require.Equal(t, "ETHUSDT", tk.Symbol)
	require.True(t, tk.LastPrice.Sub(tk.OpenPrice).Equal(tk.PriceChange))
	require.True(t, tk.BidPrice.LessThan(tk.AskPrice))
	require.Equal(t, 24*time.Hour, tk.CloseTime.Sub(tk.OpenTime))
	tks, err := c.Tickers24h(ctx, []string{"ETHUSDT", "BTCUSDT"})
	require.NoError(t, err)
	require.Len(t, tks, 2)
	require.Equal(t, "BTCUSDT", tks[1].Symbol)
	all, err := c.Tickers24h(ctx, nil)
	require.NoError(t, err)
	require.Len(t, all, 4)

	p, err := c.TickerPrice(ctx, "ETHBTC")
	require.NoError(t, err)
	require.Equal(t, "ETHBTC", p.Symbol)
	require.True(t, p.Price.IsPositive())
	ps, err := c.TickerPrices(ctx, []string{"ETHBTC", "BNBUSDT"})
	require.NoError(t, err)
	require.Len(t, ps, 2)
	ps, err = c.TickerPrices(ctx, nil)
	require.NoError(t, err)
	require.Len(t, ps, 4)

	ob, err := c.Depth(ctx, "BTCUSDT", 0)
	require.NoError(t, err)
	require.Len(t, ob.Bids, 100)
	require.Len(t, ob.Asks, 100)
	require.True(t, ob.Bids[0].Price.LessThan(ob.Asks[0].Price))
	require.Positive(t, ob.LastUpdateID)
	ob, err = c.Depth(ctx, "BTCUSDT", 1000)
	require.NoError(t, err)
	require.Len(t, ob.Asks, 1000)

	trades, err := c.MyTrades(ctx, exchange.MyTradesRequest{Symbol: "ETHBTC", FromID: new(int64(0)), Limit: 1000})
	require.NoError(t, err)
	require.NotEmpty(t, trades)
	next, err := c.MyTrades(ctx, exchange.MyTradesRequest{Symbol: "ETHBTC", FromID: new(trades[3].ID), Limit: 2})
	require.NoError(t, err)
	require.Equal(t, trades[3:5], next)
	tr := trades[0]
	require.Equal(t, "ETHBTC", tr.Symbol)
	require.True(t, tr.Price.Mul(tr.Qty).Round(8).Equal(tr.QuoteQty), "decimals are exact")
	require.Contains(t, []string{"ETH", "BTC"}, tr.CommissionAsset)
	require.JSONEq(t, string(tr.Raw), string(mustJSON(t, tr.Raw)))
	var raw map[string]any
	require.NoError(t, json.Unmarshal(tr.Raw, &raw))
	require.Equal(t, tr.Price.StringFixed(8), raw["price"])
	// Paging on from id 0 reaches the most recent trade (the account has traded since the
	// start of yesterday: more than one page from about the early afternoon).
	recent, err := c.MyTrades(ctx, exchange.MyTradesRequest{Symbol: "ETHBTC"})
	require.NoError(t, err)
	require.Len(t, recent, 500)
	page, pages := trades, 1
	for len(page) == 1000 {
		page, err = c.MyTrades(ctx, exchange.MyTradesRequest{Symbol: "ETHBTC", FromID: new(page[len(page)-1].ID + 1), Limit: 1000})
		require.NoError(t, err)
		pages++
	}
	require.NotEmpty(t, page)
	require.Equal(t, recent[len(recent)-1].ID, page[len(page)-1].ID)
	require.False(t, page[len(page)-1].Time.After(b.now()))
	window, err := c.MyTrades(ctx, exchange.MyTradesRequest{Symbol: "ETHBTC",
		StartTime: trades[0].Time, EndTime: trades[2].Time})
	require.NoError(t, err)
	require.Equal(t, trades[:3], window)

	// Weights as the exchange counted them.
	used := c.Limiter().Stats().Used
	require.GreaterOrEqual(t, used, 1+1+20*4+2*2+2+2+80+2+4+4+5+50+20*4)
}

func mustJSON(t *testing.T, raw json.RawMessage) []byte {
	t.Helper()
	var v any
	require.NoError(t, json.Unmarshal(raw, &v))
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

func TestInvalidArguments(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	ctx := context.Background()
	c := b.client
	_, err := c.Klines(ctx, exchange.KlinesRequest{Symbol: "BTCUSDT", Interval: "3h"})
	require.ErrorIs(t, err, exchange.ErrInvalidArgument)
	_, err = c.Klines(ctx, exchange.KlinesRequest{Symbol: "BTCUSDT", Interval: "1m", Limit: 1001})
	require.ErrorIs(t, err, exchange.ErrInvalidArgument)
	_, err = c.Depth(ctx, "", 5)
	require.ErrorIs(t, err, exchange.ErrInvalidArgument)
	_, err = c.Tickers24h(ctx, []string{"BTCUSDT", ""})
	require.ErrorIs(t, err, exchange.ErrInvalidArgument)
	require.Zero(t, b.requests("/api/v3/klines")+b.requests("/api/v3/depth")+b.requests("/api/v3/ticker/24hr"))
	require.True(t, exchange.ValidInterval("1M"))
	require.False(t, exchange.ValidInterval("3h"))
}

func TestWeightLimitReadLazilyOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, options{simex: func(c *simex.Config) { c.WeightLimit = 1234 }})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			_, err := b.client.Depth(context.Background(), "ETHUSDT", 5)
			require.NoError(t, err)
		})
	}
	wg.Wait()
	require.Equal(t, int64(1), b.requests("/api/v3/exchangeInfo"))
	st := b.client.Limiter().Stats()
	require.Equal(t, 1234, st.Limit)
	require.Equal(t, 1234-123, st.Budget)
	require.Equal(t, time.Minute, st.Window)
	require.Equal(t, 20+8*5, st.Used)

	// A fixed limit never reads exchangeInfo.
	fixed := setup(t, options{client: func(c *exchange.Config) { c.WeightLimit = 500 }})
	_, err := fixed.client.Depth(context.Background(), "ETHUSDT", 5)
	require.NoError(t, err)
	require.Zero(t, fixed.requests("/api/v3/exchangeInfo"))
	require.Equal(t, 500, fixed.client.Limiter().Stats().Limit)
}

func TestClientsShareTheHostLimiter(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	other := b.newClient(t, nil)
	require.Same(t, b.client.Limiter(), other.Limiter())
	elsewhere := setup(t, options{})
	require.NotSame(t, b.client.Limiter(), elsewhere.client.Limiter())

	// The exchange's count (here raised by requests the limiter never saw) corrects the local
	// one. (An hour's window and a clock in the middle of it: no boundary in the way. Within
	// the limiter's guard of a boundary a call may count in either window, and the exchange's
	// count is not taken.)
	hourly := setup(t, options{now: clocktest.Running(clocktest.Afternoon.Truncate(time.Hour).Add(30 * time.Minute)),
		simex: func(c *simex.Config) { c.WeightWindow = time.Hour }})
	b, other = hourly, hourly.newClient(t, nil)
	ctx := context.Background()
	require.NoError(t, b.client.Init(ctx))
	for range 10 {
		resp, err := http.Get(b.url + "/api/v3/depth?symbol=BTCUSDT&limit=1000")
		require.NoError(t, err)
		resp.Body.Close()
	}
	_, err := other.ServerTime(ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, b.client.Limiter().Stats().Used, 1+20+10*50+1)
}

// A burst far above the limit waits for the window to roll instead of running into 429 and 418.
func TestBurstWaitsInsteadOfBeingBanned(t *testing.T) {
	t.Parallel()
	b := setup(t, options{simex: func(c *simex.Config) {
		c.WeightLimit, c.WeightWindow = 200, time.Second
	}})
	ctx := context.Background()
	require.NoError(t, b.client.Init(ctx))
	st := b.client.Limiter().Stats()
	require.Equal(t, 200, st.Limit)
	require.Equal(t, time.Second, st.Window)

	const calls, workers = 300, 48 // 600 weight: about four windows
	jobs := make(chan int)
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for range jobs {
				if _, err := b.client.Klines(ctx, exchange.KlinesRequest{Symbol: "BTCUSDT", Interval: "1m", Limit: 5}); err != nil {
					failed.Add(1)
					t.Log(err)
				}
			}
		})
	}
	for i := range calls {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	require.Zero(t, failed.Load())
	stats := b.ex.Stats()
	require.Equal(t, int64(calls), stats.Requests["/api/v3/klines"])
	require.Zero(t, stats.Statuses[http.StatusTooManyRequests])
	require.Zero(t, stats.Statuses[http.StatusTeapot])
	ls := b.client.Limiter().Stats()
	require.Positive(t, ls.Waits)
	require.Zero(t, ls.RateLimited+ls.Banned)
	require.GreaterOrEqual(t, time.Since(start), 2*time.Second)
}

// After a 429 every call to the host waits for Retry-After; none reaches the exchange before.
func TestRetryAfterStopsAllCalls(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	ctx := context.Background()
	require.NoError(t, b.client.Init(ctx))
	b.ex.ForceRateLimit(2 * time.Second)
	_, err := b.client.TickerPrice(ctx, "BTCUSDT")
	limitedAt := time.Now()
	require.ErrorIs(t, err, exchange.ErrRateLimited)
	var apiErr *exchange.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusTooManyRequests, apiErr.Status)
	require.Equal(t, -1003, apiErr.Code)
	require.Equal(t, 2*time.Second, apiErr.RetryAfter)
	require.False(t, b.client.Limiter().Stats().BlockedUntil.IsZero())

	other := b.newClient(t, nil) // shares the host's limiter
	var wg sync.WaitGroup
	for i := range 6 {
		c := b.client
		if i%2 == 1 {
			c = other
		}
		wg.Go(func() {
			_, err := c.TickerPrice(ctx, "ETHUSDT")
			require.NoError(t, err)
			require.GreaterOrEqual(t, time.Since(limitedAt), 1900*time.Millisecond)
		})
	}
	wg.Wait()
	stats := b.ex.Stats()
	require.Equal(t, int64(1), stats.Statuses[http.StatusTooManyRequests])
	require.Zero(t, stats.Statuses[http.StatusTeapot])
	require.Equal(t, int64(7), stats.Requests["/api/v3/ticker/price"])
	require.Equal(t, uint64(1), b.client.Limiter().Stats().RateLimited)

	// A 418 likewise; a caller whose deadline comes before the ban ends fails at once.
	b.ex.ForceBan(time.Second)
	_, err = b.client.Depth(ctx, "ETHUSDT", 5)
	require.ErrorIs(t, err, exchange.ErrBanned)
	dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = b.client.Depth(dctx, "ETHUSDT", 5)
	require.ErrorIs(t, err, exchange.ErrBanned)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	_, err = b.client.Depth(ctx, "ETHUSDT", 5)
	require.NoError(t, err)
	require.Equal(t, int64(1), b.ex.Stats().Statuses[http.StatusTeapot])
}

func TestOnlyNetworkErrorsAnd5xxAreRetried(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("4xx once", func(t *testing.T) {
		t.Parallel()
		b := setup(t, options{})
		_, err := b.client.Klines(ctx, exchange.KlinesRequest{Symbol: "NOPEUSDT", Interval: "1m"})
		require.ErrorIs(t, err, exchange.ErrInvalidSymbol)
		var apiErr *exchange.APIError
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, 400, apiErr.Status)
		require.Equal(t, -1121, apiErr.Code)
		require.Equal(t, "Invalid symbol.", apiErr.Msg)
		require.Equal(t, int64(1), b.requests("/api/v3/klines"))
	})
	t.Run("5xx up to the cap", func(t *testing.T) {
		t.Parallel()
		b := setup(t, options{client: func(c *exchange.Config) { c.MaxRetries, c.WeightLimit = 3, 6000 }})
		require.NoError(t, b.ex.SetFaults(simex.Faults{ErrorRate: 1}))
		_, err := b.client.Depth(ctx, "BTCUSDT", 5)
		require.ErrorIs(t, err, exchange.ErrServer)
		var apiErr *exchange.APIError
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, http.StatusServiceUnavailable, apiErr.Status)
		require.Equal(t, -1001, apiErr.Code)
		require.Equal(t, int64(4), b.requests("/api/v3/depth"))
		require.Equal(t, 3, strings.Count(b.logs.String(), "retrying"))
	})
	t.Run("5xx never with negative MaxRetries", func(t *testing.T) {
		t.Parallel()
		b := setup(t, options{client: func(c *exchange.Config) { c.MaxRetries, c.WeightLimit = -1, 6000 }})
		require.NoError(t, b.ex.SetFaults(simex.Faults{ErrorRate: 1}))
		_, err := b.client.Depth(ctx, "BTCUSDT", 5)
		require.ErrorIs(t, err, exchange.ErrServer)
		require.Equal(t, int64(1), b.requests("/api/v3/depth"))
	})
	t.Run("5xx then success", func(t *testing.T) {
		t.Parallel()
		var n atomic.Int64
		b := setup(t, options{handler: func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/api/v3/depth" && n.Add(1) <= 2 {
					http.Error(w, "bad gateway", http.StatusBadGateway)
					return
				}
				h.ServeHTTP(w, r)
			})
		}})
		ob, err := b.client.Depth(ctx, "BTCUSDT", 5)
		require.NoError(t, err)
		require.Len(t, ob.Bids, 5)
		require.Equal(t, int64(3), n.Load())
	})
	t.Run("malformed body once", func(t *testing.T) {
		t.Parallel()
		b := setup(t, options{client: func(c *exchange.Config) { c.WeightLimit = 6000 }})
		require.NoError(t, b.ex.SetFaults(simex.Faults{MalformedRate: 1}))
		_, err := b.client.Depth(ctx, "BTCUSDT", 5)
		require.ErrorIs(t, err, exchange.ErrMalformedResponse)
		require.Equal(t, int64(1), b.requests("/api/v3/depth"))
	})
	t.Run("network errors up to the cap", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { ln.Close() })
		var accepts atomic.Int64
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				accepts.Add(1)
				conn.Close()
			}
		}()
		url := "http://" + ln.Addr().String()
		t.Cleanup(func() { exchange.ForgetLimiter(url) })
		c, err := exchange.New(exchange.Config{BaseURL: url, MaxRetries: 2, WeightLimit: 6000,
			MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
		require.NoError(t, err)
		_, err = c.ServerTime(ctx)
		require.Error(t, err)
		var apiErr *exchange.APIError
		require.False(t, errors.As(err, &apiErr))
		require.Equal(t, int64(3), accepts.Load())
	})
	t.Run("latency past the deadline", func(t *testing.T) {
		t.Parallel()
		b := setup(t, options{client: func(c *exchange.Config) { c.WeightLimit = 6000 }})
		require.NoError(t, b.ex.SetFaults(simex.Faults{Latency: time.Second}))
		dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		_, err := b.client.ServerTime(dctx)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Equal(t, int64(1), b.requests("/api/v3/time"))
	})
}

func TestClockSkewResyncsOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	skewed := func(c *simex.Config) {
		local := c.Now
		c.Now = func() time.Time { return local().Add(10 * time.Second) }
	}
	b := setup(t, options{simex: skewed, client: func(c *exchange.Config) { c.WeightLimit = 6000 }})
	trades, err := b.client.MyTrades(ctx, exchange.MyTradesRequest{Symbol: "BTCUSDT", Limit: 3})
	require.NoError(t, err)
	require.Len(t, trades, 3)
	require.Equal(t, int64(2), b.requests("/api/v3/myTrades"))
	require.Equal(t, int64(1), b.requests("/api/v3/time"))
	require.InDelta(t, 10*time.Second, b.client.ClockOffset(), float64(time.Second))
	require.Contains(t, b.logs.String(), "resynced")
	_, err = b.client.MyTrades(ctx, exchange.MyTradesRequest{Symbol: "BTCUSDT", Limit: 3})
	require.NoError(t, err)
	require.Equal(t, int64(3), b.requests("/api/v3/myTrades"))

	// An exchange that keeps answering -1021: one resync, then ErrClockSkew.
	var signed atomic.Int64
	always := setup(t, options{client: func(c *exchange.Config) { c.WeightLimit = 6000 },
		handler: func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/api/v3/myTrades" {
					signed.Add(1)
					w.WriteHeader(http.StatusBadRequest)
					fmt.Fprint(w, `{"code":-1021,"msg":"Timestamp for this request is outside of the recvWindow."}`)
					return
				}
				h.ServeHTTP(w, r)
			})
		}})
	_, err = always.client.MyTrades(ctx, exchange.MyTradesRequest{Symbol: "BTCUSDT"})
	require.ErrorIs(t, err, exchange.ErrClockSkew)
	require.Equal(t, int64(2), signed.Load())
}

func TestSignedCallErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, options{client: func(c *exchange.Config) { c.WeightLimit = 6000 }})
	req := exchange.MyTradesRequest{Symbol: "BTCUSDT"}

	wrongSecret := b.newClient(t, func(c *exchange.Config) { c.APISecret = "not-the-secret" })
	_, err := wrongSecret.MyTrades(ctx, req)
	require.ErrorIs(t, err, exchange.ErrInvalidSignature)
	var apiErr *exchange.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, 400, apiErr.Status)
	require.Equal(t, -1022, apiErr.Code)

	wrongKey := b.newClient(t, func(c *exchange.Config) { c.APIKey = "someone-else" })
	_, err = wrongKey.MyTrades(ctx, req)
	require.ErrorIs(t, err, exchange.ErrInvalidAPIKey)
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, 401, apiErr.Status)
	require.Equal(t, -2015, apiErr.Code)

	public := b.newClient(t, func(c *exchange.Config) { c.APIKey, c.APISecret = "", "" })
	_, err = public.MyTrades(ctx, req)
	require.ErrorIs(t, err, exchange.ErrMissingCredentials)
	require.Equal(t, int64(2), b.requests("/api/v3/myTrades"), "nothing sent without credentials")
}

// The secret never appears in an error, a log line or a formatted config, and logged or
// reported requests carry no signature.
func TestSecretNeverLeaks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var errs []string
	collect := func(err error) {
		require.Error(t, err)
		errs = append(errs, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
	}
	b := setup(t, options{client: func(c *exchange.Config) { c.WeightLimit = 6000 }})
	req := exchange.MyTradesRequest{Symbol: "BTCUSDT", FromID: new(int64(1))}

	wrong := b.newClient(t, func(c *exchange.Config) { c.APISecret = exchange.Secret(testSecret + "x") })
	_, err := wrong.MyTrades(ctx, req)
	collect(err)
	require.NoError(t, b.ex.SetFaults(simex.Faults{ErrorRate: 1}))
	_, err = b.client.MyTrades(ctx, req)
	collect(err)
	require.NoError(t, b.ex.SetFaults(simex.Faults{MalformedRate: 1}))
	_, err = b.client.MyTrades(ctx, req)
	collect(err)
	require.NoError(t, b.ex.SetFaults(simex.Faults{}))
	b.ex.ForceRateLimit(time.Second)
	_, err = b.client.MyTrades(ctx, req)
	collect(err)

	// Network errors: net/http puts the whole URL, signature included, in *url.Error.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	down := "http://" + ln.Addr().String()
	t.Cleanup(func() { exchange.ForgetLimiter(down) })
	logs := &logtest.Buffer{}
	cfg := exchange.Config{BaseURL: down, APIKey: testKey, APISecret: testSecret, WeightLimit: 6000,
		MaxRetries: 1, MinBackoff: time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	c, err := exchange.New(cfg)
	require.NoError(t, err)
	_, err = c.MyTrades(ctx, req)
	collect(err)
	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	slow := setup(t, options{client: func(c *exchange.Config) { c.WeightLimit = 6000 }})
	require.NoError(t, slow.ex.SetFaults(simex.Faults{Latency: time.Second}))
	_, err = slow.client.MyTrades(tctx, req)
	collect(err)

	// Formatting the config, the secret or the client.
	slog.New(slog.NewJSONHandler(logs, nil)).Info("config", "cfg", cfg, "secret", cfg.APISecret)
	slog.New(slog.NewTextHandler(logs, nil)).Info("config", "cfg", cfg)
	js, err := json.Marshal(cfg)
	require.NoError(t, err)
	formatted := []string{
		fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%s %q %x %d", cfg.APISecret,
			cfg.APISecret, cfg.APISecret, cfg.APISecret), fmt.Sprintf("%+v", c), string(js),
	}

	everything := strings.Join(append(append(errs, formatted...), logs.String(), b.logs.String(), slow.logs.String()), "\n")
	require.Contains(t, everything, "/api/v3/myTrades?fromId=1&recvWindow=5000&symbol=BTCUSDT&timestamp=")
	require.Contains(t, everything, "retrying")
	require.NotContains(t, everything, testSecret)
	require.NotContains(t, everything, "s3cr3t")
	require.NotContains(t, everything, "signature")
}

func TestWaitingIsCancellable(t *testing.T) {
	t.Parallel()
	b := setup(t, options{client: func(c *exchange.Config) { c.WeightLimit = 30 }}) // budget 27 a minute
	ctx, cancel := context.WithCancel(context.Background())
	_, err := b.client.ExchangeInfo(ctx) // 20
	require.NoError(t, err)
	_, err = b.client.Depth(ctx, "BTCUSDT", 5) // 25
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		_, err := b.client.Depth(ctx, "BTCUSDT", 5) // 30 > 27: waits for the next minute
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting call did not return after cancel")
	}
	require.Equal(t, int64(1), b.requests("/api/v3/depth"))
}

func Example() {
	// One clock for both sides (an application leaves Now unset: time.Now).
	now := clocktest.Running(clocktest.Afternoon)
	ex, _ := simex.New(simex.Config{Symbols: []string{"BTCUSDT", "ETHBTC"}, Seed: 1, Now: now})
	srv := httptest.NewServer(ex)
	defer srv.Close()

	c, err := exchange.New(exchange.Config{BaseURL: srv.URL, Now: now})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	if err := c.Init(ctx); err != nil {
		panic(err)
	}
	ob, err := c.Depth(ctx, "ETHBTC", 5)
	if err != nil {
		panic(err)
	}
	fmt.Println(len(ob.Bids), len(ob.Asks), ob.Bids[0].Price.LessThan(ob.Asks[0].Price))
	_, err = c.Klines(ctx, exchange.KlinesRequest{Symbol: "ETHBTC", Interval: "3h"})
	fmt.Println(errors.Is(err, exchange.ErrInvalidArgument))
	_, err = c.TickerPrice(ctx, "DOGEBTC")
	fmt.Println(errors.Is(err, exchange.ErrInvalidSymbol))
	fmt.Println(c.Limiter().Stats().Used) // time 1 + exchangeInfo 20 + depth 5 + ticker/price 2
	// Output:
	// 5 5 true
	// true
	// true
	// 28
}

// A signed call that waits in the limiter for the next weight window takes its timestamp after
// the wait: it is not older than recvWindow when it is sent (no -1021 and resync).
func TestSignedCallIsTimestampedAfterTheLimiterWait(t *testing.T) {
	t.Parallel()
	b := setup(t, options{now: clocktest.Running(clocktest.Afternoon.Truncate(time.Minute)),
		simex:  func(c *simex.Config) { c.WeightLimit, c.WeightWindow = 200, 3*time.Second },
		client: func(c *exchange.Config) { c.RecvWindow = 500 * time.Millisecond }})
	ctx := context.Background()
	require.NoError(t, b.client.Init(ctx))
	// Spend the window's budget (the limit less the limiter's margin).
	for b.client.Limiter().Stats().Used+exchange.KlinesWeight <= b.client.Limiter().Stats().Budget {
		_, err := b.client.Klines(ctx, exchange.KlinesRequest{Symbol: "BTCUSDT", Interval: "1m", Limit: 5})
		require.NoError(t, err)
	}
	waits := b.client.Limiter().Stats().Waits
	_, err := b.client.MyTrades(ctx, exchange.MyTradesRequest{Symbol: "ETHBTC"})
	require.NoError(t, err)
	require.Greater(t, b.client.Limiter().Stats().Waits, waits, "the signed call waited for the window")
	require.Zero(t, b.ex.Stats().Statuses[http.StatusBadRequest], "no -1021")
	require.NotContains(t, b.logs.String(), "resynced")
}
