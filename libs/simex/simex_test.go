package simex_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/simex"
	"cryptopill.dev/jobs/libs/testkit/clocktest"
)

const (
	testKey    = "test-key"
	testSecret = "test-secret"
)

// clock is a settable exchange clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type bundle struct {
	ex    *simex.Exchange
	srv   *httptest.Server
	clock *clock
}

var t0 = time.Date(2025, 6, 4, 12, 0, 30, 123e6, time.UTC) // a Wednesday

func setup(t *testing.T, mod func(*simex.Config)) *bundle {
	t.Helper()
	c := &clock{t: t0}
	cfg := simex.Config{
		Symbols: []string{"BTCUSDT", "ETHUSDT", "ETHBTC", "SOLETH", "XRPBNB", "DOGEUSDC", "PEPEUSDT"},
		Seed:    7, APIKey: testKey, APISecret: testSecret, Now: c.Now,
		TradesSince: t0.Add(-24 * time.Hour),
	}
	if mod != nil {
		mod(&cfg)
	}
	ex, err := simex.New(cfg)
	require.NoError(t, err)
	srv := httptest.NewServer(ex)
	t.Cleanup(srv.Close)
	return &bundle{ex: ex, srv: srv, clock: c}
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (b *bundle) get(t *testing.T, path string, q url.Values) answer {
	t.Helper()
	return b.do(t, path, q.Encode(), "")
}

func (b *bundle) do(t *testing.T, path, rawQuery, apiKey string) answer {
	t.Helper()
	return b.send(t, http.MethodGet, path+"?"+rawQuery, apiKey)
}

// send sends one request to target (path and query), with apiKey in X-MBX-APIKEY unless empty.
func (b *bundle) send(t *testing.T, method, target, apiKey string) answer {
	t.Helper()
	req, err := http.NewRequest(method, b.srv.URL+target, nil)
	require.NoError(t, err)
	if apiKey != "" {
		req.Header.Set("X-MBX-APIKEY", apiKey)
	}
	resp, err := b.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return answer{resp.StatusCode, resp.Header, body}
}

// signed sends a signed myTrades request with the given secret and timestamp.
func (b *bundle) signed(t *testing.T, q url.Values, key, secret string, ts time.Time) answer {
	t.Helper()
	q.Set("recvWindow", "5000")
	q.Set("timestamp", strconv.FormatInt(ts.UnixMilli(), 10))
	payload := q.Encode()
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(payload))
	return b.do(t, "/api/v3/myTrades", payload+"&signature="+hex.EncodeToString(m.Sum(nil)), key)
}

func requireError(t *testing.T, a answer, status, code int) {
	t.Helper()
	require.Equal(t, status, a.status, string(a.body))
	var e struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
	}
	require.NoError(t, json.Unmarshal(a.body, &e), string(a.body))
	require.Equal(t, code, e.Code, e.Msg)
	require.NotEmpty(t, e.Msg)
}

func dec(t *testing.T, v any) decimal.Decimal {
	t.Helper()
	s, ok := v.(string)
	require.True(t, ok, "%v is not a string", v)
	d, err := decimal.NewFromString(s)
	require.NoError(t, err)
	return d
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]simex.Config{
		"no quote":      {Symbols: []string{"BTCXYZ"}},
		"lower case":    {Symbols: []string{"btcusdt"}},
		"only quote":    {Symbols: []string{"USDT"}},
		"twice":         {Symbols: []string{"BTCUSDT", "BTCUSDT"}},
		"key no secret": {APIKey: "k"},
		"bad window":    {WeightWindow: 1500 * time.Millisecond},
		"bad faults":    {Faults: simex.Faults{ErrorRate: 2}},
	} {
		_, err := simex.New(cfg)
		require.Error(t, err, name)
	}
}

func TestServerTimeAndUnknownPath(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	a := b.get(t, "/api/v3/time", nil)
	require.Equal(t, http.StatusOK, a.status)
	require.JSONEq(t, `{"serverTime":`+strconv.FormatInt(t0.UnixMilli(), 10)+`}`, string(a.body))
	require.Equal(t, "application/json;charset=UTF-8", a.header.Get("Content-Type"))
	requireError(t, b.get(t, "/api/v3/nope", nil), http.StatusNotFound, -1000)
}

