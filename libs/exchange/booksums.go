package exchange

import (
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"time"

	"github.com/shopspring/decimal"
)

// BookSums is what a sample reads of a live local book: the best prices as sent and the
// quantities summed exactly, computed from the levels' texts without a decimal per level (a tick
// reads every book it holds at once; building 200 decimals a book made that pass the tick's
// largest cost).
type BookSums struct {
	LastUpdateID int64
	// BestBid and BestAsk are the best levels' prices; zero when the side is empty.
	BestBid, BestAsk     decimal.Decimal
	BidLevels, AskLevels int
	// BidQty and AskQty sum up to depth levels a side; TopBidQty and TopAskQty up to top.
	BidQty, AskQty       decimal.Decimal
	TopBidQty, TopAskQty decimal.Decimal
}

// Sums is a symbol's book as BookSums over up to depth levels a side (top of them for the Top
// sums), its state and its age, like Book; ok is false unless the book is live. A level that
// cannot be read as a decimal resyncs the book, as Book does.
func (b *Books) Sums(symbol string, depth, top int) (s BookSums, state string, age time.Duration, ok bool) {
	b.mu.Lock()
	bk, state, age, live := b.liveLocked(symbol)
	if !live {
		b.mu.Unlock()
		return s, state, age, false
	}
	s.LastUpdateID = bk.lastID
	var bidQty, askQty, topBid, topAsk exactSum
	bids, asks := bk.bids[:min(depth, len(bk.bids))], bk.asks[:min(depth, len(bk.asks))]
	for i, l := range bids {
		q := bk.textOf(&bk.texts[l.at].qty, longKey{qty: true, key: l.key})
		bidQty.add(q)
		if i < top {
			topBid.add(q)
		}
	}
	for i, l := range asks {
		q := bk.textOf(&bk.texts[l.at].qty, longKey{ask: true, qty: true, key: l.key})
		askQty.add(q)
		if i < top {
			topAsk.add(q)
		}
	}
	var bidText, askText string
	if len(bids) > 0 {
		bidText = string(bk.textOf(&bk.texts[bids[0].at].price, longKey{key: bids[0].key}))
	}
	if len(asks) > 0 {
		askText = string(bk.textOf(&bk.texts[asks[0].at].price, longKey{ask: true, key: asks[0].key}))
	}
	b.mu.Unlock()
	s.BidLevels, s.AskLevels = len(bids), len(asks)

	var err error
	parse := func(text string) decimal.Decimal {
		if text == "" || err != nil {
			return decimal.Decimal{}
		}
		d, perr := decimal.NewFromString(text)
		if perr != nil {
			err = fmt.Errorf("price %q: %w", text, perr)
		}
		return d
	}
	s.BestBid, s.BestAsk = parse(bidText), parse(askText)
	for _, sum := range []struct {
		to  *decimal.Decimal
		sum *exactSum
	}{{&s.BidQty, &bidQty}, {&s.AskQty, &askQty}, {&s.TopBidQty, &topBid}, {&s.TopAskQty, &topAsk}} {
		if err == nil {
			*sum.to, err = sum.sum.value()
		}
	}
	if err != nil {
		b.unreadable(symbol, bk, err)
		return BookSums{}, BookSyncing, age, false
	}
	return s, state, age, true
}

// textOf is a level text's bytes (in the book: valid until the book changes; b.mu held).
func (bk *localBook) textOf(t *levelText, key longKey) []byte {
	if t.n == longText {
		return []byte(bk.long[key])
	}
	return t.b[:t.n]
}

// sumScale is the fixed scale exactSum adds at: Binance's quantities have at most 8 fraction
// digits.
const sumScale = 8

var pow10u = [sumScale + 1]uint64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8}

// exactSum adds decimal texts exactly: plain decimals of at most sumScale fraction digits and 19
// significant digits as 128-bit integers at scale sumScale, anything else as decimals.
type exactSum struct {
	hi, lo uint64
	rest   decimal.Decimal
	err    error
}

func (s *exactSum) add(t []byte) {
	var m uint64
	scale, digits, dot := 0, 0, false
	for _, c := range t {
		switch {
		case c >= '0' && c <= '9':
			if m > (math.MaxUint64-9)/10 {
				s.addSlow(t)
				return
			}
			m = m*10 + uint64(c-'0')
			digits++
			if dot {
				scale++
			}
		case c == '.' && !dot:
			dot = true
		default:
			s.addSlow(t)
			return
		}
	}
	if digits == 0 || scale > sumScale {
		s.addSlow(t)
		return
	}
	h, l := bits.Mul64(m, pow10u[sumScale-scale])
	var carry uint64
	s.lo, carry = bits.Add64(s.lo, l, 0)
	s.hi += h + carry
}

func (s *exactSum) addSlow(t []byte) {
	d, err := decimal.NewFromString(string(t))
	if err != nil {
		if s.err == nil {
			s.err = fmt.Errorf("quantity %q: %w", t, err)
		}
		return
	}
	s.rest = s.rest.Add(d)
}

func (s *exactSum) value() (decimal.Decimal, error) {
	if s.err != nil {
		return decimal.Decimal{}, s.err
	}
	var v decimal.Decimal
	if s.hi == 0 && s.lo <= math.MaxInt64 {
		v = decimal.New(int64(s.lo), -sumScale)
	} else {
		n := new(big.Int).SetUint64(s.hi)
		n.Lsh(n, 64).Or(n, new(big.Int).SetUint64(s.lo))
		v = decimal.NewFromBigInt(n, -sumScale)
	}
	if s.rest.IsZero() {
		return v, nil
	}
	return v.Add(s.rest), nil
}
