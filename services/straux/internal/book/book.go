// Package book turns order-book snapshots into a period's sample (DOMAIN.md §2): mid price,
// spread in basis points, top-5 liquidity imbalance, total bid and ask volume, and the quality
// flags. Prices and volumes stay decimal (they are stored as numeric); the ratios are float64.
package book

import (
	"time"

	"github.com/shopspring/decimal"

	"cryptopill.dev/jobs/libs/exchange"
)

// Quality flags of a sample.
const (
	FlagEmptyBook        = "empty_book"
	FlagLowSamples       = "low_samples"
	FlagIrregularSpacing = "irregular_spacing"
	// FlagKlineBackfill marks a sample reconstructed from a closed 1m kline's close instead of
	// an order book (see the backfill in package store): it has a mid and nothing else.
	FlagKlineBackfill = "kline_backfill"
	// FlagRestFallback marks a sample taken by a REST depth call in stream mode: the symbol's
	// local book was not live (syncing after a gap or reconnect, stale, or not held).
	FlagRestFallback = "rest_fallback"
)

// Sources of a sample's order book.
const (
	SourceStream = "stream" // a local book fed by the diff-depth stream
	SourceRest   = "rest"   // a REST depth call
)

// TopLevels is how many levels each side the imbalance looks at.
const TopLevels = 5

// Snapshot is what one order book says.
type Snapshot struct {
	Mid, BestBid, BestAsk decimal.Decimal
	SpreadBps             float64
	Imbalance             float64
	BidVol, AskVol        decimal.Decimal
}

var two = decimal.NewFromInt(2)

// Measure reads one order book. ok is false when either side is empty (or the best ask is not
// above zero): there is no mid then.
func Measure(ob *exchange.OrderBook) (s Snapshot, ok bool) {
	if ob == nil || len(ob.Bids) == 0 || len(ob.Asks) == 0 {
		return s, false
	}
	var sums exchange.BookSums
	sums.BidLevels, sums.AskLevels = len(ob.Bids), len(ob.Asks)
	sums.BestBid, sums.BestAsk = ob.Bids[0].Price, ob.Asks[0].Price
	for i, l := range ob.Bids {
		sums.BidQty = sums.BidQty.Add(l.Qty)
		if i < TopLevels {
			sums.TopBidQty = sums.TopBidQty.Add(l.Qty)
		}
	}
	for i, l := range ob.Asks {
		sums.AskQty = sums.AskQty.Add(l.Qty)
		if i < TopLevels {
			sums.TopAskQty = sums.TopAskQty.Add(l.Qty)
		}
	}
	return MeasureSums(sums)
}

// MeasureSums is Measure of a book read as sums (exchange.Books.Sums over TopLevels top levels):
// the same snapshot, without a decimal per level.
func MeasureSums(b exchange.BookSums) (s Snapshot, ok bool) {
	if b.BidLevels == 0 || b.AskLevels == 0 {
		return s, false
	}
	bid, ask := b.BestBid, b.BestAsk
	if !bid.IsPositive() || !ask.IsPositive() {
		return s, false
	}
	s.BestBid, s.BestAsk = bid, ask
	s.Mid = bid.Add(ask).Div(two)
	mid, _ := s.Mid.Float64()
	spread, _ := ask.Sub(bid).Float64()
	s.SpreadBps = 10000 * spread / mid
	s.BidVol, s.AskVol = b.BidQty, b.AskQty
	if tot := b.TopBidQty.Add(b.TopAskQty); tot.IsPositive() {
		s.Imbalance, _ = b.TopBidQty.Sub(b.TopAskQty).Div(tot).Float64()
	}
	return s, true
}

// Sample is one symbol's period: the aggregate of its snapshots, or the reason there is none.
type Sample struct {
	Symbol      string
	PeriodStart time.Time
	// Valid is false when no snapshot had a book; Mid… are zero then and Reason says why.
	Valid                bool
	Mid, MidMin, MidMax  decimal.Decimal
	BestBid, BestAsk     decimal.Decimal
	SpreadBps, Imbalance float64
	BidVol, AskVol       decimal.Decimal
	NSnapshots           int
	Flags                []string
	Reason               string
	SampledAt            time.Time
	// Source is where the book came from (SourceStream, SourceRest); BookAge, for a stream
	// sample, the oldest of its snapshots' book ages (time since the book's newest event).
	Source  string
	BookAge time.Duration
}

// Aggregate is the sample of one period from its snapshots (empty books are counted apart):
// mean mid, min and max mid, the last snapshot's best bid and ask, mean spread and imbalance,
// total bid and ask volume. wanted is how many snapshots the period asked for: fewer than
// min(2, wanted) good ones flag low_samples.
func Aggregate(symbol string, periodStart time.Time, snaps []Snapshot, emptyBooks, wanted int) Sample {
	s := Sample{Symbol: symbol, PeriodStart: periodStart, NSnapshots: len(snaps)}
	if emptyBooks > 0 {
		s.Flags = append(s.Flags, FlagEmptyBook)
	}
	if len(snaps) < min(2, wanted) {
		s.Flags = append(s.Flags, FlagLowSamples)
	}
	if len(snaps) == 0 {
		s.Reason = FlagEmptyBook
		return s
	}
	s.Valid = true
	n := decimal.NewFromInt(int64(len(snaps)))
	s.MidMin, s.MidMax = snaps[0].Mid, snaps[0].Mid
	var sum decimal.Decimal
	for _, sn := range snaps {
		sum = sum.Add(sn.Mid)
		if sn.Mid.LessThan(s.MidMin) {
			s.MidMin = sn.Mid
		}
		if sn.Mid.GreaterThan(s.MidMax) {
			s.MidMax = sn.Mid
		}
		s.SpreadBps += sn.SpreadBps
		s.Imbalance += sn.Imbalance
		s.BidVol = s.BidVol.Add(sn.BidVol)
		s.AskVol = s.AskVol.Add(sn.AskVol)
	}
	s.Mid = sum.DivRound(n, 16)
	s.SpreadBps /= float64(len(snaps))
	s.Imbalance /= float64(len(snaps))
	last := snaps[len(snaps)-1]
	s.BestBid, s.BestAsk = last.BestBid, last.BestAsk
	return s
}

// Failed is the sample of a symbol that could not be sampled this period.
func Failed(symbol string, periodStart time.Time, reason string) Sample {
	return Sample{Symbol: symbol, PeriodStart: periodStart, Reason: reason}
}

// MarkSpacing flags irregular_spacing when the previous good sample is more than two periods
// before this one. A symbol without a previous sample (its first) is not flagged.
func (s *Sample) MarkSpacing(prev time.Time, period time.Duration) {
	if s.Valid && !prev.IsZero() && s.PeriodStart.Sub(prev) > 2*period {
		s.Flags = append(s.Flags, FlagIrregularSpacing)
	}
}
