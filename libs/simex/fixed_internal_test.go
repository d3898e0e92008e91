package simex

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
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

// Every write round lands just past a boundary of the exchange's clock, wherever the last one
// ended, so a 100 ms stream's rounds never fall on either side of a boundary by jitter.
func TestWriteRoundsFollowTheClocksBoundaries(t *testing.T) {
	const iv = 100 * time.Millisecond
	base := time.Date(2026, 12, 2, 15, 0, 0, 0, time.UTC)
	for _, off := range []time.Duration{0, time.Millisecond, 5 * time.Millisecond, 50 * time.Millisecond,
		94 * time.Millisecond, 96 * time.Millisecond, 99*time.Millisecond + 999*time.Microsecond} {
		now := base.Add(off)
		d := nextRound(now, iv)
		at := now.Add(d)
		if got := at.Sub(at.Truncate(iv)); got != iv/20 {
			t.Errorf("from +%v: round at +%v past a boundary, want %v", off, got, iv/20)
		}
		if d < iv/10 || d > iv+iv/10 {
			t.Errorf("from +%v: next round in %v", off, d)
		}
	}
}

// The 1 s streams of a connection spread over its rounds, and StreamPhase says where each is.
func TestOneSecondStreamsSpreadOverTheRounds(t *testing.T) {
	e, err := New(Config{Symbols: GeneratedSymbols(200)})
	if err != nil {
		t.Fatal(err)
	}
	phases := map[int64]int{}
	for _, sym := range GeneratedSymbols(200) {
		name := strings.ToLower(sym) + "@ticker"
		s, err := e.parseStream(name, 12345)
		if err != nil {
			t.Fatal(err)
		}
		phases[s.phase]++
		if got := StreamPhase(name); got != time.Duration(s.phase)*snapMs*time.Millisecond {
			t.Errorf("%s: StreamPhase %v, phase %d", name, got, s.phase)
		}
		if floorMod(s.last-s.phase, s.every) != 0 {
			t.Errorf("%s: last %d off its phase %d", name, s.last, s.phase)
		}
	}
	if len(phases) < 10 {
		t.Errorf("200 ticker streams fall on %d of 10 rounds: %v", len(phases), phases)
	}
	for n := range 5 {
		s, err := e.parseStream(strings.ToLower(GeneratedSymbols(1)[0])+"@depth@100ms", int64(n))
		if err != nil || s.phase != 0 {
			t.Errorf("a 100 ms stream: phase %v, %v", s, err)
		}
	}
}
