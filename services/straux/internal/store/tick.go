package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"cryptopill.dev/jobs/libs/exchange"
	"cryptopill.dev/jobs/services/straux/internal/book"
	"cryptopill.dev/jobs/services/straux/internal/idhr"
	"cryptopill.dev/jobs/services/straux/internal/window"
)

// ChunkContext is what computing a chunk of symbols at a period needs from the database.
type ChunkContext struct {
	// History holds each symbol's good samples in the longest window, oldest first.
	History map[string][]window.Point
	// LastGood is each symbol's newest good sample before the period (absent: none).
	LastGood map[string]time.Time
	// Prev holds the previous cycle of each symbol's windows, by symbol then label.
	Prev map[string]map[string]*idhr.Previous
}

// PrevFor returns the previous-cycle lookup of one symbol for window.Compute.
func (c *ChunkContext) PrevFor(symbol string) func(label string) *idhr.Previous {
	m := c.Prev[symbol]
	return func(label string) *idhr.Previous { return m[label] }
}

// ReadChunkContext reads, in one round trip, the history (the longest window before period;
// inclusive: the period's own sample too), the last good sample times and the previous window
// statistics of symbols.
func (s *Store) ReadChunkContext(ctx context.Context, symbols, labels []string, period time.Time,
	longest time.Duration, inclusive bool) (*ChunkContext, error) {
	upper := period
	if inclusive {
		upper = period.Add(time.Microsecond)
	}
	b := &pgx.Batch{}
	b.Queue(sqlHistory, symbols, period.Add(-longest), upper)
	b.Queue(sqlLastGood, symbols, period)
	b.Queue(sqlPrevStats, symbols, labels, period)
	res := s.pool.SendBatch(ctx, b)
	defer res.Close()
	cc := &ChunkContext{
		History:  make(map[string][]window.Point, len(symbols)),
		LastGood: make(map[string]time.Time, len(symbols)),
		Prev:     make(map[string]map[string]*idhr.Previous, len(symbols)),
	}
	wrap := func(what string, err error) error {
		return fmt.Errorf("read %s of %d symbols at %s: %w", what, len(symbols), period.Format(time.RFC3339), err)
	}

	rows, err := res.Query()
	if err != nil {
		return nil, wrap("history", err)
	}
	var (
		sym string
		pt  window.Point
	)
	if _, err := pgx.ForEachRow(rows, []any{&sym, &pt.T, &pt.Mid, &pt.Vol}, func() error {
		cc.History[sym] = append(cc.History[sym], pt)
		return nil
	}); err != nil {
		return nil, wrap("history", err)
	}

	rows, err = res.Query()
	if err != nil {
		return nil, wrap("last samples", err)
	}
	var last *time.Time
	if _, err := pgx.ForEachRow(rows, []any{&sym, &last}, func() error {
		if last != nil {
			cc.LastGood[sym] = *last
		}
		return nil
	}); err != nil {
		return nil, wrap("last samples", err)
	}

	rows, err = res.Query()
	if err != nil {
		return nil, wrap("previous window stats", err)
	}
	var (
		label  string
		ref    *float64
		streak int
		shift  bool
		gfm    *float64
	)
	if _, err := pgx.ForEachRow(rows, []any{&sym, &label, &ref, &streak, &shift, &gfm}, func() error {
		p := &idhr.Previous{Streak: streak, Shifted: shift}
		if ref != nil {
			p.Ref = *ref
		}
		if gfm != nil {
			p.GFMAbs = *gfm
		}
		if cc.Prev[sym] == nil {
			cc.Prev[sym] = map[string]*idhr.Previous{}
		}
		cc.Prev[sym][label] = p
		return nil
	}); err != nil {
		return nil, wrap("previous window stats", err)
	}
	return cc, res.Close()
}

// SymbolWindows are one symbol's window results at a period.
type SymbolWindows struct {
	Symbol  string
	Results []window.Result
}

