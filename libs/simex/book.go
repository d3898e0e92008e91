package simex

import (
	"math"
)

// The order book. A book is a pure function of its 100 ms snapshot number, so the REST depth,
// the book tickers and the depth streams all tell the same story without the exchange keeping
// state: the best prices follow the symbol's price path, every price level has an absolute price
// (in ticks) and a size that changes at its own pace (every 0.5 to 5 s), so consecutive books
// differ in a handful of levels and a diff-depth stream stays small.
const (
	snapMs = 100
	// minLevelPeriod and levelPeriods bound how many snapshots a level keeps its size.
	minLevelPeriod = 5
	levelPeriods   = 46
)

// bookState is the book of one symbol at one snapshot.
type bookState struct {
	m        *market
	snap     int64
	updateID int64
	bestBid  int64
	bestAsk  int64
	midTicks float64
}

// level is one price level: price and size in tick and lot units.
type level struct {
	price, qty int64
}

// snapOf is the snapshot a Unix millisecond falls in.
func snapOf(ms int64) int64 { return floorDiv(ms, snapMs) }

// updateIDOf is the book's lastUpdateId at a snapshot: it grows by ten each snapshot (as if ten
// updates made each one), so a diff's U..u range is contiguous with the previous one's.
func (m *market) updateIDOf(snap int64) int64 { return snap*10 + int64(m.key%1_000_000) }

// book is the symbol's book at Unix millisecond ms.
func (m *market) book(ms int64) bookState { return m.bookAt(snapOf(ms)) }

func (m *market) bookAt(snap int64) bookState {
	midF := m.price(snap*snapMs) * pow10[m.priceDec]
	bk := bookState{m: m, snap: snap, updateID: m.updateIDOf(snap), midTicks: midF}
	ask := int64(math.Floor(midF)) + 1
	for !bk.exists(ask) {
		ask++
	}
	bid := max(1, ask-1-int64(hash2(m.key, uint64(snap))%2))
	for bid > 1 && !bk.exists(bid) {
		bid--
	}
	bk.bestBid, bk.bestAsk = bid, ask
	return bk
}

// exists says whether a price has a level: every tick in a book with few ticks to the price,
// about two in three where there is room for gaps.
func (bk bookState) exists(p int64) bool {
	if bk.midTicks <= 10000 {
		return true
	}
	return hash2(bk.m.key^0x5eed, uint64(p))%3 != 0
}

// qtyAt is the size of a level at a price on one side at this snapshot.
func (bk bookState) qtyAt(asks bool, p int64) int64 {
	l, _ := bk.sizedLevel(asks, p)
	return l.qty
}

// qtyIn is the size of a level in one of its size epochs.
func (bk bookState) qtyIn(asks bool, p, epoch int64) int64 {
	side := uint64(1)
	if asks {
		side = 2
	}
	u := unit(hash3(bk.m.key^side, uint64(p), uint64(epoch)))
	return bk.m.qtyUnits(bk.m.levelQty * (0.05 + 3*u*u))
}

// levels appends up to n levels of one side, best first.
func (bk bookState) levels(dst []level, asks bool, n int) []level {
	p, step := bk.bestBid, int64(-1)
	if asks {
		p, step = bk.bestAsk, 1
	}
	for len(dst) < n && p > 0 {
		if bk.exists(p) {
			dst = append(dst, level{p, bk.qtyAt(asks, p)})
		}
		p += step
	}
	return dst
}

// levelCache keeps each side's levels at the last three snapshots a market's diff-depth
// streams asked for, with each level's size epoch: an event's new book is the next event's old
// one, and most of a book's levels are the last book's (which prices have a level is fixed per
// price, and sizes change every 5 to 50 snapshots). A cache is one market's; its user holds the
// market's streamMu.
type levelCache struct {
	books [2][3]cachedLevels // per side
	last  [2]int             // per side: the book levelsVia returned last
	state [2]bookState       // the last two books asked of book
	next  int                // the state replaced next
}

// book is m.bookAt(snap), kept for the next event (whose old book it is).
func (lc *levelCache) book(m *market, snap int64) bookState {
	for _, bk := range lc.state {
		if bk.m == m && bk.snap == snap {
			return bk
		}
	}
	bk := m.bookAt(snap)
	lc.state[lc.next], lc.next = bk, 1-lc.next
	return bk
}

type levelSlot struct {
	price  int64 // 0: empty (prices are at least one tick)
	lo, hi int64 // qty is the size from snapshot lo to before hi (its size epoch); hi 0: unset
	qty    int64
	period int32
	phase  int32
	hashed bool // the price's existence hash says it has a level (where the book has gaps)
}

// cachedLevels are a side's best n levels at a snapshot.
type cachedLevels struct {
	snap   int64
	n      int
	dense  bool // the book had a level at every tick
	set    bool
	levels []level
	spans  []span // per level: its size's epoch
}

// span is a level size's epoch: from snapshot lo to before hi.
type span struct{ lo, hi int64 }

// sizedLevel is the level at price p (which has one) at bk's snapshot, with its size's epoch.
func (bk *bookState) sizedLevel(asks bool, p int64) (level, span) {
	side := uint64(1)
	if asks {
		side = 2
	}
	h := hash3(bk.m.key^side, uint64(p), 0x9e37)
	period := int64(minLevelPeriod + h%levelPeriods)
	phase := int64((h >> 16) % uint64(period))
	epoch := floorDiv(bk.snap+phase, period)
	return level{p, bk.qtyIn(asks, p, epoch)}, span{epoch*period - phase, (epoch+1)*period - phase}
}

