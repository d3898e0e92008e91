package exchange

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"
)

// The exchange's response bodies, fuzzed. The client decodes a 2xx body with json.Unmarshal into
// these types (Client.do), so the targets decode as it does. Properties: no panic; a body that
// does not decode is an error; one that does re-encodes, in Binance's own format, into a body
// that decodes to the same values.

var (
	fuzzKlines = `[[1499040000000,"0.01634790","0.80000000","0.01575800","0.01577100","148976.11427815",1499644799999,"2434.19055334",308,"1756.87402397","28.46694368","0"],` +
		`[1499644800000,"0.01577100","0.01577100","0.01577100","0.01577100","0",1499731199999,"0",0,"0","0","0"]]`
	fuzzDepth = `{"lastUpdateId":1027024,"bids":[["4.00000000","431.00000000"]],"asks":[["4.00000200","12.00000000"],["5.1","0.5"]]}`
	fuzzTick  = `{"symbol":"BNBBTC","priceChange":"-94.99999800","priceChangePercent":"-95.960","weightedAvgPrice":"0.29628482",` +
		`"prevClosePrice":"0.10002000","lastPrice":"4.00000200","lastQty":"200.00000000","bidPrice":"4.00000000","bidQty":"100.00000000",` +
		`"askPrice":"4.00000200","askQty":"100.00000000","openPrice":"99.00000000","highPrice":"100.00000000","lowPrice":"0.10000000",` +
		`"volume":"8913.30000000","quoteVolume":"15.30000000","openTime":1499783499040,"closeTime":1499869899040,"firstId":28385,"lastId":28460,"count":76}`
	fuzzInfo = `{"timezone":"UTC","serverTime":1565246363776,"rateLimits":[{"rateLimitType":"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":6000},` +
		`{"rateLimitType":"ORDERS","interval":"SECOND","intervalNum":10,"limit":100}],"symbols":[{"symbol":"ETHBTC","status":"TRADING","baseAsset":"ETH",` +
		`"baseAssetPrecision":8,"quoteAsset":"BTC","quoteAssetPrecision":8,"filters":[{"filterType":"PRICE_FILTER","minPrice":"0.00000100","maxPrice":"100000.00000000",` +
		`"tickSize":"0.00000100"},{"filterType":"LOT_SIZE","minQty":"0.00100000","maxQty":"100000.00000000","stepSize":"0.00100000"}]}]}`
	fuzzTrades = `[{"symbol":"BNBBTC","id":28457,"orderId":100234,"orderListId":-1,"price":"4.00000100","qty":"12.00000000","quoteQty":"48.000012",` +
		`"commission":"10.10000000","commissionAsset":"BNB","time":1499865549590,"isBuyer":true,"isMaker":false,"isBestMatch":true}]`
)

// Bad bodies every target gets: truncated, wrong types, huge numbers, NaN-ish strings.
var fuzzBad = []string{``, `[`, `{`, `null`, `[null]`, `"x"`, `[[1,"NaN"]]`, `[["1e400","Infinity"]]`, `{"bids":[["1"]]}`,
	`{"bids":[["1","2","3"]]}`, `[[null,null,null,null,null,null,null,null,null,null,null,null]]`, `[[1e30,"1","1","1","1","1",2,"1",1,"1","1","0"]]`,
	`{"rateLimits":[{"rateLimitType":"REQUEST_WEIGHT","interval":"DAY","intervalNum":2000000000000,"limit":5}]}`,
	`{"rateLimits":[{"rateLimitType":"REQUEST_WEIGHT","interval":"SECOND","intervalNum":1,"limit":-7}]}`,
	`[{"id":"28457","price":4,"time":"yesterday"}]`, `{"lastUpdateId":18446744073709551616}`, `{"price":"0x10"}`, `[{"price":"1_000"}]`}

func addSeeds(f *testing.F, good ...string) {
	for _, s := range append(good, fuzzBad...) {
		f.Add([]byte(s))
	}
}

// decimalsEqual compares decimals by value.
func decimalsEqual(t *testing.T, want, got decimal.Decimal, what string) {
	t.Helper()
	require.True(t, want.Equal(got), "%s: %s vs %s", what, want, got)
}