// ChunkWrite is everything one chunk of symbols writes for a period.
type ChunkWrite struct {
	Period time.Time
	// Replica, when set, finishes the chunk's claims (Outcomes: symbol → sampled | failed |
	// abandoned) in the same transaction, and writes only the symbols whose claims it still held.
	Replica  string
	Outcomes map[string]string
	Samples  []book.Sample
	// Tickers are written with ts = Period.
	Tickers []exchange.Ticker24h
	Windows []SymbolWindows
}

// Claim outcomes.
const (
	OutcomeSampled   = "sampled"
	OutcomeFailed    = "failed"
	OutcomeAbandoned = "abandoned"
)

// WriteChunk writes a chunk in one transaction and returns the symbols written. With a Replica,
// symbols whose claims were taken over by another replica are left out.
func (s *Store) WriteChunk(ctx context.Context, w ChunkWrite) (written map[string]bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		written = make(map[string]bool, len(w.Samples))
		if w.Replica != "" {
			syms := make([]string, 0, len(w.Outcomes))
			outs := make([]string, 0, len(w.Outcomes))
			for sym, o := range w.Outcomes {
				syms, outs = append(syms, sym), append(outs, o)
			}
			rows, err := tx.Query(ctx, sqlFinish, w.Period, syms, outs, w.Replica)
			if err != nil {
				return err
			}
			mine, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return err
			}
			for _, sym := range mine {
				written[sym] = true
			}
		} else {
			for _, sm := range w.Samples {
				written[sm.Symbol] = true
			}
			for _, sw := range w.Windows {
				written[sw.Symbol] = true
			}
		}
		if len(written) == 0 {
			return nil
		}
		b := &pgx.Batch{}
		if args := sampleArgs(w.Samples, written); args != nil {
			b.Queue(sqlUpsertSamples, args...)
		}
		if args := tickerArgs(w.Period, w.Tickers, written); args != nil {
			b.Queue(sqlUpsertTickers, args...)
		}
		if st, vec := windowArgs(w.Period, w.Windows, written); st != nil {
			b.Queue(sqlUpsertStats, st...)
			b.Queue(sqlUpsertVectors, vec...)
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return nil, fmt.Errorf("write %d samples at %s: %w", len(w.Samples), w.Period.Format(time.RFC3339), err)
	}
	return written, nil
}

func decText(d decimal.Decimal, valid bool) *string {
	if !valid {
		return nil
	}
	s := d.String()
	return &s
}

