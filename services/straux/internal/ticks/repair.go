package ticks

import (
	"context"
	"fmt"
	"time"

	"cryptopill.dev/jobs/libs/exchange"
	"cryptopill.dev/jobs/services/straux/internal/store"
)

// repairLate is the handler's work for a tick an operator handed over (replay, re-drive) after
// its period ended: the period is marked (skipped) if it never was, then every universe symbol
// without a price in it (never sampled, failed, skipped) gets the kline backfill of that period.
// A period whose symbols all have a price changes nothing; one still being worked is joined as
// usual.
func (r *Runner) repairLate(ctx context.Context, t Tick) error {
	log := r.log.With("period_start", t.PeriodStart, "period", t.Period)
	status, err := r.st.PeriodStatus(ctx, t.PeriodStart)
	if err != nil {
		return err
	}
	switch status {
	case store.StatusPlanned:
		// Planned and not closed: finished (or given up) by the replicas working it.
		return r.HandleTick(ctx, t)
	case "":
		if _, err := r.skip(ctx, t, log); err != nil {
			return err
		}
		status = store.StatusSkipped
	}
	universe, err := r.uni.Current(ctx)
	if err != nil {
		return err
	}
	// Only symbols without a price cost a klines call: a replay of a healthy hour calls nothing.
	unpriced, err := r.st.UnpricedSymbols(ctx, t.PeriodStart, universe)
	if err != nil {
		return err
	}
	if len(unpriced) == 0 {
		r.m.ticks.WithLabelValues("already_" + status).Inc()
		return nil
	}
	repaired := 0
	for _, sym := range unpriced {
		n, err := r.repairSymbol(ctx, sym, t.PeriodStart)
		if err != nil {
			// The period stays without a price for this symbol; the replay reports the failure
			// and can be run again.
			return fmt.Errorf("repair period %s: %w", t.PeriodStart.Format(time.RFC3339), err)
		}
		repaired += n
	}
	r.m.ticks.WithLabelValues("repaired").Inc()
	r.m.backfilled.Add(float64(repaired))
	if repaired > 0 {
		log.Info("replayed tick: missed period repaired from 1m klines", "samples", repaired, "unpriced", len(unpriced), "universe", len(universe))
	}
	return nil
}

// repairSymbol writes the close of the last 1m kline closed at or before p into sym's sample of
// period p when it has no price; it returns how many samples it wrote (0 or 1).
func (r *Runner) repairSymbol(ctx context.Context, sym string, p time.Time) (int, error) {
	// The last candle closed at or before p opened a minute before p's minute.
	open := p.Truncate(time.Minute).Add(-time.Minute)
	select {
	case r.slots <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	// Repair is backfill: it never draws on the ticks' reserve.
	kctx, cancel := context.WithTimeout(exchange.WithClass(ctx, exchange.ClassBackfill), r.cfg.SymbolTimeout)
	ks, err := r.ex.Klines(kctx, exchange.KlinesRequest{Symbol: sym, Interval: "1m", StartTime: open, EndTime: p, Limit: 2})
	cancel()
	<-r.slots
	if err != nil {
		return 0, fmt.Errorf("klines %s: %w", sym, err)
	}
	for _, k := range ks {
		if k.OpenTime.Equal(open) && !k.CloseTime.After(p) {
			written, err := r.st.RepairSamples(ctx, sym, []store.BackfillPoint{{PeriodStart: p, Mid: k.Close.String()}})
			return len(written), err
		}
	}
	r.log.Warn("replayed tick: no closed 1m kline before the period; left without a price", "symbol", sym, "period_start", p)
	return 0, nil
}
