package simex

import (
	"math"
	"strconv"
	"testing"
)

// TestAppendFixedIsStrconv: the formatted numbers are strconv's, at every decimal count, at the
// edges of the scaled path and beyond it.
func TestAppendFixedIsStrconv(t *testing.T) {
	t.Parallel()
	want := func(units int64, dec int) string {
		neg := units < 0
		u := uint64(units)
		if neg {
			u = -u
		}
		ip, fp := u/uint64(ipow10[dec]), u%uint64(ipow10[dec])
		s := strconv.FormatUint(ip, 10) + "." + strconv.FormatUint(fp+uint64(ipow10[dec]), 10)[1:] + "00000000"[:8-dec]
		if neg {
			s = "-" + s
		}
		return s
	}
	vals := []int64{0, 1, 9, 10, 99, 100, 101, 12345678, 99999999, 100000000, 123456789012,
		math.MaxInt64 / 100000000, math.MaxInt64/100000000 + 1, math.MaxInt64 / 1000, math.MaxInt64}
	for dec := 0; dec <= 8; dec++ {
		for _, v := range vals {
			for _, u := range []int64{v, -v} {
				if got, w := string(appendFixed(nil, u, dec)), want(u, dec); got != w {
					t.Fatalf("appendFixed(%d, %d) = %s, want %s", u, dec, got, w)
				}
			}
		}
	}
	for _, v := range []int64{0, 7, 10, 99, 100, 999, 1000, 1234567890, math.MaxInt64, -5, -100} {
		if got := string(appendInt(nil, v)); got != strconv.FormatInt(v, 10) {
			t.Fatalf("appendInt(%d) = %s", v, got)
		}
	}
}

// TestWalkMemoIsTheWalk: prices through a walk memo, over a ticker's sample series and denser
// ones, are the walk's own, bit for bit.
func TestWalkMemoIsTheWalk(t *testing.T) {
	t.Parallel()
	e, err := New(Config{Symbols: []string{"BTCUSDT", "ETHBTC", "PEPEUSDT", "SOLETH"}, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range e.symbols {
		for _, spacing := range []int64{msDay / (tickerSamples + 1), 997, 1, 3_600_000} {
			var memo [2]walkMemo
			start := int64(1_748_000_000_123) - 50*spacing
			for i := range int64(200) {
				ms := start + i*spacing
				if got, want := m.ticksVia(ms, &memo), m.ticks(ms); got != want {
					t.Fatalf("%s spacing %d point %d: %d, want %d", m.symbol, spacing, i, got, want)
				}
				if got, want := m.baseW.logAtVia(ms, &memo[0]), m.baseW.logAt(ms); math.Float64bits(got) != math.Float64bits(want) {
					t.Fatalf("%s spacing %d point %d: log %v, want %v", m.symbol, spacing, i, got, want)
				}
			}
		}
	}
}
