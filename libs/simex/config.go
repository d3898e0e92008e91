package simex

import (
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// Config configures an Exchange. The zero value is a six-symbol market, seed 0, Binance's weight
// limit, no credentials and no faults.
type Config struct {
	// Symbols are the markets, e.g. "BTCUSDT", "ETHBTC": upper-case, quoted in USDT, USDC,
	// FDUSD, BTC, ETH or BNB. Default DefaultSymbols().
	Symbols []string
	// Seed picks the market's price paths; the same seed gives the same market everywhere.
	Seed int64
	// APIKey and APISecret are the one account myTrades serves. Empty: every signed call is
	// refused with -2015.
	APIKey    string
	APISecret string
	// WeightLimit is the REQUEST_WEIGHT each client (remote IP) may use per WeightWindow.
	// Default 6000 (Binance's); negative: no limit (benchmarks).
	WeightLimit int
	// WeightWindow is the weight-accounting window, a whole number of seconds, reported in
	// exchangeInfo.rateLimits and the X-MBX-USED-WEIGHT-<n><unit> header. Default one minute
	// (Binance's); tests use a few seconds.
	WeightWindow time.Duration
	// BanAfter is how many requests a client may send while a 429 is in force before it is
	// banned with 418. Default 10.
	BanAfter int
	// BanDuration is a client's first ban; each further ban doubles it, up to three days.
	// Default two minutes (Binance's).
	BanDuration time.Duration
	// TradesSince is when the account's trading began: myTrades has trades from then on.
	// Default: midnight UTC of the day before the Exchange was created.
	TradesSince time.Time
	// TradeEvery is the mean spacing of the account's trades in each symbol (each symbol's
	// spacing is between half and one and a half of it). Default two minutes.
	TradeEvery time.Duration
	// Streams are the stream endpoints' rules (zero: Binance's); see stream.go.
	Streams StreamConfig
	// Faults are switched on from the start; see SetFaults.
	Faults Faults
	// Statuses are symbols' initial statuses (see SetSymbolStatus), e.g. {"ETHBTC": "BREAK"};
	// a symbol not named is TRADING.
	Statuses map[string]string
	// MaxInFlight is how many REST requests the exchange answers at once; one more is refused
	// 503 with -1008 (server overloaded), fault or no fault, as a busy Binance does. Default
	// 512; negative: no limit (benchmarks).
	MaxInFlight int
	// Now is the exchange's clock. Default time.Now. Tests skew it to provoke -1021.
	Now func() time.Time
	// Logger receives one line per refused or faulted request at debug level. Default: discard.
	Logger *slog.Logger
}

// Faults are failures the exchange injects, switchable at runtime with SetFaults.
type Faults struct {
	// Latency delays every answer.
	Latency time.Duration
	// ErrorRate is the share of requests (0..1) answered 503 with a -1001 body.
	ErrorRate float64
	// MalformedRate is the share of 2xx answers (0..1) whose body is cut in half.
	MalformedRate float64
	// RateLimitRate is the share of requests (0..1) answered 429 with Retry-After 1s, as if the
	// client had spent its weight: calling on within that second counts towards a ban (BanAfter).
	RateLimitRate float64
	// BanRate is the share of requests (0..1) answered 418, banning the client for BanDuration
	// (doubling with each ban, as a real one does).
	BanRate float64
	// FirewallRate is the share of requests (0..1) answered 403 with the CDN firewall's HTML
	// page (see SetFirewall for a block of every request).
	FirewallRate float64
	// GatewayErrorRate is the share of requests (0..1) answered by the gateway in front of the
	// API instead: in turn 502 and 504 with an HTML page, and 500 with a -1000 JSON body.
	GatewayErrorRate float64
}

func (f Faults) validate() error {
	rate := func(r float64) bool { return r >= 0 && r <= 1 }
	if f.Latency < 0 || !rate(f.ErrorRate) || !rate(f.MalformedRate) || !rate(f.RateLimitRate) || !rate(f.BanRate) ||
		!rate(f.FirewallRate) || !rate(f.GatewayErrorRate) {
		return fmt.Errorf("simex: faults %+v: want latency >= 0 and rates in 0..1", f)
	}
	return nil
}

// DefaultSymbols is the market of a zero Config: the dev universe's USDT pairs and two crosses.
func DefaultSymbols() []string {
	return []string{"BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT", "ETHBTC", "BNBBTC"}
}

// GeneratedSymbols returns n synthetic USDT symbols (S0001USDT, S0002USDT, …) for benchmarks
// over a large universe.
func GeneratedSymbols(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("S%04dUSDT", i+1)
	}
	return out
}

const (
	defaultWeightLimit = 6000
	defaultBanAfter    = 10
	defaultMaxInFlight = 512
	maxBan             = 72 * time.Hour
)

func (c Config) withDefaults() (Config, error) {
	if len(c.Symbols) == 0 {
		c.Symbols = DefaultSymbols()
	}
	if (c.APIKey == "") != (c.APISecret == "") {
		return c, fmt.Errorf("simex: APIKey and APISecret go together")
	}
	if c.WeightLimit == 0 {
		c.WeightLimit = defaultWeightLimit
	}
	if c.WeightWindow == 0 {
		c.WeightWindow = time.Minute
	}
	if c.WeightWindow < time.Second || c.WeightWindow%time.Second != 0 {
		return c, fmt.Errorf("simex: WeightWindow %s: want a whole number of seconds", c.WeightWindow)
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = defaultMaxInFlight
	}
	for sym, st := range c.Statuses {
		if !slices.Contains(c.Symbols, sym) {
			return c, fmt.Errorf("simex: Statuses: symbol %s is not in Symbols", sym)
		}
		if err := validStatus(st); err != nil {
			return c, fmt.Errorf("simex: Statuses[%s]: %w", sym, err)
		}
	}
	if c.BanAfter <= 0 {
		c.BanAfter = defaultBanAfter
	}
	if c.BanDuration <= 0 {
		c.BanDuration = 2 * time.Minute
	}
	if c.TradeEvery <= 0 {
		c.TradeEvery = 2 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.TradesSince.IsZero() {
		c.TradesSince = c.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, c.Faults.validate()
}
