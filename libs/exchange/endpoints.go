package exchange

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// ServerTime is GET /api/v3/time (weight 1).
func (c *Client) ServerTime(ctx context.Context) (time.Time, error) {
	var out struct {
		ServerTime int64 `json:"serverTime"`
	}
	if err := c.do(ctx, call{path: "/api/v3/time", weight: weightTime, noInit: true}, &out); err != nil {
		return time.Time{}, err
	}
	return time.UnixMilli(out.ServerTime).UTC(), nil
}

// ExchangeInfo is GET /api/v3/exchangeInfo (weight 20) for the given symbols, or for every symbol
// when none is given. Its REQUEST_WEIGHT rate limit becomes the host's budget (unless
// Config.WeightLimit fixes it).
func (c *Client) ExchangeInfo(ctx context.Context, symbols ...string) (*ExchangeInfo, error) {
	q, err := symbolsQuery(symbols, false)
	if err != nil {
		return nil, fmt.Errorf("exchangeInfo: %w", err)
	}
	var out ExchangeInfo
	if err := c.do(ctx, call{path: "/api/v3/exchangeInfo", query: q, weight: weightExchangeInfo, noInit: true}, &out); err != nil {
		return nil, err
	}
	if !c.fixedLimit {
		c.lim.configure(requestWeightLimit(out.RateLimits))
	}
	return &out, nil
}

// requestWeightLimit picks the REQUEST_WEIGHT limit; Binance's default when there is none.
func requestWeightLimit(rls []RateLimit) (int, time.Duration) {
	for _, rl := range rls {
		if rl.Type != "REQUEST_WEIGHT" || rl.Limit <= 0 {
			continue
		}
		if w, ok := rateLimitWindow(rl.Interval, rl.IntervalNum); ok {
			return rl.Limit, w
		}
	}
	return defaultWeightLimit, defaultWeightWindow
}

// KlinesRequest is the query of Klines.
type KlinesRequest struct {
	// Symbol and Interval (see ValidInterval) are required.
	Symbol   string
	Interval string
	// StartTime and EndTime bound the candles' open times; zero: unbounded (the latest candles).
	StartTime time.Time
	EndTime   time.Time
	// Limit is the number of candles, at most 1000. Default 500.
	Limit int
}

