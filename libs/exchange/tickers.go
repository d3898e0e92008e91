package exchange

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// TickerStream is the 24-hour ticker stream of a symbol, e.g. "btcusdt@ticker".
func TickerStream(symbol string) string { return strings.ToLower(symbol) + TickerStreamKind }

// TickersConfig configures Tickers; every field's comment says its default.
type TickersConfig struct {
	// Now is the clock of ticker ages (the Feed's: received times are read from it). Default
	// time.Now.
	Now func() time.Time
	// StaleAfter: a ticker not updated for this long is not served. Default 5 s (the stream
	// sends one a second).
	StaleAfter time.Duration
	// Logger receives the first bad event of each stream. Default: discard.
	Logger *slog.Logger
}

// TickersStats counts what Tickers did.
type TickersStats struct {
	Events    int64 // events kept
	BadEvents int64 // events that could not be read, or named another symbol than their stream's
	Dropped   int64 // events no newer than the one held (both connections of a rotation deliver)
	Ignored   int64 // events of symbols not kept (after SetSymbols dropped them)
	Downs     int64 // stream-down notices of kept symbols
	Live      int   // symbols whose ticker Ticker serves now
	Symbols   int   // symbols kept
}

// Tickers keeps the newest 24-hour ticker of each symbol from "<symbol>@ticker" streams, so a
// sampler reads what GET /api/v3/ticker/24hr gives without calling it. It is a FeedHandler (with
// Books, behind a FeedMux). Safe for concurrent use.
type Tickers struct {
	cfg TickersConfig

	mu      sync.Mutex
	tickers map[string]*heldTicker // by upper-case symbol
	badLog  map[string]bool        // streams whose bad event has been logged
	stats   TickersStats
}

type heldTicker struct {
	t        Ticker24h
	eventMs  int64     // the event's time, the exchange's clock
	received time.Time // zero: none yet
	down     bool      // its stream's connection ended since
}

// NewTickers builds Tickers.
func NewTickers(cfg TickersConfig) *Tickers {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Tickers{cfg: cfg, tickers: map[string]*heldTicker{}, badLog: map[string]bool{}}
}

// SetSymbols sets the symbols kept (upper case) and returns their streams, for Feed.SetStreams.
func (k *Tickers) SetSymbols(symbols []string) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	keep := make(map[string]bool, len(symbols))
	streams := make([]string, 0, len(symbols))
	for _, s := range symbols {
		keep[s] = true
		streams = append(streams, TickerStream(s))
		if k.tickers[s] == nil {
			k.tickers[s] = &heldTicker{}
		}
	}
	for s := range k.tickers {
		if !keep[s] {
			delete(k.tickers, s)
		}
	}
	return streams
}

// StreamMessage keeps one ticker event (FeedHandler).
func (k *Tickers) StreamMessage(stream string, data []byte, received time.Time) {
	t, err := decodeTickerEvent(data)
	sym := symbolOfStream(stream)
	if err == nil && t.Symbol != sym {
		err = fmt.Errorf("ticker event for %s on stream %s", t.Symbol, stream)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if err != nil {
		k.stats.BadEvents++
		if !k.badLog[stream] {
			k.badLog[stream] = true
			k.cfg.Logger.Warn("bad ticker event (logged once per stream, all counted)", "stream", stream, "err", err)
		}
		return
	}
	h := k.tickers[sym]
	switch {
	case h == nil:
		k.stats.Ignored++
	case !h.received.IsZero() && t.CloseTime.UnixMilli() <= h.eventMs && !h.down:
		k.stats.Dropped++
	default:
		h.t, h.eventMs, h.received, h.down = t, t.CloseTime.UnixMilli(), received, false
		k.stats.Events++
	}
}

// StreamDown marks the stream's ticker down (FeedHandler): not served until its next event.
func (k *Tickers) StreamDown(stream string, _ error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if h := k.tickers[symbolOfStream(stream)]; h != nil {
		h.down = true
		k.stats.Downs++
	}
}

// Ticker returns a symbol's newest ticker and its age (since it was received). ok is false, and
// t zero, when there is none, its stream is down, or it is older than StaleAfter; age is still
// the held one's (zero when none).
func (k *Tickers) Ticker(symbol string) (t Ticker24h, age time.Duration, ok bool) {
	now := k.cfg.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	h := k.tickers[symbol]
	if h == nil || h.received.IsZero() {
		return Ticker24h{}, 0, false
	}
	age = now.Sub(h.received)
	if !k.liveLocked(h, now) {
		return Ticker24h{}, age, false
	}
	return h.t, age, true
}

func (k *Tickers) liveLocked(h *heldTicker, now time.Time) bool {
	return !h.received.IsZero() && !h.down && now.Sub(h.received) <= k.cfg.StaleAfter
}

// Stats returns the counters and how many tickers are served now.
func (k *Tickers) Stats() TickersStats {
	now := k.cfg.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	st := k.stats
	st.Symbols = len(k.tickers)
	for _, h := range k.tickers {
		if k.liveLocked(h, now) {
			st.Live++
		}
	}
	return st
}