func TestExchangeInfo(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	var info struct {
		RateLimits []struct {
			RateLimitType, Interval string
			IntervalNum, Limit      int
		}
		Symbols []struct {
			Symbol, Status, BaseAsset, QuoteAsset string
			Filters                               []map[string]any
		}
	}
	a := b.get(t, "/api/v3/exchangeInfo", nil)
	require.Equal(t, http.StatusOK, a.status)
	require.NoError(t, json.Unmarshal(a.body, &info))
	require.Equal(t, "REQUEST_WEIGHT", info.RateLimits[0].RateLimitType)
	require.Equal(t, "MINUTE", info.RateLimits[0].Interval)
	require.Equal(t, 1, info.RateLimits[0].IntervalNum)
	require.Equal(t, 6000, info.RateLimits[0].Limit)
	split := map[string][2]string{}
	for _, s := range info.Symbols {
		require.Equal(t, "TRADING", s.Status)
		split[s.Symbol] = [2]string{s.BaseAsset, s.QuoteAsset}
		require.Len(t, s.Filters, 2)
	}
	require.Equal(t, map[string][2]string{
		"BTCUSDT": {"BTC", "USDT"}, "ETHUSDT": {"ETH", "USDT"}, "ETHBTC": {"ETH", "BTC"},
		"SOLETH": {"SOL", "ETH"}, "XRPBNB": {"XRP", "BNB"}, "DOGEUSDC": {"DOGE", "USDC"}, "PEPEUSDT": {"PEPE", "USDT"},
	}, split)

	a = b.get(t, "/api/v3/exchangeInfo", url.Values{"symbols": {`["ETHBTC","SOLETH"]`}})
	require.NoError(t, json.Unmarshal(a.body, &info))
	require.Len(t, info.Symbols, 2)
	requireError(t, b.get(t, "/api/v3/exchangeInfo", url.Values{"symbol": {"LTCUSDT"}}), 400, -1121)
	requireError(t, b.get(t, "/api/v3/exchangeInfo", url.Values{"symbols": {`[BTCUSDT]`}}), 400, -1100)
}

func klines(t *testing.T, b *bundle, q url.Values) [][]any {
	t.Helper()
	a := b.get(t, "/api/v3/klines", q)
	require.Equal(t, http.StatusOK, a.status, string(a.body))
	var ks [][]any
	require.NoError(t, json.Unmarshal(a.body, &ks))
	return ks
}

