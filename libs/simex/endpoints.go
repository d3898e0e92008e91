package simex

import (
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"slices"
	"time"
)

func (e *Exchange) ping(*http.Request, url.Values, time.Time) (int, []byte) {
	return http.StatusOK, []byte("{}")
}

func (e *Exchange) serverTime(_ *http.Request, _ url.Values, now time.Time) (int, []byte) {
	b := append([]byte(`{"serverTime":`), appendInt(nil, now.UnixMilli())...)
	return http.StatusOK, append(b, '}')
}

type rateLimitJSON struct {
	RateLimitType string `json:"rateLimitType"`
	Interval      string `json:"interval"`
	IntervalNum   int    `json:"intervalNum"`
	Limit         int    `json:"limit"`
}

type filterJSON struct {
	FilterType string `json:"filterType"`
	MinPrice   string `json:"minPrice,omitempty"`
	MaxPrice   string `json:"maxPrice,omitempty"`
	TickSize   string `json:"tickSize,omitempty"`
	MinQty     string `json:"minQty,omitempty"`
	MaxQty     string `json:"maxQty,omitempty"`
	StepSize   string `json:"stepSize,omitempty"`
}

type symbolJSON struct {
	Symbol                     string       `json:"symbol"`
	Status                     string       `json:"status"`
	BaseAsset                  string       `json:"baseAsset"`
	BaseAssetPrecision         int          `json:"baseAssetPrecision"`
	QuoteAsset                 string       `json:"quoteAsset"`
	QuotePrecision             int          `json:"quotePrecision"`
	QuoteAssetPrecision        int          `json:"quoteAssetPrecision"`
	BaseCommissionPrecision    int          `json:"baseCommissionPrecision"`
	QuoteCommissionPrecision   int          `json:"quoteCommissionPrecision"`
	OrderTypes                 []string     `json:"orderTypes"`
	IcebergAllowed             bool         `json:"icebergAllowed"`
	OcoAllowed                 bool         `json:"ocoAllowed"`
	QuoteOrderQtyMarketAllowed bool         `json:"quoteOrderQtyMarketAllowed"`
	IsSpotTradingAllowed       bool         `json:"isSpotTradingAllowed"`
	IsMarginTradingAllowed     bool         `json:"isMarginTradingAllowed"`
	Filters                    []filterJSON `json:"filters"`
	Permissions                []string     `json:"permissions"`
	PermissionSets             [][]string   `json:"permissionSets"`
}

func (e *Exchange) exchangeInfo(_ *http.Request, q url.Values, now time.Time) (int, []byte) {
	only := q.Get("symbolStatus")
	if only != "" {
		if q.Get("symbol") != "" || q.Get("symbols") != "" {
			return badRequest(-1128, "Combination of optional parameters invalid.").reply()
		}
		if validStatus(only) != nil {
			return badRequest(-1122, "Invalid symbolStatus.").reply()
		}
	}
	ms, _, err := e.marketsParam(q)
	if err != nil {
		return err.reply()
	}
	status := make([]string, 0, len(ms))
	kept := ms[:0:0]
	for _, m := range ms {
		st := StatusTrading
		if h, halted := e.haltOf(m); halted {
			st = h.status
		}
		if only == "" || st == only {
			kept, status = append(kept, m), append(status, st)
		}
	}
	ms = kept
	iv, n := rateLimitInterval(e.cfg.WeightWindow)
	out := struct {
		Timezone        string          `json:"timezone"`
		ServerTime      int64           `json:"serverTime"`
		RateLimits      []rateLimitJSON `json:"rateLimits"`
		ExchangeFilters []any           `json:"exchangeFilters"`
		Symbols         []symbolJSON    `json:"symbols"`
	}{
		Timezone: "UTC", ServerTime: now.UnixMilli(),
		RateLimits: []rateLimitJSON{
			{"REQUEST_WEIGHT", iv, n, e.weights.reportedLimit()},
			{"ORDERS", "SECOND", 10, 100},
			{"ORDERS", "DAY", 1, 200000},
			{"RAW_REQUESTS", "MINUTE", 5, 61000},
		},
		ExchangeFilters: []any{},
		Symbols:         make([]symbolJSON, len(ms)),
	}
	for i, m := range ms {
		out.Symbols[i] = symbolJSON{
			Symbol: m.symbol, Status: status[i], BaseAsset: m.base, BaseAssetPrecision: 8,
			QuoteAsset: m.quote, QuotePrecision: 8, QuoteAssetPrecision: 8,
			BaseCommissionPrecision: 8, QuoteCommissionPrecision: 8,
			OrderTypes:     []string{"LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"},
			IcebergAllowed: true, OcoAllowed: true, QuoteOrderQtyMarketAllowed: true, IsSpotTradingAllowed: true,
			Filters: []filterJSON{
				{FilterType: "PRICE_FILTER", MinPrice: fixed(1, m.priceDec), MaxPrice: "1000000.00000000", TickSize: fixed(1, m.priceDec)},
				{FilterType: "LOT_SIZE", MinQty: fixed(1, m.qtyDec), MaxQty: "9000000.00000000", StepSize: fixed(1, m.qtyDec)},
			},
			Permissions:    []string{},
			PermissionSets: [][]string{{"SPOT"}},
		}
	}
	b, _ := json.Marshal(out)
	return http.StatusOK, b
}

