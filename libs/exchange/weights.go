package exchange

import (
	"strconv"
	"time"
)

// KlinesWeight is the weight of one GET /api/v3/klines call.
const KlinesWeight = 2

// ExchangeInfoWeight is the weight of one GET /api/v3/exchangeInfo call, for any symbols.
const ExchangeInfoWeight = 20

// MyTradesWeight is the weight of one signed GET /api/v3/myTrades call.
const MyTradesWeight = 20

// Request weights of the calls, from Binance's Spot API documentation.
const (
	weightTime         = 1
	weightExchangeInfo = ExchangeInfoWeight
	weightKlines       = KlinesWeight
	weightMyTrades     = MyTradesWeight
)

// Ticker24hWeight is the weight of GET /api/v3/ticker/24hr for n symbols (0: all of them).
func Ticker24hWeight(n int) int {
	switch {
	case n == 0:
		return 80
	case n <= 20:
		return 2
	case n <= 100:
		return 40
	default:
		return 80
	}
}

// tickerPriceWeight is the weight of GET /api/v3/ticker/price: 2 with the symbol parameter, 4
// with symbols or without either.
func tickerPriceWeight(single bool) int {
	if single {
		return 2
	}
	return 4
}

// DepthWeight is the weight of GET /api/v3/depth for a limit (0: the default 100).
func DepthWeight(limit int) int {
	switch {
	case limit <= 100:
		return 5
	case limit <= 500:
		return 25
	case limit <= 1000:
		return 50
	default:
		return 250
	}
}

// ValidInterval reports whether s is a Binance kline interval: 1s, 1m, 3m, 5m, 15m, 30m, 1h,
// 2h, 4h, 6h, 8h, 12h, 1d, 3d, 1w or 1M. (3h is not one.)
func ValidInterval(s string) bool {
	switch s {
	case "1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M":
		return true
	}
	return false
}

// IntervalDuration is the length of a kline interval (1M counted as 30 days, for scheduling);
// ok is false when s is not a Binance kline interval.
func IntervalDuration(s string) (d time.Duration, ok bool) {
	if !ValidInterval(s) {
		return 0, false
	}
	unit := map[byte]time.Duration{'s': time.Second, 'm': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour,
		'w': 7 * 24 * time.Hour, 'M': 30 * 24 * time.Hour}[s[len(s)-1]]
	n, _ := strconv.Atoi(s[:len(s)-1])
	return time.Duration(n) * unit, true
}