func TestKlines(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	now := t0.UnixMilli()
	for _, iv := range []string{"1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M"} {
		ks := klines(t, b, url.Values{"symbol": {"ETHBTC"}, "interval": {iv}, "limit": {"50"}})
		require.Len(t, ks, 50, iv)
		for i, k := range ks {
			require.Len(t, k, 12)
			open, closeT := int64(k[0].(float64)), int64(k[6].(float64))
			o, h, l, c := dec(t, k[1]), dec(t, k[2]), dec(t, k[3]), dec(t, k[4])
			require.True(t, h.GreaterThanOrEqual(decimal.Max(o, c)) && l.LessThanOrEqual(decimal.Min(o, c)), "%s %v", iv, k)
			require.True(t, l.IsPositive())
			dec(t, k[5])
			dec(t, k[7])
			require.Equal(t, "0", k[11])
			if i > 0 {
				require.Equal(t, int64(ks[i-1][6].(float64))+1, open, "%s: candles are contiguous", iv)
			}
			if i == len(ks)-1 {
				require.True(t, open <= now && closeT > now, "%s: the last candle is open", iv)
			} else {
				require.Less(t, closeT, now)
			}
		}
		switch iv {
		case "1w":
			require.Equal(t, time.Monday, time.UnixMilli(int64(ks[0][0].(float64))).UTC().Weekday())
		case "1M":
			require.Equal(t, 1, time.UnixMilli(int64(ks[0][0].(float64))).UTC().Day())
		}
	}

	// Default limit 500; startTime/endTime bound the open times.
	require.Len(t, klines(t, b, url.Values{"symbol": {"BTCUSDT"}, "interval": {"1m"}}), 500)
	start := t0.Add(-time.Hour)
	ks := klines(t, b, url.Values{"symbol": {"BTCUSDT"}, "interval": {"1m"},
		"startTime": {strconv.FormatInt(start.UnixMilli(), 10)}, "limit": {"1000"}})
	require.Len(t, ks, 60) // opens 11:01 .. 12:00 (the open one)
	require.Equal(t, start.Truncate(time.Minute).Add(time.Minute).UnixMilli(), int64(ks[0][0].(float64)))
	end := t0.Add(-10 * time.Minute)
	ks = klines(t, b, url.Values{"symbol": {"BTCUSDT"}, "interval": {"1h"},
		"endTime": {strconv.FormatInt(end.UnixMilli(), 10)}, "limit": {"3"}})
	require.Len(t, ks, 3)
	require.Equal(t, time.Date(2025, 6, 4, 11, 0, 0, 0, time.UTC).UnixMilli(), int64(ks[2][0].(float64)))

	// Consistent across calls: the 1m candles' closes are the ticker's path.
	a1 := b.get(t, "/api/v3/klines", url.Values{"symbol": {"BTCUSDT"}, "interval": {"5m"}, "limit": {"10"}})
	a2 := b.get(t, "/api/v3/klines", url.Values{"symbol": {"BTCUSDT"}, "interval": {"5m"}, "limit": {"10"}})
	require.Equal(t, a1.body, a2.body)

	requireError(t, b.get(t, "/api/v3/klines", url.Values{"symbol": {"BTCUSDT"}, "interval": {"3h"}}), 400, -1120)
	requireError(t, b.get(t, "/api/v3/klines", url.Values{"symbol": {"BTCUSDT"}}), 400, -1102)
	requireError(t, b.get(t, "/api/v3/klines", url.Values{"interval": {"1m"}}), 400, -1102)
	requireError(t, b.get(t, "/api/v3/klines", url.Values{"symbol": {"NOPE"}, "interval": {"1m"}}), 400, -1121)
	requireError(t, b.get(t, "/api/v3/klines", url.Values{"symbol": {"BTCUSDT"}, "interval": {"1m"}, "limit": {"1001"}}), 400, -1130)
	requireError(t, b.get(t, "/api/v3/klines", url.Values{"symbol": {"BTCUSDT"}, "interval": {"1m"}, "startTime": {"-5"}}), 400, -1100)
}

func TestDepth(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	type book struct {
		LastUpdateID int64      `json:"lastUpdateId"`
		Bids         [][]string `json:"bids"`
	}
	read := func(q url.Values) (book, [][]string) {
		a := b.get(t, "/api/v3/depth", q)
		require.Equal(t, http.StatusOK, a.status, string(a.body))
		var bk book
		var raw struct {
			Asks [][]string `json:"asks"`
		}
		require.NoError(t, json.Unmarshal(a.body, &bk))
		require.NoError(t, json.Unmarshal(a.body, &raw))
		return bk, raw.Asks
	}
	for _, sym := range []string{"BTCUSDT", "ETHBTC", "PEPEUSDT", "XRPBNB"} {
		bk, asks := read(url.Values{"symbol": {sym}})
		require.Len(t, bk.Bids, 100, sym)
		require.Len(t, asks, 100, sym)
		best := func(l [][]string, i int) decimal.Decimal { return decimal.RequireFromString(l[i][0]) }
		require.True(t, best(bk.Bids, 0).LessThan(best(asks, 0)), sym)
		for i := 1; i < 100; i++ {
			require.True(t, best(bk.Bids, i).LessThan(best(bk.Bids, i-1)), "%s bids descend", sym)
			require.True(t, best(asks, i).GreaterThan(best(asks, i-1)), "%s asks ascend", sym)
			require.True(t, decimal.RequireFromString(asks[i][1]).IsPositive())
		}
	}
	bk, asks := read(url.Values{"symbol": {"BTCUSDT"}, "limit": {"5000"}})
	require.Len(t, bk.Bids, 5000)
	require.Len(t, asks, 5000)
	b.clock.Add(time.Second)
	bk2, _ := read(url.Values{"symbol": {"BTCUSDT"}, "limit": {"5"}})
	require.Greater(t, bk2.LastUpdateID, bk.LastUpdateID)
	requireError(t, b.get(t, "/api/v3/depth", url.Values{"symbol": {"BTCUSDT"}, "limit": {"x"}}), 400, -1100)
	requireError(t, b.get(t, "/api/v3/depth", url.Values{"symbol": {"BTCUSDT"}, "limit": {"5001"}}), 400, -1130)
}