// klineSamples is how many interior points of a candle are sampled for its high and low.
const klineSamples = 16

func (e *Exchange) klines(_ *http.Request, q url.Values, now time.Time) (int, []byte) {
	m, err := e.marketParam(q)
	if err != nil {
		return err.reply()
	}
	ivs := q.Get("interval")
	if ivs == "" {
		return mandatory("interval").reply()
	}
	iv, ok := parseInterval(ivs)
	if !ok {
		return badRequest(-1120, "Invalid interval.").reply()
	}
	start, hasStart, err := intParam(q, "startTime")
	if err != nil {
		return err.reply()
	}
	end, hasEnd, err := intParam(q, "endTime")
	if err != nil {
		return err.reply()
	}
	limit, err := limitParam(q, 500, 1000)
	if err != nil {
		return err.reply()
	}
	if hasStart && hasEnd && start > end {
		return badRequest(-1023, "Start time is greater than end time.").reply()
	}
	nowMs := now.UnixMilli()
	if h, halted := e.haltOf(m); halted {
		// No trades, no new candles: the market's clock stopped when it left TRADING.
		nowMs = min(nowMs, h.sinceMs)
	}
	last := nowMs
	if hasEnd && end < last {
		last = end
	}
	// Open times of the candles: from startTime forward, or back from the last one.
	opens := make([]int64, 0, limit)
	if hasStart {
		o := iv.openOf(start)
		if o < start {
			o = iv.next(o)
		}
		for ; o <= last && int64(len(opens)) < limit; o = iv.next(o) {
			opens = append(opens, o)
		}
	} else {
		for o := iv.openOf(last); int64(len(opens)) < limit; o = iv.prev(o) {
			opens = append(opens, o)
		}
		slices.Reverse(opens)
	}
	b := make([]byte, 0, 64+len(opens)*200)
	b = append(b, '[')
	for i, o := range opens {
		if i > 0 {
			b = append(b, ',')
		}
		b = m.appendKline(b, iv, o, nowMs)
	}
	return http.StatusOK, append(b, ']')
}

// appendKline appends one 12-element kline; a candle still open at nowMs ends at nowMs.
func (m *market) appendKline(b []byte, iv interval, open, nowMs int64) []byte {
	closeT := iv.next(open) - 1
	end := min(closeT, nowMs)
	o, c := m.ticks(open), m.ticks(end)
	hi, lo := max(o, c), min(o, c)
	span := end - open
	for i := int64(1); i <= klineSamples && span > 1; i++ {
		t := m.ticks(open + span*i/(klineSamples+1))
		hi, lo = max(hi, t), min(lo, t)
	}
	full := float64(closeT+1-open) / 1000
	elapsed := float64(end+1-open) / 1000
	vol := m.volPerSec * full * (0.5 + unit(hash3(m.key, iv.idx, uint64(open)))) * (elapsed / full)
	volUnits := int64(math.Round(vol * pow10[m.qtyDec]))
	vol = float64(volUnits) / pow10[m.qtyDec]
	avg := float64(o+c) / 2 / pow10[m.priceDec]
	taker := 0.35 + 0.3*unit(hash3(m.key, iv.idx^0xabc, uint64(open)))
	trades := int64(0)
	if volUnits > 0 {
		trades = max(1, int64(vol/(m.levelQty*0.02)))
	}
	b = append(b, '[')
	b = appendInt(b, open)
	for _, t := range []int64{o, hi, lo, c} {
		b = append(b, ',', '"')
		b = appendFixed(b, t, m.priceDec)
		b = append(b, '"')
	}
	b = append(b, ',', '"')
	b = appendFixed(b, volUnits, m.qtyDec)
	b = append(b, '"', ',')
	b = appendInt(b, closeT)
	b = append(b, ",\""...)
	b = append(b, fixedFloat(vol*avg)...)
	b = append(b, "\","...)
	b = appendInt(b, trades)
	b = append(b, ",\""...)
	b = appendFixed(b, int64(float64(volUnits)*taker), m.qtyDec)
	b = append(b, "\",\""...)
	b = append(b, fixedFloat(float64(int64(float64(volUnits)*taker))/pow10[m.qtyDec]*avg)...)
	return append(b, "\",\"0\"]"...)
}

