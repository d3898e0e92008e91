package simex

import (
	"slices"
	"sort"
	"testing"
	"time"

	"cryptopill.dev/jobs/libs/testkit/clocktest"
)

// TestDiffsRebuildTheBook applies diff after diff, over steps from 100 ms to several seconds
// (price moves far beyond the band), to a book built from one snapshot, and checks it against
// the exchange's own book every time: the stream and REST depth tell the same story.
func TestDiffsRebuildTheBook(t *testing.T) {
	t.Parallel()
	const band = 100
	e, err := New(Config{Symbols: []string{"BTCUSDT", "ETHBTC", "XRPUSDT", "SHIBUSDT"}, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	for name, at := range clocktest.Instants() {
		for _, m := range e.symbols {
			s0 := snapOf(at.UnixMilli())
			book := map[bool]map[int64]int64{false: {}, true: {}}
			for _, asks := range []bool{false, true} {
				for _, l := range m.bookAt(s0).levels(nil, asks, band) {
					book[asks][l.price] = l.qty
				}
			}
			var scratch [2][]level
			prev := s0
			for step := 1; step < 150; step++ {
				s := prev + int64(1+step%7)
				if step%50 == 0 {
					s += int64(time.Minute / (snapMs * time.Millisecond)) // a long jump: the price moves far
				}
				from, to := m.bookAt(prev), m.bookAt(s)
				if to.updateID <= from.updateID {
					t.Fatalf("%s %s: updateID %d after %d", name, m.symbol, to.updateID, from.updateID)
				}
				for _, asks := range []bool{false, true} {
					for _, l := range diffSide(nil, from, to, asks, band, &scratch, nil) {
						if l.qty == 0 {
							delete(book[asks], l.price)
						} else {
							book[asks][l.price] = l.qty
						}
					}
				}
				prev = s
				for _, asks := range []bool{false, true} {
					ps := make([]int64, 0, len(book[asks]))
					for p := range book[asks] {
						ps = append(ps, p)
					}
					sort.Slice(ps, func(i, j int) bool { return (ps[i] < ps[j]) == asks })
					want := to.levels(nil, asks, band)
					if len(ps) < len(want) {
						t.Fatalf("%s %s step %d asks=%v: %d levels, want at least %d", name, m.symbol, step, asks, len(ps), len(want))
					}
					for i, w := range want {
						if ps[i] != w.price || book[asks][ps[i]] != w.qty {
							t.Fatalf("%s %s step %d asks=%v level %d: local %d/%d, exchange %d/%d", name, m.symbol, step, asks, i, ps[i], book[asks][ps[i]], w.price, w.qty)
						}
					}
				}
			}
		}
	}
}

// TestFoldedDiffFitsAnyStartInItsWindow: a merged (1 s, or catch-up) event applied to the book
// of any snapshot inside its window gives the window's last book, as a client applying the
// event that straddles its snapshot's lastUpdateId needs.
func TestFoldedDiffFitsAnyStartInItsWindow(t *testing.T) {
	t.Parallel()
	const band = 100
	e, err := New(Config{Symbols: []string{"BTCUSDT", "ETHUSDT"}, Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	var scratch [2][]level
	f := newDiffFold()
	for _, m := range e.symbols {
		from := snapOf(clocktest.Afternoon.UnixMilli())
		for _, width := range []int64{2, 10, 37} {
			to := from + width
			bids, asks := f.diff(m, from, to, band, &scratch, nil)
			want := m.bookAt(to)
			for start := from; start < to; start++ {
				for i, asksSide := range []bool{false, true} {
					book := map[int64]int64{}
					for _, l := range m.bookAt(start).levels(nil, asksSide, band) {
						book[l.price] = l.qty
					}
					for _, l := range [][]level{bids, asks}[i] {
						if l.qty == 0 {
							delete(book, l.price)
						} else {
							book[l.price] = l.qty
						}
					}
					for j, w := range want.levels(nil, asksSide, band) {
						if book[w.price] != w.qty {
							t.Fatalf("%s window %d start %d asks=%v level %d (%d): %d, want %d", m.symbol, width, start-from, asksSide, j, w.price, book[w.price], w.qty)
						}
					}
				}
			}
			from = to
		}
	}
}

// BenchmarkTickerEvent is one <symbol>@ticker event: what 2,000 streamed symbols cost each second.
func BenchmarkTickerEvent(b *testing.B) {
	e, err := New(Config{Symbols: GeneratedSymbols(10), Seed: 7})
	if err != nil {
		b.Fatal(err)
	}
	m := e.symbols[3]
	ms := clocktest.Afternoon.UnixMilli()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		ms += 1000
		buf = m.appendTickerEvent(buf[:0], false, ms)
	}
}

// TestLevelCacheIsTheBook: levels through a stream's level cache are the book's levels, for
// consecutive snapshots, repeats, jumps far ahead and back, dense and sparse books.
func TestLevelCacheIsTheBook(t *testing.T) {
	t.Parallel()
	e, err := New(Config{Symbols: []string{"BTCUSDT", "ETHBTC", "XRPUSDT", "SHIBUSDT", "PEPEUSDT"}, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	for name, at := range clocktest.Instants() {
		for _, m := range e.symbols {
			lc := new(levelCache)
			var prev [2]struct{ got, want []level }
			s := snapOf(at.UnixMilli())
			for step := range 400 {
				switch {
				case step%97 == 0:
					s += 36000 // an hour ahead
				case step%61 == 0:
					s -= 500
				case step%5 != 0: // else the same snapshot again
					s += int64(1 + step%3)
				}
				bk := m.bookAt(s)
				for side, asks := range []bool{false, true} {
					for _, n := range []int{100, 20} {
						got, want := bk.levelsVia(lc, nil, asks, n), bk.levels(nil, asks, n)
						// The side's previous answer still reads as it did (diffSide reads the
						// old book's after asking for the new one).
						if p := prev[side]; p.got != nil && !slices.Equal(p.got, p.want) {
							t.Fatalf("%s %s snapshot %d asks=%v: the previous answer changed", name, m.symbol, s, asks)
						}
						prev[side] = struct{ got, want []level }{got, want}
						if len(got) != len(want) {
							t.Fatalf("%s %s snapshot %d asks=%v n=%d: %d levels, want %d", name, m.symbol, s, asks, n, len(got), len(want))
						}
						for i := range want {
							if got[i] != want[i] {
								t.Fatalf("%s %s snapshot %d asks=%v n=%d level %d: %v, want %v", name, m.symbol, s, asks, n, i, got[i], want[i])
							}
						}
					}
				}
			}
		}
	}
}

// BenchmarkDiffEvent is one <symbol>@depth@100ms event's diff over 2,000 markets in turn (each
// market's cache cold, as a stream's is between its events).
func BenchmarkDiffEvent(b *testing.B) {
	e, err := New(Config{Symbols: GeneratedSymbols(2000), Seed: 7})
	if err != nil {
		b.Fatal(err)
	}
	var scratch [2][]level
	f := newDiffFold()
	for _, m := range e.symbols {
		m.levels = new(levelCache)
	}
	snap := snapOf(clocktest.Afternoon.UnixMilli())
	i := 0
	for b.Loop() {
		m := e.symbols[i%len(e.symbols)]
		if i%len(e.symbols) == 0 {
			snap++
		}
		f.diff(m, snap-1, snap, 100, &scratch, m.levels)
		i++
	}
}

// TestFoldedDiffIsEachPriceLastChange: a folded event holds each price's last change over its
// window, best first, through the level cache or not.
func TestFoldedDiffIsEachPriceLastChange(t *testing.T) {
	t.Parallel()
	const band = 100
	e, err := New(Config{Symbols: []string{"BTCUSDT", "ETHBTC", "SHIBUSDT"}, Seed: 13})
	if err != nil {
		t.Fatal(err)
	}
	var scratch [2][]level
	f := newDiffFold()
	for _, m := range e.symbols {
		lc := new(levelCache)
		from := snapOf(clocktest.Afternoon.UnixMilli())
		for _, width := range []int64{2, 3, 10, 100} {
			to := from + width
			want := [2]map[int64]int64{{}, {}}
			for sn := from + 1; sn <= to; sn++ {
				for i, asks := range []bool{false, true} {
					for _, l := range diffSide(nil, m.bookAt(sn-1), m.bookAt(sn), asks, band, &scratch, nil) {
						want[i][l.price] = l.qty
					}
				}
			}
			for _, c := range []*levelCache{nil, lc} {
				bids, asks := f.diff(m, from, to, band, &scratch, c)
				for i, got := range [][]level{bids, asks} {
					if len(got) != len(want[i]) {
						t.Fatalf("%s window %d side %d: %d levels, want %d", m.symbol, width, i, len(got), len(want[i]))
					}
					for j, l := range got {
						if q, ok := want[i][l.price]; !ok || q != l.qty {
							t.Fatalf("%s window %d side %d level %d: %v, want qty %d (listed %v)", m.symbol, width, i, j, l, q, ok)
						}
						if j > 0 && (l.price > got[j-1].price) != (i == 1) {
							t.Fatalf("%s window %d side %d level %d: %v after %v, not best first", m.symbol, width, i, j, l, got[j-1])
						}
					}
				}
			}
			from = to
		}
	}
}
