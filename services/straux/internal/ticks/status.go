package ticks

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"cryptopill.dev/jobs/libs/exchange"
	"cryptopill.dev/jobs/services/straux/internal/book"
)

const (
	// statusRefreshEvery is how long the exchange's symbol statuses are trusted: exchangeInfo
	// (all symbols, weight 20) is read at most this often, unless forced.
	statusRefreshEvery = time.Minute
	// statusForcedGap spaces the refreshes an empty book forces, so a chunk of empty books (or
	// an exchange answering every book empty) costs one read, not one per symbol.
	statusForcedGap = 5 * time.Second
	// statusReadWeight is what a status read costs; each tick's plan keeps it free, as the read
	// (at most one a minute, unless forced) comes out of the ticks' reserve.
	statusReadWeight = exchange.ExchangeInfoWeight
	// notTradingPrefix starts the reason of a symbol skipped because it is not trading.
	notTradingPrefix = "not_trading:"
)

// symbolStatuses caches the exchange's trading status of every symbol (TRADING, BREAK, HALT, …),
// so a symbol that is not trading is marked as such instead of being sampled as an empty book
// or a zero price. A failed refresh keeps the statuses last read (a symbol never read counts as
// trading: its depth call says what is wrong).
type symbolStatuses struct {
	ex      Exchange
	log     *slog.Logger
	m       *metrics
	now     func() time.Time
	timeout time.Duration

	// mu is held across a refresh a caller waits for: callers wanting one at the same time
	// wait for it and use its answer. A refresh behind the ticks holds it only to install.
	mu     sync.Mutex
	status map[string]string // symbol → status, nil until a read succeeds
	readAt time.Time         // last read attempt, successful or not
	// inflight is closed when the read running behind the ticks ends (nil: none runs).
	inflight chan struct{}
	watched  map[string]bool // symbols the runner asked about: what the gauges count
}

func newSymbolStatuses(ex Exchange, log *slog.Logger, m *metrics, now func() time.Time, timeout time.Duration) *symbolStatuses {
	return &symbolStatuses{ex: ex, log: log, m: m, now: now, timeout: timeout, watched: map[string]bool{}}
}

// split separates symbols that are trading (or of unknown status) from those that are not.
// Statuses older than statusRefreshEvery are read again: in the background while every one of
// symbols is known to be trading (a tick does not wait on a 2,000-symbol exchangeInfo once a
// minute; a symbol that stopped trading meanwhile answers an empty book, which forces a read
// in settle), and before answering when there are none yet or one of symbols is not trading
// (so a symbol trading again is sampled in this tick, not the next). A read already running
// is waited for rather than doubled.
func (c *symbolStatuses) split(ctx context.Context, symbols []string) (trading []string, notTrading map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		stale := c.readAt.IsZero() || c.now().Sub(c.readAt) >= statusRefreshEvery
		needNow := c.status == nil || (stale && slices.ContainsFunc(symbols, func(s string) bool {
			st, ok := c.status[s]
			return ok && st != exchange.SymbolTrading
		}))
		if c.inflight != nil && needNow {
			ch := c.inflight
			c.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
			}
			c.mu.Lock()
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if stale {
			if needNow {
				c.refreshLocked(ctx)
			} else {
				c.behindLocked(context.WithoutCancel(ctx)) // the read outlives the chunk that wanted it
			}
		}
		break
	}
	grew := false
	for _, s := range symbols {
		if !c.watched[s] {
			c.watched[s], grew = true, true
		}
		if st, ok := c.status[s]; ok && st != exchange.SymbolTrading {
			if notTrading == nil {
				notTrading = map[string]string{}
			}
			notTrading[s] = st
			continue
		}
		trading = append(trading, s)
	}
	if grew {
		c.updateGaugesLocked()
	}
	return trading, notTrading
}

