package ticks

import (
	"context"
	"slices"
	"time"

	"cryptopill.dev/jobs/libs/exchange"
	"cryptopill.dev/jobs/services/straux/internal/book"
	"cryptopill.dev/jobs/services/straux/internal/store"
	"cryptopill.dev/jobs/services/straux/internal/vectors"
	"cryptopill.dev/jobs/services/straux/internal/window"
)

// backfill reconstructs the missing history of symbols whose longest window holds too few
// samples, from closed 1m klines: every period of the window without a sample gets the close of
// the last candle closed before it, flagged kline_backfill (no book, so no spread, imbalance or
// volume). A symbol is backfilled at most once per longest window (str_aux.backfills), and the
// klines calls are bounded by the period's spare weight. Failures are logged and skipped: the
// window then simply stays short.
func (r *Runner) backfill(ctx context.Context, run *periodRun, cc *store.ChunkContext, samples []book.Sample,
	windows []window.Window, longest time.Duration) {
	p, interval := run.tick.PeriodStart, run.tick.Period
	var lw window.Window
	for _, w := range windows {
		if w.Duration == longest {
			lw = w
		}
	}
	need := vectors.MinSamples(window.Bins(lw, interval, r.cfg.MaxBins))
	var short []string
	for _, s := range samples {
		have := len(cc.History[s.Symbol])
		if s.Valid {
			have++
		}
		if have < need {
			short = append(short, s.Symbol)
		}
	}
	if len(short) == 0 {
		return
	}
	due, err := r.st.BackfillDue(ctx, short, longest)
	if err != nil {
		r.log.WarnContext(ctx, "backfill: check", "err", err)
		return
	}
	for _, sym := range due {
		if run.backfillLeft.Add(-1) < 0 {
			r.log.InfoContext(ctx, "backfill: no weight left this period; later", "symbols_waiting", len(due))
			return
		}
		pts, err := r.backfillSymbol(ctx, sym, p, interval, longest, cc.History[sym])
		if err != nil {
			r.log.WarnContext(ctx, "backfill failed", "symbol", sym, "err", err)
			continue
		}
		merged := append(slices.Clone(cc.History[sym]), pts...)
		slices.SortFunc(merged, func(a, b window.Point) int { return a.T.Compare(b.T) })
		cc.History[sym] = merged
		if len(pts) > 0 {
			last := merged[len(merged)-1].T
			if last.After(cc.LastGood[sym]) {
				cc.LastGood[sym] = last
			}
		}
	}
}

func (r *Runner) backfillSymbol(ctx context.Context, sym string, p time.Time, interval, longest time.Duration,
	have []window.Point) ([]window.Point, error) {
	from := p.Add(-longest)
	select {
	case r.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// Backfill shares the jobs' part of the budget, never the ticks' reserve.
	kctx, cancel := context.WithTimeout(exchange.WithClass(ctx, exchange.ClassBackfill), r.cfg.SymbolTimeout)
	ks, err := r.ex.Klines(kctx, exchange.KlinesRequest{
		Symbol: sym, Interval: "1m", StartTime: from.Add(-2 * time.Minute), EndTime: p,
		Limit: min(1000, int(longest/time.Minute)+3),
	})
	cancel()
	<-r.slots
	if err != nil {
		return nil, err
	}
	now := r.cfg.Now()
	closes := make(map[int64]string, len(ks)) // open time (ms) → close
	for _, k := range ks {
		if k.CloseTime.Before(now) {
			closes[k.OpenTime.UnixMilli()] = k.Close.String()
		}
	}
	present := make(map[int64]bool, len(have))
	for _, pt := range have {
		present[pt.T.UnixMilli()] = true
	}
	var rows []store.BackfillPoint
	var pts []window.Point
	for t := p.Add(-interval); t.After(from); t = t.Add(-interval) {
		if present[t.UnixMilli()] {
			continue
		}
		// The last candle closed at or before t opened a minute before t's minute.
		open := t.Truncate(time.Minute).Add(-time.Minute)
		c, ok := closes[open.UnixMilli()]
		if !ok {
			continue
		}
		rows = append(rows, store.BackfillPoint{PeriodStart: t, Mid: c})
		mid, _ := exchangeDecimal(c)
		pts = append(pts, window.Point{T: t, Mid: mid})
	}
	written, err := r.st.WriteBackfill(ctx, sym, from, p, rows)
	if err != nil {
		return nil, err
	}
	// Only the periods the database took go into the history the windows are computed from.
	took := make(map[int64]bool, len(written))
	for _, t := range written {
		took[t.UnixMilli()] = true
	}
	pts = slices.DeleteFunc(pts, func(pt window.Point) bool { return !took[pt.T.UnixMilli()] })
	added := len(written)
	r.m.backfilled.Add(float64(added))
	r.log.InfoContext(ctx, "backfilled history from 1m klines", "symbol", sym, "samples", added, "from", from, "through", p)
	return pts, nil
}
