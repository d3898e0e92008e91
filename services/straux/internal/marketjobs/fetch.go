package marketjobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"cryptopill.dev/jobs/libs/exchange"
	"cryptopill.dev/jobs/libs/jobs"
	"cryptopill.dev/jobs/services/straux/internal/plan"
)

// Gap is a stretch of candles the exchange did not return between two stored ones.
type Gap struct {
	From, To time.Time // open times: From is the first missing candle, To the next present one
	Candles  int
}

// intervalStep is the open time after open for a kline interval.
func intervalStep(interval string, open time.Time) (time.Time, error) {
	if interval == "1M" {
		return open.AddDate(0, 1, 0), nil
	}
	d, ok := map[string]time.Duration{
		"1s": time.Second, "1m": time.Minute, "3m": 3 * time.Minute, "5m": 5 * time.Minute,
		"15m": 15 * time.Minute, "30m": 30 * time.Minute, "1h": time.Hour, "2h": 2 * time.Hour,
		"4h": 4 * time.Hour, "6h": 6 * time.Hour, "8h": 8 * time.Hour, "12h": 12 * time.Hour,
		"1d": 24 * time.Hour, "3d": 72 * time.Hour, "1w": 7 * 24 * time.Hour,
	}[interval]
	if !ok {
		return time.Time{}, fmt.Errorf("%q is not a Binance kline interval", interval)
	}
	return open.Add(d), nil
}

// FetchKlines is fetch_klines: the closed candles of (symbol, window) since the cursor, upserted
// by open time, the cursor moved to the newest, gaps between consecutive candles reported.
func (h *Handlers) FetchKlines(ctx context.Context, job jobs.Job) error {
	p, err := decode(job)
	if err != nil {
		return err
	}
	if p.Symbol == "" || p.Window == "" {
		return jobs.Permanent(fmt.Errorf("fetch_klines job %d: payload needs symbol and window", job.ID))
	}
	_, err = h.FetchKlinesOf(ctx, p.Symbol, p.Window)
	return err
}

// FetchKlinesOf fetches (symbol, interval) from its cursor and returns the gaps it found.
func (h *Handlers) FetchKlinesOf(ctx context.Context, symbol, interval string) ([]Gap, error) {
	if _, err := intervalStep(interval, time.Time{}); err != nil {
		return nil, jobs.Permanent(fmt.Errorf("fetch_klines %s: %w", symbol, err))
	}
	pool := h.st.Pool()
	var cursor *time.Time
	if err := pool.QueryRow(ctx, sqlKlineCursor, symbol, interval).Scan(&cursor); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("fetch_klines %s %s: cursor: %w", symbol, interval, err)
	}
	now := h.cfg.Now()
	var start, expected time.Time
	if cursor != nil {
		expected, _ = intervalStep(interval, *cursor)
		start = expected
	} else {
		// No cursor: begin InitialKlines candles back (the exchange aligns the open times).
		step, _ := intervalStep(interval, now)
		start = now.Add(-time.Duration(h.cfg.InitialKlines) * step.Sub(now))
	}
	var gaps []Gap
	for page := 0; page < h.cfg.MaxPages; page++ {
		ks, err := h.ex.Klines(exchange.WithClass(ctx, exchange.ClassJobs), exchange.KlinesRequest{Symbol: symbol, Interval: interval, StartTime: start, Limit: 1000})
		if err != nil {
			return gaps, permanentIfInvalid(fmt.Errorf("fetch_klines %s %s: %w", symbol, interval, err))
		}
		closed := ks[:0:0]
		for _, k := range ks {
			if k.CloseTime.Before(now) {
				closed = append(closed, k)
			}
		}
		if len(closed) == 0 {
			break
		}
		for _, k := range closed {
			if !expected.IsZero() && k.OpenTime.After(expected) {
				g := Gap{From: expected.UTC(), To: k.OpenTime.UTC()}
				for t := expected; t.Before(k.OpenTime); t, _ = intervalStep(interval, t) {
					g.Candles++
				}
				gaps = append(gaps, g)
			}
			expected, _ = intervalStep(interval, k.OpenTime)
		}
		if err := h.writeKlines(ctx, symbol, interval, closed); err != nil {
			return gaps, err
		}
		h.klines.WithLabelValues(interval).Add(float64(len(closed)))
		if len(ks) < 1000 {
			break
		}
		start = expected
	}
	for _, g := range gaps {
		h.gaps.WithLabelValues(interval).Inc()
		h.gapCandles.WithLabelValues(interval).Add(float64(g.Candles))
		h.log.Warn("kline gap: candles missing between stored ones", "symbol", symbol, "interval", interval,
			"from", g.From, "to", g.To, "missing_candles", g.Candles)
	}
	return gaps, nil
}

