package main

import (
	"time"

	"cryptopill.dev/jobs/libs/config"
	"cryptopill.dev/jobs/libs/exchange"
)

// Config is the cinimport's configuration, read from the environment.
type Config struct {
	config.Common
	// Scope is the account scope whose trades the sync stores, CIN_ACCOUNT_SCOPE (default
	// "default"). Imports cover every scope: each session names its own.
	Scope string
	// BaseURL is the exchange, BINANCE_BASE_URL (the simulated exchange in dev).
	BaseURL string
	// APIKey and APISecret are BINANCE_API_KEY and BINANCE_API_SECRET (or their _FILE forms). The
	// trade sync runs only when both are set. Never logged.
	APIKey    string
	APISecret exchange.Secret
	// TradeSymbols are the markets synced, CIN_TRADE_SYMBOLS (comma-separated). Empty: the
	// enabled universe plus every symbol already synced.
	TradeSymbols []string
	// TradeLookback is how far back a symbol's first sync reaches, CIN_TRADE_LOOKBACK (default 168h).
	TradeLookback time.Duration
	// TradeSource is where trades come from, CIN_TRADE_SOURCE: "stream" (default; Binance's
	// user data stream, with myTrades sweeps as reconciliation) or "rest" (myTrades of every
	// symbol every TradeSyncInterval, the old polling).
	TradeSource string
	// TradeSyncInterval is the pause between trade syncs in rest mode, CIN_TRADE_SYNC_INTERVAL
	// (default 1m).
	TradeSyncInterval time.Duration
	// TradeReconcileInterval is how often stream mode sweeps every symbol through myTrades when
	// no reconnect asked for it, CIN_TRADE_RECONCILE_INTERVAL (default 1h).
	TradeReconcileInterval time.Duration
	// TradeSyncWeightPerMinute caps the request weight the myTrades sweeps spend a minute in
	// stream mode, CIN_TRADE_SYNC_WEIGHT_PER_MINUTE (default 300, 5% of Binance's 6,000; 20 to
	// 6000): a sweep of 200 symbols then takes about 13 minutes and leaves the rest of the IP's
	// budget to straux.
	TradeSyncWeightPerMinute int
	// PriceMaxAge is the oldest USDT price used to value a trade or fee, CIN_PRICE_MAX_AGE
	// (default 1h). Older or missing: the USDT amount is NULL.
	PriceMaxAge time.Duration
	// Debounce is how long trade inserts of one scope are collected into one import,
	// CIN_IMPORT_DEBOUNCE (default 250ms).
	Debounce time.Duration
}

// Trade sources (CIN_TRADE_SOURCE).
const (
	TradeSourceStream = "stream"
	TradeSourceREST   = "rest"
)

// SyncEnabled reports whether trade sync credentials are configured.
func (c Config) SyncEnabled() bool { return c.APIKey != "" && c.APISecret != "" }

// LoadConfig reads the cinimport's configuration.
func LoadConfig(lookup func(string) (string, bool)) (Config, error) {
	l := config.NewLoader(lookup)
	cfg := Config{
		Common:                   l.LoadCommon("127.0.0.1:9103"),
		Scope:                    l.String("CIN_ACCOUNT_SCOPE", "default"),
		BaseURL:                  l.String("BINANCE_BASE_URL", exchange.DefaultBaseURL),
		APIKey:                   l.Secret("BINANCE_API_KEY"),
		APISecret:                exchange.Secret(l.Secret("BINANCE_API_SECRET")),
		TradeSymbols:             l.List("CIN_TRADE_SYMBOLS", nil),
		TradeLookback:            l.Duration("CIN_TRADE_LOOKBACK", 7*24*time.Hour),
		TradeSource:              l.Enum("CIN_TRADE_SOURCE", TradeSourceStream, TradeSourceStream, TradeSourceREST),
		TradeSyncInterval:        l.Duration("CIN_TRADE_SYNC_INTERVAL", time.Minute),
		TradeReconcileInterval:   l.Duration("CIN_TRADE_RECONCILE_INTERVAL", time.Hour),
		TradeSyncWeightPerMinute: l.Int("CIN_TRADE_SYNC_WEIGHT_PER_MINUTE", 300, exchange.MyTradesWeight, 6000),
		PriceMaxAge:              l.Duration("CIN_PRICE_MAX_AGE", time.Hour),
		Debounce:                 l.Duration("CIN_IMPORT_DEBOUNCE", 250*time.Millisecond),
	}
	l.Check((cfg.APIKey == "") == (cfg.APISecret == ""), "BINANCE_API_KEY/BINANCE_API_SECRET", "(set)",
		"both set (trade sync on) or both unset (off)")
	return cfg, l.Err()
}