// settle finishes a chunk's fetch: the symbols that are not trading get a sample saying so; a
// symbol believed trading whose book came back empty forces a refresh, and is marked too if it
// has stopped trading; tickers of symbols not trading and tickers without a price are dropped
// (counted and logged), so market.tickers never holds a zero price.
func (c *symbolStatuses) settle(ctx context.Context, p time.Time, f *fetched, notTrading map[string]string) {
	var emptied []int
	for i, s := range f.samples {
		if !s.Valid && slices.Contains(s.Flags, book.FlagEmptyBook) {
			emptied = append(emptied, i)
		}
	}
	if len(emptied) > 0 {
		now := c.refreshForced(ctx)
		for _, i := range emptied {
			sym := f.samples[i].Symbol
			if st, ok := now[sym]; ok && st != exchange.SymbolTrading {
				f.samples[i] = book.Failed(sym, p, notTradingPrefix+st)
				if notTrading == nil {
					notTrading = map[string]string{}
				}
				notTrading[sym] = st
			}
		}
	}
	// Map order does not matter: the chunk is written as a set.
	for sym, st := range notTrading {
		if !slices.ContainsFunc(f.samples, func(s book.Sample) bool { return s.Symbol == sym }) {
			f.samples = append(f.samples, book.Failed(sym, p, notTradingPrefix+st))
		}
	}
	kept := f.tickers[:0]
	var zero []string
	for _, t := range f.tickers {
		switch {
		case notTrading[t.Symbol] != "":
		case !t.LastPrice.IsPositive():
			zero = append(zero, t.Symbol)
		default:
			kept = append(kept, t)
		}
	}
	f.tickers = kept
	if len(zero) > 0 {
		c.m.zeroTickers.Add(float64(len(zero)))
		c.log.WarnContext(ctx, "tickers without a last price dropped (a symbol without trades is not priced at zero)",
			"symbols", zero, "period_start", p)
	}
}

// refreshForced reads the statuses again unless they were read within statusForcedGap, and
// returns them.
func (c *symbolStatuses) refreshForced(ctx context.Context) map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.readAt.IsZero() || c.now().Sub(c.readAt) >= statusForcedGap {
		c.refreshLocked(ctx)
	}
	return c.status
}

// refreshLocked reads every symbol's status with one exchangeInfo call, c.mu held. A failure
// keeps what was known.
func (c *symbolStatuses) refreshLocked(ctx context.Context) {
	c.readAt = c.now()
	info, err := c.read(ctx)
	c.installLocked(ctx, info, err)
}

// prime starts the first read behind the runner, so its first tick need not wait for all of it.
func (c *symbolStatuses) prime(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.readAt.IsZero() && c.inflight == nil {
		c.behindLocked(ctx)
	}
}

// behindLocked starts a read while the runner goes on with the statuses it has, c.mu held.
func (c *symbolStatuses) behindLocked(ctx context.Context) {
	c.readAt = c.now()
	done := make(chan struct{})
	c.inflight = done
	go func() {
		info, err := c.read(ctx)
		c.mu.Lock()
		defer c.mu.Unlock()
		c.installLocked(ctx, info, err)
		c.inflight = nil
		close(done)
	}()
}

func (c *symbolStatuses) read(ctx context.Context) (*exchange.ExchangeInfo, error) {
	ictx, cancel := context.WithTimeout(exchange.WithClass(ctx, exchange.ClassTicks), c.timeout)
	defer cancel()
	return c.ex.ExchangeInfo(ictx)
}

func (c *symbolStatuses) installLocked(ctx context.Context, info *exchange.ExchangeInfo, err error) {
	if err != nil {
		c.m.statusErrors.Inc()
		c.log.WarnContext(ctx, "symbol statuses not refreshed; keeping the last known", "known", len(c.status), "err", err)
		return
	}
	st := make(map[string]string, len(info.Symbols))
	for _, s := range info.Symbols {
		if s.Status == "" {
			// A symbol the exchange names without a status is not known to trade; it is sampled
			// (its depth says what it is) but counted, so the gap in the answer is seen.
			c.m.statusErrors.Inc()
			c.log.WarnContext(ctx, "exchangeInfo symbol without a status; taken as trading", "symbol", s.Symbol)
			continue
		}
		st[s.Symbol] = s.Status
	}
	for sym, old := range c.status {
		if now, ok := st[sym]; ok && now != old && c.watched[sym] {
			c.log.InfoContext(ctx, "symbol status changed", "symbol", sym, "from", old, "to", now)
		}
	}
	c.status = st
	c.updateGaugesLocked()
}

// updateGaugesLocked counts the watched symbols by status.
func (c *symbolStatuses) updateGaugesLocked() {
	by := map[string]int{}
	n := 0
	for sym := range c.watched {
		st, ok := c.status[sym]
		if !ok {
			continue
		}
		by[st]++
		if st != exchange.SymbolTrading {
			n++
		}
	}
	c.m.notTrading.Set(float64(n))
	c.m.statuses.Reset()
	for st, k := range by {
		c.m.statuses.WithLabelValues(st).Set(float64(k))
	}
}