func FuzzKlines(f *testing.F) {
	addSeeds(f, fuzzKlines)
	f.Fuzz(func(t *testing.T, body []byte) {
		var ks []Kline
		if err := json.Unmarshal(body, &ks); err != nil {
			require.NotEmpty(t, err.Error())
			return
		}
		var b strings.Builder
		b.WriteByte('[')
		for i, k := range ks {
			if i > 0 {
				b.WriteByte(',')
			}
			fmtDec := func(d decimal.Decimal) string { return strconv.Quote(d.String()) }
			b.WriteString("[" + strings.Join([]string{strconv.FormatInt(k.OpenTime.UnixMilli(), 10), fmtDec(k.Open), fmtDec(k.High),
				fmtDec(k.Low), fmtDec(k.Close), fmtDec(k.Volume), strconv.FormatInt(k.CloseTime.UnixMilli(), 10), fmtDec(k.QuoteVolume),
				strconv.FormatInt(k.Trades, 10), fmtDec(k.TakerBuyBaseVolume), fmtDec(k.TakerBuyQuoteVolume), `"0"`}, ",") + "]")
		}
		b.WriteByte(']')
		var back []Kline
		require.NoError(t, json.Unmarshal([]byte(b.String()), &back), b.String())
		require.Len(t, back, len(ks))
		for i := range ks {
			k, g := ks[i], back[i]
			require.True(t, k.OpenTime.Equal(g.OpenTime) && k.CloseTime.Equal(g.CloseTime))
			require.Equal(t, k.Trades, g.Trades)
			for j, d := range []decimal.Decimal{k.Open, k.High, k.Low, k.Close, k.Volume, k.QuoteVolume, k.TakerBuyBaseVolume, k.TakerBuyQuoteVolume} {
				decimalsEqual(t, d, []decimal.Decimal{g.Open, g.High, g.Low, g.Close, g.Volume, g.QuoteVolume, g.TakerBuyBaseVolume, g.TakerBuyQuoteVolume}[j], "kline field")
			}
		}
	})
}

func FuzzDepth(f *testing.F) {
	addSeeds(f, fuzzDepth)
	f.Fuzz(func(t *testing.T, body []byte) {
		var ob OrderBook
		if err := json.Unmarshal(body, &ob); err != nil {
			require.NotEmpty(t, err.Error())
			return
		}
		side := func(ls []PriceLevel) string {
			parts := make([]string, len(ls))
			for i, l := range ls {
				parts[i] = `["` + l.Price.String() + `","` + l.Qty.String() + `"]`
			}
			return "[" + strings.Join(parts, ",") + "]"
		}
		re := `{"lastUpdateId":` + strconv.FormatInt(ob.LastUpdateID, 10) + `,"bids":` + side(ob.Bids) + `,"asks":` + side(ob.Asks) + `}`
		var back OrderBook
		require.NoError(t, json.Unmarshal([]byte(re), &back), re)
		require.Equal(t, ob.LastUpdateID, back.LastUpdateID)
		require.Len(t, back.Bids, len(ob.Bids))
		require.Len(t, back.Asks, len(ob.Asks))
		for i := range ob.Bids {
			decimalsEqual(t, ob.Bids[i].Price, back.Bids[i].Price, "bid price")
			decimalsEqual(t, ob.Bids[i].Qty, back.Bids[i].Qty, "bid qty")
		}
		for i := range ob.Asks {
			decimalsEqual(t, ob.Asks[i].Price, back.Asks[i].Price, "ask price")
			decimalsEqual(t, ob.Asks[i].Qty, back.Asks[i].Qty, "ask qty")
		}
	})
}

func FuzzTickers(f *testing.F) {
	addSeeds(f, fuzzTick, "["+fuzzTick+"]", `{"symbol":"ETHBTC","price":"0.06"}`, `[{"symbol":"ETHBTC","price":"0.06"}]`)
	f.Fuzz(func(t *testing.T, body []byte) {
		var one Ticker24h
		if err := json.Unmarshal(body, &one); err == nil {
			re, err := json.Marshal(struct {
				Ticker24h
				OpenTime  int64 `json:"openTime"`
				CloseTime int64 `json:"closeTime"`
			}{one, one.OpenTime.UnixMilli(), one.CloseTime.UnixMilli()})
			require.NoError(t, err)
			var back Ticker24h
			require.NoError(t, json.Unmarshal(re, &back), "%s", re)
			require.Equal(t, one.Symbol, back.Symbol)
			require.True(t, one.OpenTime.Equal(back.OpenTime) && one.CloseTime.Equal(back.CloseTime))
			require.Equal(t, [3]int64{one.FirstID, one.LastID, one.Count}, [3]int64{back.FirstID, back.LastID, back.Count})
			decimalsEqual(t, one.LastPrice, back.LastPrice, "lastPrice")
			decimalsEqual(t, one.QuoteVolume, back.QuoteVolume, "quoteVolume")
		}
		var many []Ticker24h
		_ = json.Unmarshal(body, &many)
		var prices []PriceTicker
		if err := json.Unmarshal(body, &prices); err == nil {
			re, err := json.Marshal(prices)
			require.NoError(t, err)
			var back []PriceTicker
			require.NoError(t, json.Unmarshal(re, &back), "%s", re)
			require.Len(t, back, len(prices))
			for i := range prices {
				decimalsEqual(t, prices[i].Price, back[i].Price, "price")
			}
		}
	})
}

