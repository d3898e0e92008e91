package simex

import (
	"math"
	"strconv"
)

// tickerSamples is how many points of the last 24 hours are sampled for high and low.
const tickerSamples = 96

// tickerStats is a symbol's rolling 24-hour statistics at one instant, in tick and lot units:
// what GET /api/v3/ticker/24hr and the <symbol>@ticker and @miniTicker streams all report, so
// they agree at any instant.
type tickerStats struct {
	openMs, closeMs                  int64
	open, last, prevClose, high, low int64 // ticks
	avg                              float64
	volUnits                         int64
	quoteVol                         float64
	lastQty                          int64
	bid, bidQty, ask, askQty         int64
	firstID, lastID                  int64
}

func (m *market) tickerAt(nowMs int64) tickerStats {
	openMs := nowMs - msDay
	o, last := m.ticks(openMs), m.ticks(nowMs)
	hi, lo := max(o, last), min(o, last)
	var sum float64
	var memo [2]walkMemo // the samples are in time order
	for i := int64(1); i <= tickerSamples; i++ {
		t := m.ticksVia(openMs+msDay*i/(tickerSamples+1), &memo)
		hi, lo = max(hi, t), min(lo, t)
		sum += float64(t)
	}
	avgTicks := (sum + float64(o+last)) / (tickerSamples + 2)
	vol := m.volPerSec * 86400 * (0.8 + 0.4*unit(hash2(m.key, uint64(nowMs/msHour))))
	volUnits := int64(math.Round(vol * pow10[m.qtyDec]))
	vol = float64(volUnits) / pow10[m.qtyDec]
	avg := avgTicks / pow10[m.priceDec]
	bk := m.book(nowMs)
	lastID := nowMs / m.marketTradeMs
	return tickerStats{
		openMs: openMs, closeMs: nowMs,
		open: o, last: last, prevClose: m.ticks(openMs - 1), high: hi, low: lo,
		avg: avg, volUnits: volUnits, quoteVol: vol * avg,
		lastQty: m.qtyUnits(m.levelQty * 0.02 * (0.1 + 2*unit(hash2(m.key, uint64(lastID))))),
		bid:     bk.bestBid, bidQty: bk.levelQtyUnits(m, false),
		ask: bk.bestAsk, askQty: bk.levelQtyUnits(m, true),
		firstID: openMs/m.marketTradeMs + 1, lastID: lastID,
	}
}

// tickerKeys names the ticker's fields in one shape, in this order: price change, its percent,
// weighted average price, previous close, last price and quantity, best bid price and quantity,
// best ask price and quantity, open, high, low, volume, quote volume, open time, close time,
// first and last trade ids, trade count. An empty key leaves the field out.
type tickerKeys [20]string

var (
	restTickerKeys = tickerKeys{"priceChange", "priceChangePercent", "weightedAvgPrice", "prevClosePrice",
		"lastPrice", "lastQty", "bidPrice", "bidQty", "askPrice", "askQty", "openPrice", "highPrice", "lowPrice",
		"volume", "quoteVolume", "openTime", "closeTime", "firstId", "lastId", "count"}
	// Binance's "Individual Symbol Ticker Streams" and "Individual Symbol Mini Ticker Stream".
	streamTickerKeys = tickerKeys{"p", "P", "w", "x", "c", "Q", "b", "B", "a", "A", "o", "h", "l", "v", "q", "O", "C", "F", "L", "n"}
	miniTickerKeys   = tickerKeys{4: "c", 10: "o", 11: "h", 12: "l", 13: "v", 14: "q"}
)

// appendFields appends ,"key":value for each field keys names: prices and quantities as
// Binance's eight-decimal strings, times and ids as numbers.
func (t *tickerStats) appendFields(b []byte, m *market, keys *tickerKeys) []byte {
	for i, key := range keys {
		if key == "" {
			continue
		}
		b = append(b, ",\""...)
		b = append(b, key...)
		b = append(b, "\":"...)
		if i < 15 {
			b = append(b, '"')
		}
		switch i {
		case 0:
			b = appendFixed(b, t.last-t.open, m.priceDec)
		case 1:
			b = strconv.AppendFloat(b, 100*float64(t.last-t.open)/float64(t.open), 'f', 3, 64)
		case 2:
			b = appendFixedFloat(b, t.avg)
		case 3:
			b = appendFixed(b, t.prevClose, m.priceDec)
		case 4:
			b = appendFixed(b, t.last, m.priceDec)
		case 5:
			b = appendFixed(b, t.lastQty, m.qtyDec)
		case 6:
			b = appendFixed(b, t.bid, m.priceDec)
		case 7:
			b = appendFixed(b, t.bidQty, m.qtyDec)
		case 8:
			b = appendFixed(b, t.ask, m.priceDec)
		case 9:
			b = appendFixed(b, t.askQty, m.qtyDec)
		case 10:
			b = appendFixed(b, t.open, m.priceDec)
		case 11:
			b = appendFixed(b, t.high, m.priceDec)
		case 12:
			b = appendFixed(b, t.low, m.priceDec)
		case 13:
			b = appendFixed(b, t.volUnits, m.qtyDec)
		case 14:
			b = appendFixedFloat(b, t.quoteVol)
		case 15:
			b = appendInt(b, t.openMs)
		case 16:
			b = appendInt(b, t.closeMs)
		case 17:
			b = appendInt(b, t.firstID)
		case 18:
			b = appendInt(b, t.lastID)
		case 19:
			b = appendInt(b, t.lastID-t.firstID+1)
		}
		if i < 15 {
			b = append(b, '"')
		}
	}
	return b
}

// appendTickerEvent appends a <symbol>@ticker ("24hrTicker") or @miniTicker ("24hrMiniTicker")
// event at Unix millisecond nowMs.
func (m *market) appendTickerEvent(b []byte, mini bool, nowMs int64) []byte {
	t := m.tickerAt(nowMs)
	event, keys := "24hrTicker", &streamTickerKeys
	if mini {
		event, keys = "24hrMiniTicker", &miniTickerKeys
	}
	b = append(b, `{"e":"`...)
	b = append(b, event...)
	b = append(b, `","E":`...)
	b = appendInt(b, nowMs)
	b = append(b, `,"s":"`...)
	b = append(b, m.symbol...)
	b = append(b, '"')
	b = t.appendFields(b, m, keys)
	return append(b, '}')
}

// appendFixedFloat appends a derived quantity (volumes, averages) with eight decimals.
func appendFixedFloat(b []byte, v float64) []byte {
	if math.Abs(v) < 9e10 {
		return appendFixed(b, int64(math.Round(v*1e8)), 8)
	}
	return strconv.AppendFloat(b, v, 'f', 8, 64)
}
