package exchange

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/shopspring/decimal"
)

// SymbolTrading is SymbolInfo.Status of a symbol that trades. Any other status (BREAK, HALT,
// CANCEL_ONLY, END_OF_DAY, …) has no market: an empty book and a ticker of zeros.
const SymbolTrading = "TRADING"

// ExchangeInfo is GET /api/v3/exchangeInfo, reduced to what the services use.
type ExchangeInfo struct {
	Timezone   string
	ServerTime time.Time
	RateLimits []RateLimit
	Symbols    []SymbolInfo
}

// RateLimit is one of exchangeInfo's rateLimits.
type RateLimit struct {
	// Type is REQUEST_WEIGHT, ORDERS or RAW_REQUESTS.
	Type string `json:"rateLimitType"`
	// Interval (SECOND, MINUTE, HOUR, DAY) times IntervalNum is the window.
	Interval    string `json:"interval"`
	IntervalNum int    `json:"intervalNum"`
	Limit       int    `json:"limit"`
}

// SymbolInfo is one of exchangeInfo's symbols.
type SymbolInfo struct {
	Symbol string
	// Status is TRADING when the market is open (also HALT, BREAK, …).
	Status              string
	BaseAsset           string
	QuoteAsset          string
	BaseAssetPrecision  int
	QuoteAssetPrecision int
	// TickSize (PRICE_FILTER) and StepSize (LOT_SIZE); zero when the exchange sent no filter.
	TickSize decimal.Decimal
	StepSize decimal.Decimal
}

