package tradesync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"cryptopill.dev/jobs/libs/exchange"
)

// Exchange is the part of the exchange client the sync uses.
type Exchange interface {
	MyTrades(ctx context.Context, req exchange.MyTradesRequest) ([]exchange.Trade, error)
}

// Config configures a TradeSync. Zero values take the documented defaults.
type Config struct {
	// Scope is the account scope the trades are stored under. Default "default".
	Scope string
	// Symbols are the markets to sync. Empty: the enabled coin universe plus every symbol the
	// scope already has a cursor for.
	Symbols []string
	// Lookback is how far back a symbol without a cursor is first fetched. Default 7 days.
	Lookback time.Duration
	// PageSize is the number of trades per request, at most 1000. Default 1000.
	PageSize int
	// WeightPerMinute paces the myTrades calls (weight exchange.MyTradesWeight each) to at most
	// this much request weight a minute, so a sweep of a large universe never crowds out the
	// rest of the IP's budget. Default 0: unpaced (only the shared limiter's budget applies).
	WeightPerMinute int
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Sleep waits d or until ctx ends (the pacing). Default: a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// TradeSync copies the account's trades from the exchange into market.account_trades.
type TradeSync struct {
	ex   Exchange
	pool *pgxpool.Pool
	cfg  Config

	mu   sync.Mutex
	next time.Time // pacing: when the next call may go
	// extra are symbols the stream brought trades of that the sweep list did not hold: swept
	// too, so what the stream missed of them is fetched.
	extra map[string]bool
	// swept is the last sweep's list (Include's reference until a sweep has run).
	swept map[string]bool
	// onCall hears of each myTrades call's weight as it is spent (StreamSync's metrics).
	onCall func(weight int)
}

// New returns a TradeSync; ex must be a client with credentials.
func New(pool *pgxpool.Pool, ex Exchange, cfg Config) *TradeSync {
	if cfg.Scope == "" {
		cfg.Scope = "default"
	}
	if cfg.Lookback <= 0 {
		cfg.Lookback = 7 * 24 * time.Hour
	}
	if cfg.PageSize <= 0 || cfg.PageSize > 1000 {
		cfg.PageSize = 1000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	return &TradeSync{ex: ex, pool: pool, cfg: cfg}
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// myTrades is one paced call: calls are spaced so their weight stays within WeightPerMinute.
func (s *TradeSync) myTrades(ctx context.Context, req exchange.MyTradesRequest, res *Result) ([]exchange.Trade, error) {
	if s.cfg.WeightPerMinute > 0 {
		s.mu.Lock()
		now := s.cfg.Now()
		if s.next.Before(now) {
			s.next = now
		}
		wait := s.next.Sub(now)
		s.next = s.next.Add(time.Duration(exchange.MyTradesWeight) * time.Minute / time.Duration(s.cfg.WeightPerMinute))
		s.mu.Unlock()
		if err := s.cfg.Sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
	res.Calls++
	res.Weight += exchange.MyTradesWeight
	if s.onCall != nil {
		s.onCall(exchange.MyTradesWeight)
	}
	return s.ex.MyTrades(ctx, req)
}

// Result is what one Sync stored.
type Result struct {
	// Scope is the account scope synced.
	Scope string
	// Stored counts the new trades.
	Stored int
	// Earliest is the earliest trade time among them (zero when none).
	Earliest time.Time
	// Failed lists the symbols that could not be synced, with why.
	Failed map[string]error
	// Calls and Weight are the myTrades calls sent and their request weight.
	Calls, Weight int
}

// Sync fetches every symbol's new trades. A symbol that fails is reported in Result.Failed and
// does not stop the others; the error is non-nil only when nothing could be attempted (the symbol
// list) or ctx ended.
func (s *TradeSync) Sync(ctx context.Context) (Result, error) {
	res := Result{Scope: s.cfg.Scope, Failed: map[string]error{}}
	symbols, err := s.symbols(ctx, true)
	if err != nil {
		return res, err
	}
	return s.syncEach(ctx, symbols, res)
}

// SyncSymbols is Sync over those of only that are still to be synced (a retry of the symbols a
// Sync missed).
func (s *TradeSync) SyncSymbols(ctx context.Context, only []string) (Result, error) {
	res := Result{Scope: s.cfg.Scope, Failed: map[string]error{}}
	symbols, err := s.symbols(ctx, false)
	if err != nil {
		return res, err
	}
	symbols = slices.DeleteFunc(symbols, func(sym string) bool { return !slices.Contains(only, sym) })
	return s.syncEach(ctx, symbols, res)
}

// symbols lists the symbols to sync: Config.Symbols, or the enabled universe plus those with a
// cursor, and the symbols Include added. sweep records them as the sweeps' list.
func (s *TradeSync) symbols(ctx context.Context, sweep bool) ([]string, error) {
	symbols := slices.Clone(s.cfg.Symbols)
	if len(symbols) == 0 {
		rows, err := s.pool.Query(ctx, symbolsSQL, s.cfg.Scope)
		if err != nil {
			return nil, fmt.Errorf("trade sync symbols: %w", err)
		}
		if symbols, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return nil, fmt.Errorf("trade sync symbols: %w", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	listed := make(map[string]bool, len(symbols))
	for _, sym := range symbols {
		listed[sym] = true
	}
	for sym := range s.extra {
		if !listed[sym] {
			listed[sym] = true
			symbols = append(symbols, sym)
		}
	}
	if sweep {
		s.swept = listed
	}
	return symbols, nil
}

func (s *TradeSync) syncEach(ctx context.Context, symbols []string, res Result) (Result, error) {
	for _, sym := range symbols {
		n, earliest, err := s.syncSymbol(ctx, sym, &res)
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		res.Stored += n
		if !earliest.IsZero() && (res.Earliest.IsZero() || earliest.Before(res.Earliest)) {
			res.Earliest = earliest
		}
		if err != nil {
			res.Failed[sym] = err
			s.cfg.Logger.Warn("trade sync failed for a symbol", "symbol", sym, "scope", s.cfg.Scope, "err", err)
		}
	}
	return res, nil
}

// syncSymbol pages through one symbol's new trades.
func (s *TradeSync) syncSymbol(ctx context.Context, symbol string, res *Result) (stored int, earliest time.Time, err error) {
	var last int64
	err = s.pool.QueryRow(ctx, cursorSQL, s.cfg.Scope, symbol).Scan(&last)
	hasCursor := err == nil
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return 0, time.Time{}, fmt.Errorf("read cursor of %s: %w", symbol, err)
	}
	// Bootstrap. First the symbol's oldest trades (fromId 0): none means the account never
	// traded it, and oldest ones inside the look-back are where to start; one call either way,
	// the usual case for a universe the account trades little of.
	if !hasCursor {
		now := s.cfg.Now()
		since := now.Add(-s.cfg.Lookback)
		var zero int64
		trades, err := s.myTrades(ctx, exchange.MyTradesRequest{Symbol: symbol, FromID: &zero, Limit: s.cfg.PageSize}, res)
		if err != nil {
			return stored, earliest, fmt.Errorf("myTrades %s from id 0: %w", symbol, err)
		}
		switch {
		case len(trades) == 0:
			return stored, earliest, nil // never traded
		case !trades[0].Time.Before(since):
			n, e, err := s.store(ctx, symbol, trades, true)
			stored, earliest = stored+n, earlier(earliest, e)
			if err != nil || len(trades) < s.cfg.PageSize {
				return stored, earliest, err // a partial page: every trade there is
			}
			last, hasCursor = trades[len(trades)-1].ID, true
		}
	}
	// Older trades exist: walk the look-back in the 24-hour windows Binance allows, until the
	// first trade in it gives an id to continue from.
	if !hasCursor {
		now := s.cfg.Now()
		for from := now.Add(-s.cfg.Lookback); from.Before(now); from = from.Add(24 * time.Hour) {
			to := from.Add(24*time.Hour - time.Millisecond)
			if to.After(now) {
				to = now
			}
			trades, err := s.myTrades(ctx, exchange.MyTradesRequest{Symbol: symbol, StartTime: from, EndTime: to, Limit: s.cfg.PageSize}, res)
			if err != nil {
				return stored, earliest, fmt.Errorf("myTrades %s from %s: %w", symbol, from.Format(time.RFC3339), err)
			}
			if len(trades) == 0 {
				continue
			}
			n, e, err := s.store(ctx, symbol, trades, true)
			stored, earliest = stored+n, earlier(earliest, e)
			if err != nil {
				return stored, earliest, err
			}
			last, hasCursor = trades[len(trades)-1].ID, true
			break
		}
		if !hasCursor {
			return stored, earliest, nil // no trades in the look-back
		}
	}
	for {
		from := last + 1
		trades, err := s.myTrades(ctx, exchange.MyTradesRequest{Symbol: symbol, FromID: &from, Limit: s.cfg.PageSize}, res)
		if err != nil {
			return stored, earliest, fmt.Errorf("myTrades %s from id %d: %w", symbol, from, err)
		}
		if len(trades) == 0 {
			return stored, earliest, nil
		}
		n, e, err := s.store(ctx, symbol, trades, true)
		stored, earliest = stored+n, earlier(earliest, e)
		if err != nil {
			return stored, earliest, err
		}
		last = trades[len(trades)-1].ID
		if len(trades) < s.cfg.PageSize {
			return stored, earliest, nil
		}
	}
}

// Include adds symbol to every later sweep unless the last one covered it; it reports whether it
// was added to the sweeps' list. Before the first sweep it is kept for that sweep (which dedups it
// with its list) and reported as not added.
func (s *TradeSync) Include(symbol string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if symbol == "" || s.swept[symbol] || s.extra[symbol] {
		return false
	}
	if s.extra == nil {
		s.extra = map[string]bool{}
	}
	s.extra[symbol] = true
	return s.swept != nil
}

// StoreStreamed stores one trade from the user data stream, idempotently on (symbol, trade id),
// without moving the symbol's fromId cursor; stored is false when it was already there.
func (s *TradeSync) StoreStreamed(ctx context.Context, t exchange.Trade) (stored bool, err error) {
	if t.Symbol == "" {
		return false, fmt.Errorf("store streamed trade %d: no symbol", t.ID)
	}
	n, _, err := s.store(ctx, t.Symbol, []exchange.Trade{t}, false)
	return n == 1, err
}

// store writes trades of one symbol and, with cursor (a fromId walk's page), moves the cursor,
// in one statement.
func (s *TradeSync) store(ctx context.Context, symbol string, trades []exchange.Trade, cursor bool) (int, time.Time, error) {
	n := len(trades)
	var (
		ids, orders, lists          = make([]int64, n), make([]int64, n), make([]int64, n)
		prices, qtys, quotes, comms = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		assets                      = make([]string, n)
		times                       = make([]time.Time, n)
		buyers, makers, best        = make([]bool, n), make([]bool, n), make([]bool, n)
		raws                        = make([]string, n)
	)
	for i, t := range trades {
		ids[i], orders[i], lists[i] = t.ID, t.OrderID, t.OrderListID
		prices[i], qtys[i], quotes[i], comms[i] = t.Price.String(), t.Qty.String(), t.QuoteQty.String(), t.Commission.String()
		assets[i], times[i] = t.CommissionAsset, t.Time
		buyers[i], makers[i], best[i] = t.IsBuyer, t.IsMaker, t.IsBestMatch
		raws[i] = string(t.Raw)
		if raws[i] == "" {
			raws[i] = "null"
		}
	}
	rows, err := s.pool.Query(ctx, storeTradesSQL, s.cfg.Scope, symbol, ids, orders, lists, prices, qtys, quotes,
		comms, assets, times, buyers, makers, best, raws, cursor)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("store %d trades of %s: %w", n, symbol, err)
	}
	newTimes, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("store %d trades of %s: %w", n, symbol, err)
	}
	var earliest time.Time
	for _, t := range newTimes {
		earliest = earlier(earliest, t)
	}
	return len(newTimes), earliest, nil
}

func earlier(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}