func (h *Handlers) writeKlines(ctx context.Context, symbol, interval string, ks []exchange.Kline) error {
	n := len(ks)
	open, closeT := make([]time.Time, n), make([]time.Time, n)
	o, hi, lo, c, v, qv, tbv, tqv := make([]string, n), make([]string, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	trades := make([]int64, n)
	for i, k := range ks {
		open[i], closeT[i], trades[i] = k.OpenTime, k.CloseTime, k.Trades
		o[i], hi[i], lo[i], c[i] = k.Open.String(), k.High.String(), k.Low.String(), k.Close.String()
		v[i], qv[i], tbv[i], tqv[i] = k.Volume.String(), k.QuoteVolume.String(), k.TakerBuyBaseVolume.String(), k.TakerBuyQuoteVolume.String()
	}
	err := pgx.BeginFunc(ctx, h.st.Pool(), func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, sqlUpsertKlines, symbol, interval, open, o, hi, lo, c, v, closeT, qv, trades, tbv, tqv); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, sqlSetKlineCursor, symbol, interval, open[n-1])
		return err
	})
	if err != nil {
		return fmt.Errorf("fetch_klines %s %s: write %d candles: %w", symbol, interval, n, err)
	}
	return nil
}

// FetchTicker is fetch_ticker: 24h tickers of the job's symbol (or the universe, in batches of
// plan.TickerBatch, the cheapest weight per symbol), stored at the job's scheduled time.
func (h *Handlers) FetchTicker(ctx context.Context, job jobs.Job) error {
	p, err := decode(job)
	if err != nil {
		return err
	}
	syms, err := h.symbols(ctx, p)
	if err != nil {
		return err
	}
	ts := snapshotTime(job, h.cfg.Now())
	// Stream mode: the tickers this replica holds live come from their streams.
	if st := h.cfg.Streams; st != nil {
		var live []exchange.Ticker24h
		rest := syms[:0:0]
		for _, sym := range syms {
			if t, _, ok := st.Ticker(sym); ok {
				live = append(live, t)
			} else {
				rest = append(rest, sym)
			}
		}
		if len(live) > 0 {
			if err := h.st.WriteTickers(ctx, ts, live); err != nil {
				return err
			}
		}
		h.snapshots.WithLabelValues("fetch_ticker", "stream").Add(float64(len(live)))
		h.snapshots.WithLabelValues("fetch_ticker", "rest").Add(float64(len(rest)))
		syms = rest
	}
	for i := 0; i < len(syms); i += plan.TickerBatch {
		batch := syms[i:min(i+plan.TickerBatch, len(syms))]
		tickers, err := h.ex.Tickers24h(exchange.WithClass(ctx, exchange.ClassJobs), batch)
		if err != nil {
			return permanentIfInvalid(fmt.Errorf("fetch_ticker %d symbols: %w", len(batch), err))
		}
		if err := h.st.WriteTickers(ctx, ts, tickers); err != nil {
			return err
		}
	}
	return nil
}

// FetchOrderbook is fetch_orderbook: the order book of the job's symbol (or of each universe
// symbol) as fetched, stored at the job's scheduled time.
func (h *Handlers) FetchOrderbook(ctx context.Context, job jobs.Job) error {
	p, err := decode(job)
	if err != nil {
		return err
	}
	syms, err := h.symbols(ctx, p)
	if err != nil {
		return err
	}
	ts := snapshotTime(job, h.cfg.Now())
	var (
		names       []string
		ids         []int64
		bids, asks  []string
		failed      []string
		lastFailure error
	)
	for _, sym := range syms {
		ob, err := h.orderbook(ctx, sym)
		if err != nil {
			// One symbol's failure does not lose the others' books.
			failed, lastFailure = append(failed, sym), err
			continue
		}
		b, _ := json.Marshal(levels(ob.Bids))
		a, _ := json.Marshal(levels(ob.Asks))
		names, ids, bids, asks = append(names, sym), append(ids, ob.LastUpdateID), append(bids, string(b)), append(asks, string(a))
	}
	if len(names) > 0 {
		if _, err := h.st.Pool().Exec(ctx, sqlUpsertOrderbook, ts, h.cfg.DepthLimit, names, ids, bids, asks); err != nil {
			return fmt.Errorf("fetch_orderbook: write %d books: %w", len(names), err)
		}
	}
	if len(failed) > 0 {
		err := fmt.Errorf("fetch_orderbook: %d of %d symbols failed (%v): %w", len(failed), len(syms), failed, lastFailure)
		if len(syms) == 1 {
			return permanentIfInvalid(err)
		}
		return err
	}
	return nil
}

// orderbook is a symbol's book: from its local book in stream mode when this replica holds it
// live (and deep enough), else a REST depth call.
func (h *Handlers) orderbook(ctx context.Context, sym string) (*exchange.OrderBook, error) {
	if st := h.cfg.Streams; st != nil && h.cfg.DepthLimit <= LocalBookDepth {
		if ob, state, _, ok := st.Book(sym, h.cfg.DepthLimit); ok && state == exchange.BookLive {
			h.snapshots.WithLabelValues("fetch_orderbook", "stream").Inc()
			return ob, nil
		}
	}
	h.snapshots.WithLabelValues("fetch_orderbook", "rest").Inc()
	return h.ex.Depth(exchange.WithClass(ctx, exchange.ClassJobs), sym, h.cfg.DepthLimit)
}

// levels is a side as Binance sends it: ["price", "qty"] string pairs, best first.
func levels(ls []exchange.PriceLevel) [][2]string {
	out := make([][2]string, len(ls))
	for i, l := range ls {
		out[i] = [2]string{l.Price.String(), l.Qty.String()}
	}
	return out
}