// levelsVia is levels, through lc; with lc it returns the cache's own slice, which the caller
// only reads, and only until its next call for the side but one. A side's levels are built from
// the newest cached book of the side where their price ranges overlap (which prices have a level
// is fixed per price, so the old book lists every level of its range), each size taken on while
// its epoch lasts; prices outside the old range are walked tick by tick.
func (bk bookState) levelsVia(lc *levelCache, dst []level, asks bool, n int) []level {
	if lc == nil {
		return bk.levels(dst, asks, n)
	}
	side := 0
	if asks {
		side = 1
	}
	books := &lc.books[side]
	dense := bk.midTicks <= 10000
	base := -1
	for i := range books {
		c := &books[i]
		if c.set && c.n == n {
			if c.snap == bk.snap {
				lc.last[side] = i
				return c.levels
			}
			if c.dense == dense && len(c.levels) > 0 && (base < 0 || books[base].snap < c.snap) {
				base = i
			}
		}
	}
	// The entry replaced: an unset one, else the oldest; never the base, nor the one last
	// returned (its caller may still read it).
	oldest := -1
	for i := range books {
		if i == base || i == lc.last[side] {
			continue
		}
		if oldest < 0 || !books[i].set || (books[oldest].set && books[i].snap < books[oldest].snap) {
			oldest = i
		}
		if !books[i].set {
			break
		}
	}
	c := &books[oldest]
	out, spans := c.levels[:0], c.spans[:0]
	var old []level
	var oldSpans []span
	if base >= 0 {
		old, oldSpans = books[base].levels, books[base].spans
	}
	// Ranks grow away from the spread on both sides.
	p, step := bk.bestBid, int64(-1)
	if asks {
		p, step = bk.bestAsk, 1
	}
	var lo, hi int64 // old's rank range
	if len(old) > 0 {
		lo, hi = old[0].price*step, old[len(old)-1].price*step
	}
	i := 0
	for len(out) < n && p > 0 {
		if r := p * step; len(old) > 0 && r >= lo && r <= hi {
			for old[i].price*step < r { // r <= hi: some level of old is at or beyond p
				i++
			}
			l, sp := old[i], oldSpans[i]
			if bk.snap < sp.lo || bk.snap >= sp.hi {
				l, sp = bk.sizedLevel(asks, l.price)
			}
			out, spans = append(out, l), append(spans, sp)
			p = l.price + step
			i++
			continue
		}
		if dense || bk.exists(p) {
			l, sp := bk.sizedLevel(asks, p)
			out, spans = append(out, l), append(spans, sp)
		}
		p += step
	}
	c.snap, c.n, c.dense, c.set, c.levels, c.spans = bk.snap, n, dense, true, out, spans
	lc.last[side] = oldest
	return out
}

// appendSide appends up to n [price, qty] levels of one side, best first, as JSON.
func (bk bookState) appendSide(b []byte, m *market, asks bool, n int) []byte {
	var buf [128]level
	return appendLevels(b, m, bk.levels(buf[:0], asks, n))
}

func appendLevels(b []byte, m *market, ls []level) []byte {
	for i, l := range ls {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[', '"')
		b = appendFixed(b, l.price, m.priceDec)
		b = append(b, '"', ',', '"')
		b = appendFixed(b, l.qty, m.qtyDec)
		b = append(b, '"', ']')
	}
	return b
}

// levelQtyUnits is the size of the best level of a side, for tickers.
func (bk bookState) levelQtyUnits(_ *market, asks bool) int64 {
	if asks {
		return bk.qtyAt(true, bk.bestAsk)
	}
	return bk.qtyAt(false, bk.bestBid)
}

// diffSide is what changed on one side between two books, within the best band levels of
// each: levels whose size changed or that came into the band, with their new size, and levels
// that left the side (crossed by the spread) with size 0. A level that only sank below the band
// is not reported: a real exchange would go on streaming its changes, the simulation stops at the
// band, which is deeper than any client samples.
// With lc (the market's cache; nil: none) the books' levels come through it.
func diffSide(dst []level, from, to bookState, asks bool, band int, scratch *[2][]level, lc *levelCache) []level {
	a := from.levelsVia(lc, scratch[0][:0], asks, band)
	b := to.levelsVia(lc, scratch[1][:0], asks, band)
	if lc == nil { // else a and b are the cache's
		scratch[0], scratch[1] = a, b
	}
	better := func(x, y int64) bool { // x is nearer the spread than y
		if asks {
			return x < y
		}
		return x > y
	}
	var worst int64 // the band's far edge in the new book
	if len(b) > 0 {
		worst = b[len(b)-1].price
	}
	full := len(b) == band
	// Ranks grow away from the spread: x is better than y when its rank is lower.
	dir := int64(-1)
	if asks {
		dir = 1
	}
	worstRank := worst * dir
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i].price*dir < b[j].price*dir):
			// Gone from the new band: crossed, unless it only sank below the band's edge.
			if !full || a[i].price*dir < worstRank {
				dst = append(dst, level{a[i].price, 0})
			}
			i++
		case i == len(a) || b[j].price*dir < a[i].price*dir:
			dst = append(dst, b[j])
			j++
		default:
			if a[i].qty != b[j].qty {
				dst = append(dst, b[j])
			}
			i++
			j++
		}
	}
	// A move of more than the band crosses prices below the old band too, which a client may
	// still hold from an earlier book: they are gone as well.
	if len(a) == band {
		edge, best := a[len(a)-1].price, to.bestBid
		if asks {
			best = to.bestAsk
		}
		for p := edge; ; {
			if asks {
				p++
			} else {
				p--
			}
			if !better(p, best) || p <= 0 {
				break
			}
			if from.exists(p) {
				dst = append(dst, level{p, 0})
			}
		}
	}
	return dst
}