func TestTickers(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	a := b.get(t, "/api/v3/ticker/24hr", url.Values{"symbol": {"ETHUSDT"}})
	require.Equal(t, http.StatusOK, a.status)
	require.Equal(t, "2", a.header.Get("X-MBX-USED-WEIGHT-1M"))
	var one map[string]any
	require.NoError(t, json.Unmarshal(a.body, &one))
	require.Equal(t, "ETHUSDT", one["symbol"])
	require.Equal(t, float64(t0.Add(-24*time.Hour).UnixMilli()), one["openTime"])
	require.Equal(t, float64(t0.UnixMilli()), one["closeTime"])
	last, hi, lo := dec(t, one["lastPrice"]), dec(t, one["highPrice"]), dec(t, one["lowPrice"])
	require.True(t, hi.GreaterThanOrEqual(last) && lo.LessThanOrEqual(last))
	require.True(t, dec(t, one["bidPrice"]).LessThan(dec(t, one["askPrice"])))
	require.True(t, last.Sub(dec(t, one["openPrice"])).Equal(dec(t, one["priceChange"])))
	require.Equal(t, one["count"], one["lastId"].(float64)-one["firstId"].(float64)+1)

	a = b.get(t, "/api/v3/ticker/24hr", url.Values{"symbols": {`["ETHUSDT","BTCUSDT"]`}})
	var many []map[string]any
	require.NoError(t, json.Unmarshal(a.body, &many))
	require.Len(t, many, 2)
	require.Equal(t, "BTCUSDT", many[1]["symbol"])
	require.Equal(t, one, many[0], "batched and single agree")
	a = b.get(t, "/api/v3/ticker/24hr", nil)
	require.NoError(t, json.Unmarshal(a.body, &many))
	require.Len(t, many, 7)
	require.Equal(t, "84", a.header.Get("X-MBX-USED-WEIGHT-1M"), "2 + 2 + 80")

	a = b.get(t, "/api/v3/ticker/price", url.Values{"symbol": {"ETHUSDT"}})
	var price map[string]string
	require.NoError(t, json.Unmarshal(a.body, &price))
	require.True(t, dec(t, price["price"]).Equal(last))
	a = b.get(t, "/api/v3/ticker/price", url.Values{"symbols": {`["ETHUSDT","ETHBTC"]`}})
	var prices []map[string]string
	require.NoError(t, json.Unmarshal(a.body, &prices))
	require.Len(t, prices, 2)
	require.Equal(t, "90", a.header.Get("X-MBX-USED-WEIGHT-1M"), "+2 +4")

	// Cross pairs are consistent: ETHBTC ≈ ETHUSDT / BTCUSDT.
	a = b.get(t, "/api/v3/ticker/price", nil)
	require.NoError(t, json.Unmarshal(a.body, &prices))
	p := map[string]float64{}
	for _, x := range prices {
		p[x["symbol"]] = dec(t, x["price"]).InexactFloat64()
	}
	require.InEpsilon(t, p["ETHUSDT"]/p["BTCUSDT"], p["ETHBTC"], 1e-5)

	requireError(t, b.get(t, "/api/v3/ticker/price", url.Values{"symbols": {`["ETHUSDT","NOPE"]`}}), 400, -1121)
	requireError(t, b.get(t, "/api/v3/ticker/24hr", url.Values{"symbol": {"ETHUSDT"}, "symbols": {`["ETHUSDT"]`}}), 400, -1101)
}

func TestDeterministicBySeed(t *testing.T) {
	t.Parallel()
	b1, b2 := setup(t, nil), setup(t, nil)
	other := setup(t, func(c *simex.Config) { c.Seed = 8 })
	for _, q := range []struct {
		path string
		q    url.Values
	}{
		{"/api/v3/klines", url.Values{"symbol": {"SOLETH"}, "interval": {"1h"}, "limit": {"100"}}},
		{"/api/v3/depth", url.Values{"symbol": {"BTCUSDT"}}},
		{"/api/v3/ticker/24hr", nil},
	} {
		a1, a2, a3 := b1.get(t, q.path, q.q), b2.get(t, q.path, q.q), other.get(t, q.path, q.q)
		require.Equal(t, string(a1.body), string(a2.body), q.path)
		require.NotEqual(t, string(a1.body), string(a3.body), q.path)
	}
	tq := url.Values{"symbol": {"ETHBTC"}, "fromId": {"0"}}
	require.Equal(t, string(b1.signed(t, tq, testKey, testSecret, t0).body),
		string(b2.signed(t, url.Values{"symbol": {"ETHBTC"}, "fromId": {"0"}}, testKey, testSecret, t0).body))
}