func optText(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func optFloat(v float64, valid bool) *float64 {
	if !valid {
		return nil
	}
	return &v
}

func sampleArgs(samples []book.Sample, keep map[string]bool) []any {
	n := 0
	for _, s := range samples {
		if keep[s.Symbol] {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	var (
		sym      = make([]string, 0, n)
		ps       = make([]time.Time, 0, n)
		mid      = make([]*string, 0, n)
		midMin   = make([]*string, 0, n)
		midMax   = make([]*string, 0, n)
		bid      = make([]*string, 0, n)
		ask      = make([]*string, 0, n)
		spread   = make([]*float64, 0, n)
		imb      = make([]*float64, 0, n)
		bidVol   = make([]*string, 0, n)
		askVol   = make([]*string, 0, n)
		nsnap    = make([]int32, 0, n)
		flags    = make([]string, 0, n)
		reason   = make([]*string, 0, n)
		sampleAt = make([]time.Time, 0, n)
		source   = make([]*string, 0, n)
		bookAge  = make([]*float64, 0, n)
	)
	for _, s := range samples {
		if !keep[s.Symbol] {
			continue
		}
		v := s.Valid
		sym, ps = append(sym, s.Symbol), append(ps, s.PeriodStart)
		mid, midMin, midMax = append(mid, decText(s.Mid, v)), append(midMin, decText(s.MidMin, v)), append(midMax, decText(s.MidMax, v))
		bid, ask = append(bid, decText(s.BestBid, v)), append(ask, decText(s.BestAsk, v))
		spread, imb = append(spread, optFloat(s.SpreadBps, v)), append(imb, optFloat(s.Imbalance, v))
		bidVol, askVol = append(bidVol, decText(s.BidVol, v)), append(askVol, decText(s.AskVol, v))
		nsnap, flags = append(nsnap, int32(s.NSnapshots)), append(flags, flagsText(s.Flags))
		at := s.SampledAt
		if at.IsZero() {
			at = time.Now()
		}
		reason, sampleAt = append(reason, optText(s.Reason)), append(sampleAt, at)
		src := s.Source
		if !v {
			src = ""
		}
		source = append(source, optText(src))
		bookAge = append(bookAge, optFloat(float64(s.BookAge)/float64(time.Millisecond), v && src == book.SourceStream))
	}
	return []any{sym, ps, mid, midMin, midMax, bid, ask, spread, imb, bidVol, askVol, nsnap, flags, reason, sampleAt, source, bookAge}
}

func tickerArgs(period time.Time, tickers []exchange.Ticker24h, keep map[string]bool) []any {
	var (
		sym                                                  []string
		ts                                                   []time.Time
		last, open, high, low, wavg, chg, pct, bid, ask, vol []*string
		qvol                                                 []*string
		trades                                               []int64
		openT, closeT                                        []time.Time
	)
	for _, t := range tickers {
		if !keep[t.Symbol] {
			continue
		}
		d := func(v decimal.Decimal) *string { return decText(v, true) }
		sym, ts = append(sym, t.Symbol), append(ts, period)
		last, open, high, low = append(last, d(t.LastPrice)), append(open, d(t.OpenPrice)), append(high, d(t.HighPrice)), append(low, d(t.LowPrice))
		wavg, chg, pct = append(wavg, d(t.WeightedAvgPrice)), append(chg, d(t.PriceChange)), append(pct, d(t.PriceChangePercent))
		bid, ask, vol, qvol = append(bid, d(t.BidPrice)), append(ask, d(t.AskPrice)), append(vol, d(t.Volume)), append(qvol, d(t.QuoteVolume))
		trades, openT, closeT = append(trades, t.Count), append(openT, t.OpenTime), append(closeT, t.CloseTime)
	}
	if len(sym) == 0 {
		return nil
	}
	return []any{sym, ts, last, open, high, low, wavg, chg, pct, bid, ask, vol, qvol, trades, openT, closeT}
}

func windowArgs(period time.Time, ws []SymbolWindows, keep map[string]bool) (stats, vecs []any) {
	var (
		sym, label                                        []string
		ps                                                []time.Time
		n, streak                                         []int32
		p0, gfm, gfmAbs, gfmRef, conf, inert, disr, delta []*float64
		shift                                             []bool
		reason                                            []*string
		vin, vout, tend, strength, swap                   []*float64
	)
	for _, sw := range ws {
		if !keep[sw.Symbol] {
			continue
		}
		for _, r := range sw.Results {
			sym, label, ps, n = append(sym, sw.Symbol), append(label, r.Label), append(ps, period), append(n, int32(r.N))
			reason = append(reason, optText(r.Reason))
			st, v := r.Stats, r.Vectors
			ok := st != nil && v != nil
			f := func(x float64) *float64 { return optFloat(x, ok) }
			if !ok {
				st, v = &idhrZero, &vecZero
			}
			p0, gfm, gfmAbs, gfmRef = append(p0, f(st.P0)), append(gfm, f(st.GFM)), append(gfmAbs, f(st.GFMAbs)), append(gfmRef, f(r.Shift.Ref))
			conf, inert, disr, delta = append(conf, f(st.Confidence)), append(inert, f(st.Inertia)), append(disr, f(st.Disruption)), append(delta, f(r.Shift.DeltaPct))
			shift, streak = append(shift, ok && r.Shift.Shifted), append(streak, int32(r.Shift.Streak))
			vin, vout, tend = append(vin, f(v.Inner)), append(vout, f(v.Outer)), append(tend, f(v.Tendency))
			strength, swap = append(strength, f(v.TendencyStrength)), append(swap, f(v.Swap))
		}
	}
	if len(sym) == 0 {
		return nil, nil
	}
	stats = []any{sym, label, ps, n, p0, gfm, gfmAbs, gfmRef, conf, inert, disr, delta, shift, streak, reason}
	vecs = []any{sym, label, ps, n, vin, vout, tend, strength, swap, reason}
	return stats, vecs
}
