package simex

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// authenticate checks a signed request as Binance does: the API key header, the mandatory
// timestamp and signature, the HMAC-SHA256 of the query string (without signature) under the
// secret, and timestamp against the server clock and recvWindow.
func (e *Exchange) authenticate(r *http.Request, q url.Values, now time.Time) *apiError {
	key := r.Header.Get("X-MBX-APIKEY")
	if key == "" {
		return &apiError{http.StatusUnauthorized, -2014, "API-key format invalid."}
	}
	if e.cfg.APIKey == "" || !hmac.Equal([]byte(key), []byte(e.cfg.APIKey)) {
		return &apiError{http.StatusUnauthorized, -2015, "Invalid API-key, IP, or permissions for action."}
	}
	ts, ok, err := intParam(q, "timestamp")
	if err != nil {
		return err
	}
	if !ok {
		return mandatory("timestamp")
	}
	window := int64(5000)
	if rw, ok, err := intParam(q, "recvWindow"); err != nil {
		return err
	} else if ok {
		if rw > 60000 {
			return badRequest(-1131, "recvWindow must be less than 60000")
		}
		window = rw
	}
	sig := q.Get("signature")
	if sig == "" {
		return mandatory("signature")
	}
	m := hmac.New(sha256.New, []byte(e.cfg.APISecret))
	m.Write([]byte(unsignedQuery(r.URL.RawQuery)))
	want := hex.EncodeToString(m.Sum(nil))
	if !hmac.Equal([]byte(strings.ToLower(sig)), []byte(want)) {
		return badRequest(-1022, "Signature for this request is not valid.")
	}
	server := now.UnixMilli()
	switch {
	case ts >= server+1000:
		return badRequest(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
	case server-ts > window:
		return badRequest(-1021, "Timestamp for this request is outside of the recvWindow.")
	}
	return nil
}

// unsignedQuery is the raw query string without its signature parameter: what was signed.
func unsignedQuery(raw string) string {
	parts := strings.Split(raw, "&")
	kept := parts[:0]
	for _, p := range parts {
		if !strings.HasPrefix(p, "signature=") {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, "&")
}

// The account's trades. Each symbol's time line is cut into slots of accountTradeMs; slot k holds
// trade id k at a hashed offset inside the slot, so ids increase with time and any range is
// computed directly. Trades exist from Config.TradesSince up to now; two consecutive ids share
// an order.

const orderIDBase = 4_000_000_000

func (m *market) tradeTime(k int64) int64 {
	return k*m.accountTradeMs + int64(unit(hash3(m.key, 0x7a, uint64(k)))*float64(m.accountTradeMs))
}

// firstTradeAt is the first trade id at or after ms.
func (m *market) firstTradeAt(ms int64) int64 {
	k := floorDiv(ms, m.accountTradeMs)
	if m.tradeTime(k) < ms {
		k++
	}
	return k
}

// lastTradeAt is the last trade id at or before ms.
func (m *market) lastTradeAt(ms int64) int64 {
	k := floorDiv(ms, m.accountTradeMs)
	if m.tradeTime(k) > ms {
		k--
	}
	return k
}

func (e *Exchange) myTrades(r *http.Request, q url.Values, now time.Time) (int, []byte) {
	if err := e.authenticate(r, q, now); err != nil {
		return err.reply()
	}
	m, err := e.marketParam(q)
	if err != nil {
		return err.reply()
	}
	limit, err := limitParam(q, 500, 1000)
	if err != nil {
		return err.reply()
	}
	fromID, hasFrom, err := intParam(q, "fromId")
	if err != nil {
		return err.reply()
	}
	start, hasStart, err := intParam(q, "startTime")
	if err != nil {
		return err.reply()
	}
	end, hasEnd, err := intParam(q, "endTime")
	if err != nil {
		return err.reply()
	}
	if hasFrom && (hasStart || hasEnd) {
		return badRequest(-1128, "Combination of optional parameters invalid.").reply()
	}
	switch {
	case hasStart && hasEnd && end-start > msDay:
		return badRequest(-1127, "More than 24 hours between startTime and endTime.").reply()
	case hasStart && hasEnd && start > end:
		return badRequest(-1023, "Start time is greater than end time.").reply()
	case hasStart && !hasEnd:
		end, hasEnd = start+msDay, true
	case hasEnd && !hasStart:
		start, hasStart = end-msDay, true
	}
	lo := m.firstTradeAt(e.cfg.TradesSince.UnixMilli())
	hi := m.lastTradeAt(now.UnixMilli())
	switch {
	case hasFrom:
		lo = max(lo, fromID)
		hi = min(hi, lo+limit-1)
	case hasStart:
		lo = max(lo, m.firstTradeAt(start))
		hi = min(hi, m.lastTradeAt(end), lo+limit-1)
	default: // the most recent
		lo = max(lo, hi-limit+1)
	}
	b := make([]byte, 0, 16+max(0, hi-lo+1)*320)
	b = append(b, '[')
	for k := lo; k <= hi; k++ {
		if k > lo {
			b = append(b, ',')
		}
		b = m.appendTrade(b, k)
	}
	return http.StatusOK, append(b, ']')
}

var commissionRate = decimal.New(1, -3) // 0.1%

// accountTrade is trade id k of the account in m: what myTrades and the user data stream's
// executionReport both describe.
type accountTrade struct {
	id, orderID, timeMs  int64
	priceTicks, qtyUnits int64
	price, qty, quoteQty decimal.Decimal
	commission           decimal.Decimal
	commissionAsset      string
	isBuyer, isMaker     bool
}

func (m *market) accountTrade(k int64) accountTrade {
	t := accountTrade{id: k, orderID: orderIDBase + k/2, timeMs: m.tradeTime(k)}
	h := hash3(m.key, 0x7b, uint64(k))
	order := hash3(m.key, 0x7c, uint64(k/2))
	t.isBuyer, t.isMaker = order&1 == 1, h>>63 == 1
	t.priceTicks = m.ticks(t.timeMs)
	t.qtyUnits = m.qtyUnits(m.levelQty * (0.02 + 0.5*unit(h)))
	t.price = decimal.New(t.priceTicks, -int32(m.priceDec))
	t.qty = decimal.New(t.qtyUnits, -int32(m.qtyDec))
	t.quoteQty = t.price.Mul(t.qty)
	t.commission, t.commissionAsset = t.qty.Mul(commissionRate).Truncate(8), m.base
	if !t.isBuyer {
		t.commission, t.commissionAsset = t.quoteQty.Mul(commissionRate).Truncate(8), m.quote
	}
	return t
}

func (m *market) appendTrade(b []byte, k int64) []byte {
	t := m.accountTrade(k)
	b = append(b, `{"symbol":"`...)
	b = append(b, m.symbol...)
	b = append(b, `","id":`...)
	b = appendInt(b, k)
	b = append(b, `,"orderId":`...)
	b = appendInt(b, t.orderID)
	b = append(b, `,"orderListId":-1,"price":"`...)
	b = appendFixed(b, t.priceTicks, m.priceDec)
	b = append(b, `","qty":"`...)
	b = appendFixed(b, t.qtyUnits, m.qtyDec)
	b = append(b, `","quoteQty":"`...)
	b = append(b, t.quoteQty.StringFixed(8)...)
	b = append(b, `","commission":"`...)
	b = append(b, t.commission.StringFixed(8)...)
	b = append(b, `","commissionAsset":"`...)
	b = append(b, t.commissionAsset...)
	b = append(b, `","time":`...)
	b = appendInt(b, t.timeMs)
	b = append(b, `,"isBuyer":`...)
	b = appendBool(b, t.isBuyer)
	b = append(b, `,"isMaker":`...)
	b = appendBool(b, t.isMaker)
	return append(b, `,"isBestMatch":true}`...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, "true"...)
	}
	return append(b, "false"...)
}