func (e *ExchangeInfo) UnmarshalJSON(b []byte) error {
	var w struct {
		Timezone   string      `json:"timezone"`
		ServerTime int64       `json:"serverTime"`
		RateLimits []RateLimit `json:"rateLimits"`
		Symbols    []struct {
			Symbol              string `json:"symbol"`
			Status              string `json:"status"`
			BaseAsset           string `json:"baseAsset"`
			QuoteAsset          string `json:"quoteAsset"`
			BaseAssetPrecision  int    `json:"baseAssetPrecision"`
			QuoteAssetPrecision int    `json:"quoteAssetPrecision"`
			Filters             []struct {
				FilterType string          `json:"filterType"`
				TickSize   decimal.Decimal `json:"tickSize"`
				StepSize   decimal.Decimal `json:"stepSize"`
			} `json:"filters"`
		} `json:"symbols"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*e = ExchangeInfo{Timezone: w.Timezone, ServerTime: time.UnixMilli(w.ServerTime).UTC(), RateLimits: w.RateLimits}
	e.Symbols = make([]SymbolInfo, len(w.Symbols))
	for i, s := range w.Symbols {
		si := SymbolInfo{Symbol: s.Symbol, Status: s.Status, BaseAsset: s.BaseAsset, QuoteAsset: s.QuoteAsset,
			BaseAssetPrecision: s.BaseAssetPrecision, QuoteAssetPrecision: s.QuoteAssetPrecision}
		for _, f := range s.Filters {
			switch f.FilterType {
			case "PRICE_FILTER":
				si.TickSize = f.TickSize
			case "LOT_SIZE":
				si.StepSize = f.StepSize
			}
		}
		e.Symbols[i] = si
	}
	return nil
}

// Kline is one candle of GET /api/v3/klines. The last one of an answer may still be open
// (CloseTime in the future).
type Kline struct {
	OpenTime  time.Time
	Open      decimal.Decimal
	High      decimal.Decimal
	Low       decimal.Decimal
	Close     decimal.Decimal
	Volume    decimal.Decimal // base asset
	CloseTime time.Time
	// QuoteVolume is in the quote asset.
	QuoteVolume decimal.Decimal
	Trades      int64
	// TakerBuyBaseVolume and TakerBuyQuoteVolume are the taker-buy share of the volumes.
	TakerBuyBaseVolume  decimal.Decimal
	TakerBuyQuoteVolume decimal.Decimal
}

// UnmarshalJSON reads Binance's 12-element array.
func (k *Kline) UnmarshalJSON(b []byte) error {
	var a []json.RawMessage
	if err := json.Unmarshal(b, &a); err != nil {
		return err
	}
	if len(a) < 11 {
		return fmt.Errorf("kline: %d elements, want 12", len(a))
	}
	var open, closeT int64
	fields := []struct {
		dst any
		i   int
	}{
		{&open, 0}, {&k.Open, 1}, {&k.High, 2}, {&k.Low, 3}, {&k.Close, 4}, {&k.Volume, 5},
		{&closeT, 6}, {&k.QuoteVolume, 7}, {&k.Trades, 8}, {&k.TakerBuyBaseVolume, 9}, {&k.TakerBuyQuoteVolume, 10},
	}
	for _, f := range fields {
		// null would leave the field zero: a candle with no price is not one.
		if string(a[f.i]) == "null" {
			return fmt.Errorf("kline element %d: null", f.i)
		}
		if err := json.Unmarshal(a[f.i], f.dst); err != nil {
			return fmt.Errorf("kline element %d: %w", f.i, err)
		}
	}
	k.OpenTime, k.CloseTime = time.UnixMilli(open).UTC(), time.UnixMilli(closeT).UTC()
	return nil
}

// Ticker24h is GET /api/v3/ticker/24hr for one symbol: the rolling 24 hours up to CloseTime.
type Ticker24h struct {
	Symbol             string          `json:"symbol"`
	PriceChange        decimal.Decimal `json:"priceChange"`
	PriceChangePercent decimal.Decimal `json:"priceChangePercent"`
	WeightedAvgPrice   decimal.Decimal `json:"weightedAvgPrice"`
	PrevClosePrice     decimal.Decimal `json:"prevClosePrice"`
	LastPrice          decimal.Decimal `json:"lastPrice"`
	LastQty            decimal.Decimal `json:"lastQty"`
	BidPrice           decimal.Decimal `json:"bidPrice"`
	BidQty             decimal.Decimal `json:"bidQty"`
	AskPrice           decimal.Decimal `json:"askPrice"`
	AskQty             decimal.Decimal `json:"askQty"`
	OpenPrice          decimal.Decimal `json:"openPrice"`
	HighPrice          decimal.Decimal `json:"highPrice"`
	LowPrice           decimal.Decimal `json:"lowPrice"`
	Volume             decimal.Decimal `json:"volume"`
	QuoteVolume        decimal.Decimal `json:"quoteVolume"`
	OpenTime           time.Time       `json:"openTime"`
	CloseTime          time.Time       `json:"closeTime"`
	FirstID            int64           `json:"firstId"`
	LastID             int64           `json:"lastId"`
	Count              int64           `json:"count"`
}

func (t *Ticker24h) UnmarshalJSON(b []byte) error {
	type plain Ticker24h
	var w struct {
		plain
		OpenTime  int64 `json:"openTime"`
		CloseTime int64 `json:"closeTime"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*t = Ticker24h(w.plain)
	t.OpenTime, t.CloseTime = time.UnixMilli(w.OpenTime).UTC(), time.UnixMilli(w.CloseTime).UTC()
	return nil
}

// PriceTicker is GET /api/v3/ticker/price for one symbol: the last trade price.
type PriceTicker struct {
	Symbol string          `json:"symbol"`
	Price  decimal.Decimal `json:"price"`
}

// OrderBook is GET /api/v3/depth: bids best (highest) first, asks best (lowest) first.
type OrderBook struct {
	LastUpdateID int64        `json:"lastUpdateId"`
	Bids         []PriceLevel `json:"bids"`
	Asks         []PriceLevel `json:"asks"`
}

// PriceLevel is one level of an order book.
type PriceLevel struct {
	Price decimal.Decimal
	Qty   decimal.Decimal
}

// UnmarshalJSON reads Binance's ["price","qty"] pair: exactly two decimals (a Go array would
// take a short or long one silently, leaving a zero quantity).
func (p *PriceLevel) UnmarshalJSON(b []byte) error {
	var a []json.RawMessage
	if err := json.Unmarshal(b, &a); err != nil {
		return fmt.Errorf("price level: %w", err)
	}
	if len(a) != 2 {
		return fmt.Errorf("price level: %d elements, want [price, qty]", len(a))
	}
	for i, dst := range []*decimal.Decimal{&p.Price, &p.Qty} {
		if string(a[i]) == "null" {
			return fmt.Errorf("price level element %d: null", i)
		}
		if err := json.Unmarshal(a[i], dst); err != nil {
			return fmt.Errorf("price level element %d: %w", i, err)
		}
	}
	return nil
}

// Trade is one of the account's trades from GET /api/v3/myTrades.
type Trade struct {
	Symbol          string          `json:"symbol"`
	ID              int64           `json:"id"`
	OrderID         int64           `json:"orderId"`
	OrderListID     int64           `json:"orderListId"`
	Price           decimal.Decimal `json:"price"`
	Qty             decimal.Decimal `json:"qty"`
	QuoteQty        decimal.Decimal `json:"quoteQty"`
	Commission      decimal.Decimal `json:"commission"`
	CommissionAsset string          `json:"commissionAsset"`
	Time            time.Time       `json:"time"`
	IsBuyer         bool            `json:"isBuyer"`
	IsMaker         bool            `json:"isMaker"`
	IsBestMatch     bool            `json:"isBestMatch"`
	// Raw is the trade's JSON as the exchange sent it, for storing alongside the columns.
	Raw json.RawMessage `json:"-"`
}

func (t *Trade) UnmarshalJSON(b []byte) error {
	type plain Trade
	var w struct {
		plain
		Time int64 `json:"time"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*t = Trade(w.plain)
	t.Time = time.UnixMilli(w.Time).UTC()
	t.Raw = append(json.RawMessage(nil), b...)
	return nil
}