// Klines is GET /api/v3/klines (weight 2). Candles come oldest first; the last may be open.
func (c *Client) Klines(ctx context.Context, req KlinesRequest) ([]Kline, error) {
	if req.Symbol == "" {
		return nil, fmt.Errorf("klines: symbol: %w", ErrInvalidArgument)
	}
	if !ValidInterval(req.Interval) {
		return nil, fmt.Errorf("klines %s: interval %q: %w", req.Symbol, req.Interval, ErrInvalidArgument)
	}
	if req.Limit < 0 || req.Limit > 1000 {
		return nil, fmt.Errorf("klines %s: limit %d not in 1..1000: %w", req.Symbol, req.Limit, ErrInvalidArgument)
	}
	q := url.Values{"symbol": {req.Symbol}, "interval": {req.Interval}}
	setTime(q, "startTime", req.StartTime)
	setTime(q, "endTime", req.EndTime)
	setInt(q, "limit", int64(req.Limit))
	var out []Kline
	if err := c.do(ctx, call{path: "/api/v3/klines", query: q, weight: weightKlines}, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Ticker24h is GET /api/v3/ticker/24hr for one symbol (weight 2).
func (c *Client) Ticker24h(ctx context.Context, symbol string) (*Ticker24h, error) {
	if symbol == "" {
		return nil, fmt.Errorf("ticker/24hr: symbol: %w", ErrInvalidArgument)
	}
	var out Ticker24h
	q := url.Values{"symbol": {symbol}}
	if err := c.do(ctx, call{path: "/api/v3/ticker/24hr", query: q, weight: Ticker24hWeight(1)}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Tickers24h is GET /api/v3/ticker/24hr for several symbols in one call (symbols=[...]; weight 2
// for 1–20 symbols, 40 for 21–100, 80 above), or for every symbol when none is given (weight 80).
func (c *Client) Tickers24h(ctx context.Context, symbols []string) ([]Ticker24h, error) {
	q, err := symbolsQuery(symbols, true)
	if err != nil {
		return nil, fmt.Errorf("ticker/24hr: %w", err)
	}
	var out []Ticker24h
	if err := c.do(ctx, call{path: "/api/v3/ticker/24hr", query: q, weight: Ticker24hWeight(len(symbols))}, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// TickerPrice is GET /api/v3/ticker/price for one symbol (weight 2).
func (c *Client) TickerPrice(ctx context.Context, symbol string) (*PriceTicker, error) {
	if symbol == "" {
		return nil, fmt.Errorf("ticker/price: symbol: %w", ErrInvalidArgument)
	}
	var out PriceTicker
	q := url.Values{"symbol": {symbol}}
	if err := c.do(ctx, call{path: "/api/v3/ticker/price", query: q, weight: tickerPriceWeight(true)}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// TickerPrices is GET /api/v3/ticker/price for several symbols, or every symbol when none is
// given (weight 4).
func (c *Client) TickerPrices(ctx context.Context, symbols []string) ([]PriceTicker, error) {
	q, err := symbolsQuery(symbols, true)
	if err != nil {
		return nil, fmt.Errorf("ticker/price: %w", err)
	}
	var out []PriceTicker
	if err := c.do(ctx, call{path: "/api/v3/ticker/price", query: q, weight: tickerPriceWeight(false)}, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Depth is GET /api/v3/depth: the order book's best limit levels each side (default 100, at most
// 5000; weight 5 up to 100, 25 up to 500, 50 up to 1000, 250 above).
func (c *Client) Depth(ctx context.Context, symbol string, limit int) (*OrderBook, error) {
	if symbol == "" {
		return nil, fmt.Errorf("depth: symbol: %w", ErrInvalidArgument)
	}
	if limit < 0 || limit > 5000 {
		return nil, fmt.Errorf("depth %s: limit %d not in 1..5000: %w", symbol, limit, ErrInvalidArgument)
	}
	q := url.Values{"symbol": {symbol}}
	setInt(q, "limit", int64(limit))
	var out OrderBook
	if err := c.do(ctx, call{path: "/api/v3/depth", query: q, weight: DepthWeight(limit)}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// MyTradesRequest is the query of MyTrades.
type MyTradesRequest struct {
	// Symbol is required.
	Symbol string
	// FromID, if set, returns trades with id >= *FromID, oldest first: the import cursor. Without
	// it (and without times) the exchange returns the most recent trades.
	FromID *int64
	// StartTime and EndTime bound the trade times (at most 24 h apart); zero: unbounded. Binance
	// rejects them together with FromID.
	StartTime time.Time
	EndTime   time.Time
	// Limit is the number of trades, at most 1000. Default 500.
	Limit int
}

// MyTrades is the signed GET /api/v3/myTrades (weight 20): the account's trades in one symbol.
func (c *Client) MyTrades(ctx context.Context, req MyTradesRequest) ([]Trade, error) {
	if req.Symbol == "" {
		return nil, fmt.Errorf("myTrades: symbol: %w", ErrInvalidArgument)
	}
	if req.Limit < 0 || req.Limit > 1000 {
		return nil, fmt.Errorf("myTrades %s: limit %d not in 1..1000: %w", req.Symbol, req.Limit, ErrInvalidArgument)
	}
	q := url.Values{"symbol": {req.Symbol}}
	if req.FromID != nil {
		q.Set("fromId", strconv.FormatInt(*req.FromID, 10))
	}
	setTime(q, "startTime", req.StartTime)
	setTime(q, "endTime", req.EndTime)
	setInt(q, "limit", int64(req.Limit))
	var out []Trade
	if err := c.do(ctx, call{path: "/api/v3/myTrades", query: q, weight: weightMyTrades, signed: true}, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func setTime(q url.Values, key string, t time.Time) {
	if !t.IsZero() {
		q.Set(key, strconv.FormatInt(t.UnixMilli(), 10))
	}
}

func setInt(q url.Values, key string, v int64) {
	if v != 0 {
		q.Set(key, strconv.FormatInt(v, 10))
	}
}

// symbolsQuery encodes symbols as Binance wants them: symbols=["A","B"] (a JSON array), or
// symbol=A for a single one unless alwaysArray. No symbols: no parameter.
func symbolsQuery(symbols []string, alwaysArray bool) (url.Values, error) {
	q := url.Values{}
	for _, s := range symbols {
		if s == "" {
			return nil, fmt.Errorf("empty symbol: %w", ErrInvalidArgument)
		}
	}
	switch {
	case len(symbols) == 0:
	case len(symbols) == 1 && !alwaysArray:
		q.Set("symbol", symbols[0])
	default:
		b, _ := json.Marshal(symbols)
		q.Set("symbols", string(b))
	}
	return q, nil
}