type trade struct {
	Symbol          string `json:"symbol"`
	ID              int64  `json:"id"`
	OrderID         int64  `json:"orderId"`
	Price           string `json:"price"`
	Qty             string `json:"qty"`
	QuoteQty        string `json:"quoteQty"`
	Commission      string `json:"commission"`
	CommissionAsset string `json:"commissionAsset"`
	Time            int64  `json:"time"`
	IsBuyer         bool   `json:"isBuyer"`
}

func TestMyTrades(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *simex.Config) { c.TradeEvery = time.Minute })
	read := func(q url.Values) []trade {
		t.Helper()
		a := b.signed(t, q, testKey, testSecret, b.clock.Now())
		require.Equal(t, http.StatusOK, a.status, string(a.body))
		var ts []trade
		require.NoError(t, json.Unmarshal(a.body, &ts))
		return ts
	}
	// One day of trades about a minute apart: more than one page of 1000.
	all := read(url.Values{"symbol": {"ETHUSDT"}, "fromId": {"0"}, "limit": {"1000"}})
	require.NotEmpty(t, all)
	require.GreaterOrEqual(t, all[0].Time, t0.Add(-24*time.Hour).UnixMilli())
	for len(all) > 0 {
		page := read(url.Values{"symbol": {"ETHUSDT"}, "fromId": {strconv.FormatInt(all[len(all)-1].ID+1, 10)}, "limit": {"1000"}})
		if len(page) == 0 {
			break
		}
		all = append(all, page...)
	}
	require.Greater(t, len(all), 600)
	for i, tr := range all {
		require.Equal(t, "ETHUSDT", tr.Symbol)
		require.LessOrEqual(t, tr.Time, t0.UnixMilli())
		p, q := decimal.RequireFromString(tr.Price), decimal.RequireFromString(tr.Qty)
		require.True(t, p.Mul(q).Equal(decimal.RequireFromString(tr.QuoteQty)), "quoteQty is exact")
		if tr.IsBuyer {
			require.Equal(t, "ETH", tr.CommissionAsset)
		} else {
			require.Equal(t, "USDT", tr.CommissionAsset)
		}
		if i > 0 {
			require.Equal(t, all[i-1].ID+1, tr.ID)
			require.Greater(t, tr.Time, all[i-1].Time)
		}
	}
	// Without a cursor: the most recent, default 500.
	recent := read(url.Values{"symbol": {"ETHUSDT"}})
	require.Len(t, recent, 500)
	require.Equal(t, all[len(all)-1], recent[499])
	// Time range.
	hour := read(url.Values{"symbol": {"ETHUSDT"}, "startTime": {strconv.FormatInt(t0.Add(-time.Hour).UnixMilli(), 10)},
		"endTime": {strconv.FormatInt(t0.UnixMilli(), 10)}})
	require.NotEmpty(t, hour)
	require.GreaterOrEqual(t, hour[0].Time, t0.Add(-time.Hour).UnixMilli())

	// New trades over time.
	b.clock.Add(10 * time.Minute)
	more := read(url.Values{"symbol": {"ETHUSDT"}, "fromId": {strconv.FormatInt(all[len(all)-1].ID+1, 10)}})
	require.NotEmpty(t, more)
	require.Equal(t, all[len(all)-1].ID+1, more[0].ID)

	requireError(t, b.signed(t, url.Values{"symbol": {"ETHUSDT"}, "fromId": {"1"}, "startTime": {"1"}},
		testKey, testSecret, b.clock.Now()), 400, -1128)
	requireError(t, b.signed(t, url.Values{"symbol": {"ETHUSDT"}, "limit": {"1001"}}, testKey, testSecret, b.clock.Now()), 400, -1130)
	requireError(t, b.signed(t, url.Values{"symbol": {"NOPE"}}, testKey, testSecret, b.clock.Now()), 400, -1121)
}