func FuzzExchangeInfo(f *testing.F) {
	addSeeds(f, fuzzInfo)
	f.Fuzz(func(t *testing.T, body []byte) {
		var info ExchangeInfo
		if err := json.Unmarshal(body, &info); err != nil {
			require.NotEmpty(t, err.Error())
			return
		}
		// Whatever rateLimits say, the budget the limiter takes from them is usable.
		limit, window := requestWeightLimit(info.RateLimits)
		require.Positive(t, limit)
		require.GreaterOrEqual(t, window, time.Second)
		require.LessOrEqual(t, window, maxWeightWindow)
		l := newLimiter("fuzz", func() time.Time { return time.UnixMilli(1_700_000_000_000) })
		l.configure(limit, window)
		_ = l.Stats()
	})
}

func FuzzMyTrades(f *testing.F) {
	addSeeds(f, fuzzTrades)
	f.Fuzz(func(t *testing.T, body []byte) {
		var trades []Trade
		if err := json.Unmarshal(body, &trades); err != nil {
			require.NotEmpty(t, err.Error())
			return
		}
		for _, tr := range trades {
			// Raw is the trade as sent; it decodes to the same trade.
			var back Trade
			require.NoError(t, json.Unmarshal(tr.Raw, &back))
			require.Equal(t, tr.ID, back.ID)
			require.Equal(t, tr.Symbol, back.Symbol)
			require.True(t, tr.Time.Equal(back.Time))
			decimalsEqual(t, tr.Price, back.Price, "price")
			decimalsEqual(t, tr.Qty, back.Qty, "qty")
			require.True(t, json.Valid(tr.Raw))
		}
	})
}

// FuzzErrorBody: any non-2xx answer becomes an APIError that formats, names its request, keeps
// a readable (UTF-8, bounded) message, and a Retry-After within Binance's longest ban.
func FuzzErrorBody(f *testing.F) {
	for _, s := range []struct {
		status int
		body   string
		ra     string
	}{
		{400, `{"code":-1121,"msg":"Invalid symbol."}`, ""},
		{429, `{"code":-1003,"msg":"Too much request weight used."}`, "7"},
		{418, `{"code":-1003,"msg":"Way too much request weight used; IP banned until 1499827319559."}`, "120"},
		{503, `<html>Service Unavailable</html>`, ""},
		{429, ``, "Wed, 21 Oct 2015 07:28:00 GMT"},
		{418, `{"code":"x"}`, "99999999999999999"},
		{429, `{}`, "-5"},
		{500, strings.Repeat("é", 150), "1e3"},
		{400, `{"code":-1021,"msg":"` + strings.Repeat("\u00e9", 300) + `"}`, ""},
	} {
		f.Add(s.status, []byte(s.body), s.ra)
	}
	now := time.Date(2026, 3, 17, 15, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, status int, body []byte, ra string) {
		if status < 100 || status > 999 {
			status = 400 + status%100&0x7f
		}
		resp := &http.Response{StatusCode: status, Header: http.Header{}}
		if ra != "" {
			resp.Header.Set("Retry-After", ra)
		}
		e := apiError("GET /api/v3/depth?symbol=BTCUSDT", resp, body, now)
		require.Equal(t, status, e.Status)
		require.Contains(t, e.Error(), "GET /api/v3/depth?symbol=BTCUSDT")
		require.Contains(t, e.Error(), strconv.Itoa(status))
		require.NotEmpty(t, e.Msg)
		if utf8.Valid(body) {
			require.True(t, utf8.ValidString(e.Msg), "%q", e.Msg)
		}
		require.LessOrEqual(t, len(e.Msg), max(len(body), 200+len("…"), len(http.StatusText(status))))
		require.GreaterOrEqual(t, e.RetryAfter, time.Duration(0))
		require.LessOrEqual(t, e.RetryAfter, maxRetryAfter)
		_ = retryableStatus(status)
	})
}
