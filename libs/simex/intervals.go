package simex

import "time"

const (
	msSecond = int64(1000)
	msMinute = 60 * msSecond
	msHour   = 60 * msMinute
	msDay    = 24 * msHour
	// Weekly candles open on Monday; the Unix epoch was a Thursday.
	msWeekShift = 4 * msDay
)

// intervalMs are the fixed-length kline intervals; "1M" (calendar months) is handled apart.
var intervalMs = map[string]int64{
	"1s": msSecond, "1m": msMinute, "3m": 3 * msMinute, "5m": 5 * msMinute, "15m": 15 * msMinute,
	"30m": 30 * msMinute, "1h": msHour, "2h": 2 * msHour, "4h": 4 * msHour, "6h": 6 * msHour,
	"8h": 8 * msHour, "12h": 12 * msHour, "1d": msDay, "3d": 3 * msDay, "1w": 7 * msDay,
}

// interval is a kline interval: its candles' alignment and length.
type interval struct {
	name string
	ms   int64 // 0 for 1M
	idx  uint64
}

func parseInterval(s string) (interval, bool) {
	if s == "1M" {
		return interval{name: s, idx: 99}, true
	}
	d, ok := intervalMs[s]
	return interval{name: s, ms: d, idx: uint64(d)}, ok
}

// openOf is the open time of the candle containing ms.
func (iv interval) openOf(ms int64) int64 {
	switch {
	case iv.ms == 0:
		t := time.UnixMilli(ms).UTC()
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	case iv.name == "1w":
		return floorDiv(ms-msWeekShift, iv.ms)*iv.ms + msWeekShift
	default:
		return floorDiv(ms, iv.ms) * iv.ms
	}
}

// next is the open time of the candle after the one opening at open.
func (iv interval) next(open int64) int64 {
	if iv.ms == 0 {
		return time.UnixMilli(open).UTC().AddDate(0, 1, 0).UnixMilli()
	}
	return open + iv.ms
}

// prev is the open time of the candle before the one opening at open.
func (iv interval) prev(open int64) int64 {
	if iv.ms == 0 {
		return time.UnixMilli(open).UTC().AddDate(0, -1, 0).UnixMilli()
	}
	return open - iv.ms
}