func TestMyTradesAuthentication(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	q := func() url.Values { return url.Values{"symbol": {"BTCUSDT"}} }
	now := b.clock.Now()
	require.Equal(t, http.StatusOK, b.signed(t, q(), testKey, testSecret, now).status)
	requireError(t, b.signed(t, q(), testKey, "wrong-secret", now), 400, -1022)
	requireError(t, b.signed(t, q(), "other-key", testSecret, now), 401, -2015)
	requireError(t, b.signed(t, q(), "", testSecret, now), 401, -2014)
	requireError(t, b.signed(t, q(), testKey, testSecret, now.Add(-6*time.Second)), 400, -1021)
	requireError(t, b.signed(t, q(), testKey, testSecret, now.Add(2*time.Second)), 400, -1021)
	requireError(t, b.do(t, "/api/v3/myTrades", "symbol=BTCUSDT&signature=abc", testKey), 400, -1102)
	requireError(t, b.do(t, "/api/v3/myTrades", "symbol=BTCUSDT&timestamp=1", testKey), 400, -1102)
	// A tampered query fails the signature.
	qs := "symbol=BTCUSDT&timestamp=" + strconv.FormatInt(now.UnixMilli(), 10)
	m := hmac.New(sha256.New, []byte(testSecret))
	m.Write([]byte(qs))
	requireError(t, b.do(t, "/api/v3/myTrades", qs+"&limit=5&signature="+hex.EncodeToString(m.Sum(nil)), testKey), 400, -1022)

	// Without configured credentials every key is refused.
	noKeys := setup(t, func(c *simex.Config) { c.APIKey, c.APISecret = "", "" })
	requireError(t, noKeys.signed(t, q(), testKey, testSecret, now), 401, -2015)
}

func TestWeightLimitThenBan(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *simex.Config) {
		c.WeightLimit, c.WeightWindow, c.BanAfter, c.BanDuration = 20, 10*time.Second, 3, time.Minute
	})
	b.clock.Add(-t0.Sub(t0.Truncate(10 * time.Second))) // start of a window
	depth := url.Values{"symbol": {"BTCUSDT"}}
	for i := 1; i <= 4; i++ {
		a := b.get(t, "/api/v3/depth", depth)
		require.Equal(t, http.StatusOK, a.status)
		require.Equal(t, strconv.Itoa(5*i), a.header.Get("X-MBX-USED-WEIGHT-10S"))
	}
	a := b.get(t, "/api/v3/depth", depth)
	requireError(t, a, http.StatusTooManyRequests, -1003)
	require.Equal(t, "10", a.header.Get("Retry-After"))
	// Calling on after the 429: three more 429s, then a 418.
	for range 3 {
		requireError(t, b.get(t, "/api/v3/time", nil), http.StatusTooManyRequests, -1003)
	}
	a = b.get(t, "/api/v3/time", nil)
	requireError(t, a, http.StatusTeapot, -1003)
	require.Equal(t, "60", a.header.Get("Retry-After"))
	b.clock.Add(30 * time.Second)
	a = b.get(t, "/api/v3/time", nil)
	requireError(t, a, http.StatusTeapot, -1003)
	require.Equal(t, "30", a.header.Get("Retry-After"))
	// After the ban, a fresh window; the second ban is twice as long.
	b.clock.Add(30 * time.Second)
	require.Equal(t, http.StatusOK, b.get(t, "/api/v3/time", nil).status)
	for range 3 {
		require.Equal(t, http.StatusOK, b.get(t, "/api/v3/depth", depth).status)
	}
	requireError(t, b.get(t, "/api/v3/depth", depth), http.StatusTooManyRequests, -1003)
	for range 3 {
		requireError(t, b.get(t, "/api/v3/time", nil), http.StatusTooManyRequests, -1003)
	}
	a = b.get(t, "/api/v3/time", nil)
	require.Equal(t, http.StatusTeapot, a.status)
	require.Equal(t, "120", a.header.Get("Retry-After"))

	st := b.ex.Stats()
	require.Equal(t, int64(8), st.Statuses[http.StatusTooManyRequests])
	require.Equal(t, int64(3), st.Statuses[http.StatusTeapot])

	// A lifted limit never refuses.
	b.clock.Add(time.Hour)
	b.ex.SetWeightLimit(-1)
	for range 10 {
		require.Equal(t, http.StatusOK, b.get(t, "/api/v3/depth", depth).status)
	}
	a = b.get(t, "/api/v3/exchangeInfo", nil)
	require.Contains(t, string(a.body), `"limit":1073741824`)
}

