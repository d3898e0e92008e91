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
	// TradeSyncInterval is the pause between trade syncs, CIN_TRADE_SYNC_INTERVAL (default 1m).
	TradeSyncInterval time.Duration
	// PriceMaxAge is the oldest USDT price used to value a trade or fee, CIN_PRICE_MAX_AGE
	// (default 1h). Older or missing: the USDT amount is NULL.
	PriceMaxAge time.Duration
	// Debounce is how long trade inserts of one scope are collected into one import,
	// CIN_IMPORT_DEBOUNCE (default 250ms).
	Debounce time.Duration
}

// SyncEnabled reports whether trade sync credentials are configured.
func (c Config) SyncEnabled() bool { return c.APIKey != "" && c.APISecret != "" }

// LoadConfig reads the cinimport's configuration.
func LoadConfig(lookup func(string) (string, bool)) (Config, error) {
	l := config.NewLoader(lookup)
	cfg := Config{
		Common:            l.LoadCommon("127.0.0.1:9103"),
		Scope:             l.String("CIN_ACCOUNT_SCOPE", "default"),
		BaseURL:           l.String("BINANCE_BASE_URL", exchange.DefaultBaseURL),
		APIKey:            l.Secret("BINANCE_API_KEY"),
		APISecret:         exchange.Secret(l.Secret("BINANCE_API_SECRET")),
		TradeSymbols:      l.List("CIN_TRADE_SYMBOLS", nil),
		TradeLookback:     l.Duration("CIN_TRADE_LOOKBACK", 7*24*time.Hour),
		TradeSyncInterval: l.Duration("CIN_TRADE_SYNC_INTERVAL", time.Minute),
		PriceMaxAge:       l.Duration("CIN_PRICE_MAX_AGE", time.Hour),
		Debounce:          l.Duration("CIN_IMPORT_DEBOUNCE", 250*time.Millisecond),
	}
	l.Check((cfg.APIKey == "") == (cfg.APISecret == ""), "BINANCE_API_KEY/BINANCE_API_SECRET", "(set)",
		"both set (trade sync on) or both unset (off)")
	return cfg, l.Err()
}