func (e *Exchange) depth(_ *http.Request, q url.Values, now time.Time) (int, []byte) {
	m, err := e.marketParam(q)
	if err != nil {
		return err.reply()
	}
	limit, err := limitParam(q, 100, 5000)
	if err != nil {
		return err.reply()
	}
	h, halted := e.haltOf(m)
	if halted {
		// An empty book that keeps the id it had when trading stopped.
		b := append([]byte(`{"lastUpdateId":`), appendInt(nil, m.book(h.sinceMs).updateID)...)
		return http.StatusOK, append(b, `,"bids":[],"asks":[]}`...)
	}
	bk := m.book(now.UnixMilli())
	b := make([]byte, 0, 64+limit*2*40)
	b = append(b, `{"lastUpdateId":`...)
	b = appendInt(b, bk.updateID)
	b = append(b, `,"bids":[`...)
	b = bk.appendSide(b, m, false, int(limit))
	b = append(b, `],"asks":[`...)
	b = bk.appendSide(b, m, true, int(limit))
	return http.StatusOK, append(b, "]}"...)
}

func (e *Exchange) tickerPrice(_ *http.Request, q url.Values, now time.Time) (int, []byte) {
	ms, single, err := e.marketsParam(q)
	if err != nil {
		return err.reply()
	}
	nowMs := now.UnixMilli()
	b := make([]byte, 0, 16+len(ms)*48)
	if !single {
		b = append(b, '[')
	}
	for i, m := range ms {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"symbol":"`...)
		b = append(b, m.symbol...)
		b = append(b, `","price":"`...)
		if _, halted := e.haltOf(m); halted {
			b = append(b, zeroFixed...)
		} else {
			b = appendFixed(b, m.ticks(nowMs), m.priceDec)
		}
		b = append(b, `"}`...)
	}
	if !single {
		b = append(b, ']')
	}
	return http.StatusOK, b
}

func (e *Exchange) ticker24h(_ *http.Request, q url.Values, now time.Time) (int, []byte) {
	ms, single, err := e.marketsParam(q)
	if err != nil {
		return err.reply()
	}
	nowMs := now.UnixMilli()
	b := make([]byte, 0, 16+len(ms)*640)
	if !single {
		b = append(b, '[')
	}
	for i, m := range ms {
		if i > 0 {
			b = append(b, ',')
		}
		if _, halted := e.haltOf(m); halted {
			b = m.appendIdleTicker24h(b, nowMs)
		} else {
			b = m.appendTicker24h(b, nowMs)
		}
	}
	if !single {
		b = append(b, ']')
	}
	return http.StatusOK, b
}

func (m *market) appendTicker24h(b []byte, nowMs int64) []byte {
	t := m.tickerAt(nowMs)
	b = append(b, `{"symbol":"`...)
	b = append(b, m.symbol...)
	b = append(b, '"')
	b = t.appendFields(b, m, &restTickerKeys)
	return append(b, '}')
}

// zeroFixed is a zero price or quantity in Binance's format.
const zeroFixed = "0.00000000"

// appendIdleTicker24h appends the ticker Binance answers for a symbol without trades in the
// window: zero prices and volumes, ids -1, count 0. A symbol out of TRADING gets it at once,
// not only after a day without trades.
func (m *market) appendIdleTicker24h(b []byte, nowMs int64) []byte {
	b = append(b, `{"symbol":"`...)
	b = append(b, m.symbol...)
	b = append(b, '"')
	for _, k := range []string{"priceChange", "priceChangePercent", "weightedAvgPrice", "prevClosePrice", "lastPrice",
		"lastQty", "bidPrice", "bidQty", "askPrice", "askQty", "openPrice", "highPrice", "lowPrice", "volume", "quoteVolume"} {
		v := zeroFixed
		if k == "priceChangePercent" {
			v = "0.000"
		}
		b = append(b, ",\""...)
		b = append(b, k...)
		b = append(b, "\":\""...)
		b = append(b, v...)
		b = append(b, '"')
	}
	b = append(b, `,"openTime":`...)
	b = appendInt(b, nowMs-msDay)
	b = append(b, `,"closeTime":`...)
	b = appendInt(b, nowMs)
	return append(b, `,"firstId":-1,"lastId":-1,"count":0}`...)
}