func TestForcedAnswers(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.ex.ForceRateLimit(1500 * time.Millisecond)
	a := b.get(t, "/api/v3/time", nil)
	requireError(t, a, http.StatusTooManyRequests, -1003)
	require.Equal(t, "2", a.header.Get("Retry-After"))
	b.clock.Add(2 * time.Second)
	require.Equal(t, http.StatusOK, b.get(t, "/api/v3/time", nil).status)
	b.ex.ForceBan(3 * time.Second)
	a = b.get(t, "/api/v3/time", nil)
	requireError(t, a, http.StatusTeapot, -1003)
	require.Equal(t, "3", a.header.Get("Retry-After"))
	require.Equal(t, http.StatusTeapot, b.get(t, "/api/v3/time", nil).status)
	b.clock.Add(3 * time.Second)
	require.Equal(t, http.StatusOK, b.get(t, "/api/v3/time", nil).status)
}

func TestRateLimitAndBanFaults(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *simex.Config) { c.BanDuration = 5 * time.Second })
	require.NoError(t, b.ex.SetFaults(simex.Faults{RateLimitRate: 1}))
	a := b.get(t, "/api/v3/time", nil)
	requireError(t, a, http.StatusTooManyRequests, -1003)
	require.Equal(t, "1", a.header.Get("Retry-After"))

	require.NoError(t, b.ex.SetFaults(simex.Faults{}))
	b.clock.Add(2 * time.Second)
	require.Equal(t, http.StatusOK, b.get(t, "/api/v3/time", nil).status)

	require.NoError(t, b.ex.SetFaults(simex.Faults{BanRate: 1}))
	a = b.get(t, "/api/v3/time", nil)
	requireError(t, a, http.StatusTeapot, -1003)
	require.Equal(t, "5", a.header.Get("Retry-After"))
	require.NoError(t, b.ex.SetFaults(simex.Faults{}))
	require.Equal(t, http.StatusTeapot, b.get(t, "/api/v3/time", nil).status, "the ban holds after the fault is off")
	b.clock.Add(5 * time.Second)
	require.Equal(t, http.StatusOK, b.get(t, "/api/v3/time", nil).status)

	require.Error(t, b.ex.SetFaults(simex.Faults{RateLimitRate: 1.5}))
	require.Error(t, b.ex.SetFaults(simex.Faults{BanRate: -0.1}))
}

func TestFaults(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *simex.Config) { c.Faults.ErrorRate = 1 })
	requireError(t, b.get(t, "/api/v3/time", nil), http.StatusServiceUnavailable, -1001)

	require.NoError(t, b.ex.SetFaults(simex.Faults{MalformedRate: 1}))
	a := b.get(t, "/api/v3/depth", url.Values{"symbol": {"BTCUSDT"}})
	require.Equal(t, http.StatusOK, a.status)
	require.False(t, json.Valid(a.body))
	requireError(t, b.get(t, "/api/v3/depth", url.Values{"symbol": {"NOPE"}}), 400, -1121) // errors stay whole

	require.NoError(t, b.ex.SetFaults(simex.Faults{Latency: 200 * time.Millisecond}))
	start := time.Now()
	require.Equal(t, http.StatusOK, b.get(t, "/api/v3/time", nil).status)
	require.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond)

	require.Error(t, b.ex.SetFaults(simex.Faults{MalformedRate: -1}))
	require.NoError(t, b.ex.SetFaults(simex.Faults{}))
	require.Equal(t, http.StatusOK, b.get(t, "/api/v3/time", nil).status)
}

func TestServeStopsOnCancel(t *testing.T) {
	t.Parallel()
	ex, err := simex.New(simex.Config{})
	require.NoError(t, err)
	srv, err := simex.Listen("127.0.0.1:0", ex)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	resp, err := http.Get(srv.URL() + "/api/v3/ping")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}

// The account's trade window and every "now"-relative answer hold whatever the instant: on a
// midnight, just before noon or midnight, at a month's, a leap February's and a year's end.
// TradesSince is left to its default (midnight UTC of the day before Now).
func TestTradeWindowAtAnyInstant(t *testing.T) {
	t.Parallel()
	for name, now := range clocktest.Instants() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, func(c *simex.Config) {
				c.Now = clocktest.Fixed(now)
				c.TradesSince = time.Time{}
			})
			since := time.Date(now.Year(), now.Month(), now.Day()-1, 0, 0, 0, 0, time.UTC)
			read := func(q url.Values) []trade {
				t.Helper()
				a := b.signed(t, q, testKey, testSecret, now)
				require.Equal(t, http.StatusOK, a.status, string(a.body))
				var ts []trade
				require.NoError(t, json.Unmarshal(a.body, &ts))
				return ts
			}
			for _, sym := range []string{"BTCUSDT", "ETHBTC"} {
				// Paging on from id 0 walks every trade since yesterday's midnight up to now.
				var all []trade
				for from := int64(0); ; {
					page := read(url.Values{"symbol": {sym}, "fromId": {strconv.FormatInt(from, 10)}, "limit": {"1000"}})
					all = append(all, page...)
					if len(page) < 1000 {
						break
					}
					from = page[len(page)-1].ID + 1
				}
				require.NotEmpty(t, all)
				// The default spacing is two minutes (one to three a symbol): a day and a part.
				span := now.Sub(since)
				require.GreaterOrEqual(t, len(all), int(span/(3*time.Minute)), sym)
				require.Less(t, len(all), int(span/time.Minute)+2, sym)
				for i, tr := range all {
					require.GreaterOrEqual(t, tr.Time, since.UnixMilli(), "%s trade %d before the start of yesterday", sym, tr.ID)
					require.LessOrEqual(t, tr.Time, now.UnixMilli(), "%s trade %d after now", sym, tr.ID)
					if i > 0 {
						require.Equal(t, all[i-1].ID+1, tr.ID)
						require.Greater(t, tr.Time, all[i-1].Time)
					}
				}
				// The most recent page ends with the newest trade.
				recent := read(url.Values{"symbol": {sym}})
				require.Equal(t, all[len(all)-1], recent[len(recent)-1], sym)
				require.Equal(t, min(500, len(all)), len(recent))
				// The last day by time range: the trades of the walk in it.
				end := now.UnixMilli()
				day := read(url.Values{"symbol": {sym}, "startTime": {strconv.FormatInt(end-24*3600*1000, 10)},
					"endTime": {strconv.FormatInt(end, 10)}, "limit": {"1000"}})
				require.NotEmpty(t, day)
				for _, tr := range day {
					require.GreaterOrEqual(t, tr.Time, end-24*3600*1000)
					require.LessOrEqual(t, tr.Time, end)
				}
			}

			// The current candle of every interval is open at now; the ticker covers the 24 h
			// before now.
			for _, iv := range []string{"1m", "1h", "1d", "1w", "1M"} {
				a := b.get(t, "/api/v3/klines", url.Values{"symbol": {"ETHUSDT"}, "interval": {iv}, "limit": {"3"}})
				require.Equal(t, http.StatusOK, a.status, string(a.body))
				var ks [][]any
				require.NoError(t, json.Unmarshal(a.body, &ks))
				require.Len(t, ks, 3, iv)
				open, closeT := int64(ks[2][0].(float64)), int64(ks[2][6].(float64))
				require.LessOrEqual(t, open, now.UnixMilli(), iv)
				require.GreaterOrEqual(t, closeT, now.UnixMilli(), "%s: the close time is the candle's last millisecond", iv)
				require.Equal(t, open-1, int64(ks[1][6].(float64)), "%s candles are contiguous", iv)
			}
			a := b.get(t, "/api/v3/ticker/24hr", url.Values{"symbol": {"BTCUSDT"}})
			require.Equal(t, http.StatusOK, a.status, string(a.body))
			var tk map[string]any
			require.NoError(t, json.Unmarshal(a.body, &tk))
			require.Equal(t, float64(now.UnixMilli()), tk["closeTime"])
			require.Equal(t, float64(now.Add(-24*time.Hour).UnixMilli()), tk["openTime"])
		})
	}
}
