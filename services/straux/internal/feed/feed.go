// Package feed is straux's stream mode: it holds the exchange's market streams of the symbols
// this replica owns (exchange.Feed), keeps their local order books (exchange.Books) and 24-hour
// tickers, and serves them to the tick runner (ticks.Streams).
//
// # Who holds which symbol
//
// Replicas share the universe: each symbol is owned by exactly one live replica (package members:
// rendezvous hashing over the replicas that heartbeat in Postgres). Every Refresh (1 s) and at once
// when the membership changes, the feed re-reads the universe and its share of it and
// re-subscribes: each symbol's diff-depth stream and its 24-hour ticker stream. A symbol that moves to another replica is kept for Linger (make before break):
// the new owner's book needs a REST snapshot first, and until it is live the old one still
// samples the symbol from its book; the tick claims make sure it is written once.
//
// # Degradation
//
// A book that is not live (syncing after a gap, a reconnect or a new subscription; stale; its
// connection down) is sampled over REST by the runner, within the tick's weight budget, and shows
// in cp_straux_rest_fallbacks_total{reason} and in the books-by-state gauge.
package feed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"cryptopill.dev/jobs/libs/exchange"
)

// Membership says which symbols this replica owns. nil owns every symbol (one replica).
type Membership interface {
	// Owned returns the symbols, among symbols, this replica owns now.
	Owned(symbols []string) []string
	// Changes is signalled when the live set of replicas changes.
	Changes() <-chan struct{}
	// Live lists the live replicas (this one included while it is a member).
	Live() []string
}

// Config configures a Feed. Zero fields take the defaults in their comments.
type Config struct {
	// URL is the stream endpoint (scheme and host), e.g. wss://stream.binance.com:9443. Required.
	URL string
	// Snapshot fetches a REST depth snapshot (resyncs); Client.Depth. Required.
	Snapshot func(ctx context.Context, symbol string, limit int) (*exchange.OrderBook, error)
	// SnapshotLimit is a snapshot's levels per side. Default 100 (weight 5).
	SnapshotLimit int
	// ResyncPerSecond paces snapshots. Default 10 (50 weight a second at limit 100).
	ResyncPerSecond float64
	// StaleAfter: a book without an event for this long is stale (sampled over REST). Default 5 s.
	StaleAfter time.Duration
	// Universe is the enabled symbols now. Required.
	Universe func(ctx context.Context) ([]string, error)
	// Members shares the universe with the other replicas. nil: this replica owns all.
	Members Membership
	// Refresh is how often the universe and the share are re-read. Default 1 s.
	Refresh time.Duration
	// Linger is how long a symbol that moved to another replica is still held (a fixed time,
	// meant to cover the new holder's resync). Default 2 min; negative: not at all.
	Linger time.Duration
	// Registerer receives the feed's metrics. nil: not registered.
	Registerer prometheus.Registerer
	// Logger. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Feed holds the streams of this replica's symbols. Create it with New and Run it.
type Feed struct {
	cfg     Config
	log     *slog.Logger
	feed    *exchange.Feed
	books   *exchange.Books
	tickers *exchange.Tickers
	mux     *exchange.FeedMux

	mu            sync.Mutex
	universe      []string             // the last universe read
	owned         map[string]bool      // owned now
	lingering     map[string]time.Time // moved away, held until
	held          []string             // owned ∪ lingering, sorted
	refreshErrors int64
}

// New builds a Feed.
func New(cfg Config) (*Feed, error) {
	if cfg.URL == "" || cfg.Snapshot == nil || cfg.Universe == nil {
		return nil, errors.New("feed: URL, Snapshot and Universe are required")
	}
	if cfg.ResyncPerSecond <= 0 {
		cfg.ResyncPerSecond = 10
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = time.Second
	}
	if cfg.Linger == 0 {
		cfg.Linger = 2 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger.With("component", "feed")
	books, err := exchange.NewBooks(exchange.BooksConfig{Snapshot: cfg.Snapshot, SnapshotLimit: cfg.SnapshotLimit,
		ResyncPerSecond: cfg.ResyncPerSecond, StaleAfter: cfg.StaleAfter, Logger: log, Now: cfg.Now})
	if err != nil {
		return nil, err
	}
	tickers := exchange.NewTickers(exchange.TickersConfig{Now: cfg.Now, StaleAfter: cfg.StaleAfter, Logger: log})
	mux, err := exchange.NewFeedMux(map[string]exchange.FeedHandler{
		exchange.DepthStreamKind: books, exchange.TickerStreamKind: tickers}, log)
	if err != nil {
		return nil, err
	}
	f := &Feed{cfg: cfg, log: log, books: books, tickers: tickers, mux: mux, owned: map[string]bool{}, lingering: map[string]time.Time{}}
	f.feed, err = exchange.NewFeed(exchange.FeedConfig{URL: cfg.URL, Logger: log, Now: cfg.Now}, mux)
	if err != nil {
		return nil, err
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(newCollector(f))
	}
	return f, nil
}

// Run holds the streams until ctx ends.
func (f *Feed) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Add(2)
	go func() { defer wg.Done(); errc <- f.feed.Run(ctx) }()
	go func() { defer wg.Done(); errc <- f.books.Run(ctx) }()
	var changes <-chan struct{}
	if f.cfg.Members != nil {
		changes = f.cfg.Members.Changes()
	}
	t := time.NewTicker(f.cfg.Refresh)
	defer t.Stop()
	var (
		err      error
		lastWarn time.Time
	)
	for {
		if rerr := f.refresh(ctx); rerr != nil && ctx.Err() == nil && time.Since(lastWarn) >= time.Minute {
			lastWarn = time.Now()
			f.log.Warn("stream feed: cannot read the universe; keeping the last one read (logged once a minute, counted in cp_straux_stream_refresh_errors_total)", "err", rerr)
		}
		select {
		case <-ctx.Done():
		case err = <-errc:
			cancel()
		case <-t.C:
			continue
		case <-changes:
			continue
		}
		break
	}
	cancel()
	wg.Wait()
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// refresh re-reads the universe and this replica's share of it and sets the streams.
func (f *Feed) refresh(ctx context.Context) error {
	uctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	universe, err := f.cfg.Universe(uctx)
	cancel()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		// Membership changes and lingering still apply, to the last universe read.
		f.refreshErrors++
		if f.universe != nil {
			f.applyLocked(f.universe)
		}
		return err
	}
	f.universe = universe
	f.applyLocked(universe)
	return nil
}

// applyLocked sets the streams of this replica's share of universe (and the lingering ones).
func (f *Feed) applyLocked(universe []string) {
	owned := universe
	if f.cfg.Members != nil {
		owned = f.cfg.Members.Owned(universe)
	}
	now := f.cfg.Now()
	inUniverse := make(map[string]bool, len(universe))
	for _, s := range universe {
		inUniverse[s] = true
	}
	next := make(map[string]bool, len(owned))
	for _, s := range owned {
		next[s] = true
		delete(f.lingering, s)
	}
	for s := range f.owned {
		if !next[s] && inUniverse[s] && f.cfg.Linger > 0 {
			f.lingering[s] = now.Add(f.cfg.Linger) // moved to another replica
		}
	}
	for s, until := range f.lingering {
		if !inUniverse[s] || !now.Before(until) {
			delete(f.lingering, s)
		}
	}
	held := make([]string, 0, len(next)+len(f.lingering))
	for s := range next {
		held = append(held, s)
	}
	for s := range f.lingering {
		held = append(held, s)
	}
	slices.Sort(held)
	changed := !slices.Equal(held, f.held)
	if changed && len(held) != len(f.held) {
		f.log.Info("stream feed: symbols held", "owned", len(next), "lingering", len(f.lingering), "universe", len(universe))
	}
	f.owned, f.held = next, held
	if changed {
		f.feed.SetStreams(append(f.books.SetSymbols(held), f.tickers.SetSymbols(held)...))
	}
	if sc, ok := f.cfg.Members.(interface{ SetStreams(int) }); ok {
		sc.SetStreams(f.feed.Stats().Streams) // each held symbol's depth and ticker streams
	}
}

// Book is a held symbol's local book (ticks.Streams).
func (f *Feed) Book(symbol string, depth int) (*exchange.OrderBook, string, time.Duration, bool) {
	return f.books.Book(symbol, depth)
}

// Sums is a held symbol's local book read as sums (ticks.Streams).
func (f *Feed) Sums(symbol string, depth, top int) (exchange.BookSums, string, time.Duration, bool) {
	return f.books.Sums(symbol, depth, top)
}

// Ticker is a held symbol's 24-hour ticker from its stream (ticks.Streams).
func (f *Feed) Ticker(symbol string) (exchange.Ticker24h, time.Duration, bool) {
	return f.tickers.Ticker(symbol)
}

// Live lists the held symbols whose books are live (ticks.Streams).
func (f *Feed) Live() []string { return f.books.Live() }

// Held lists what this replica holds, live or not (ticks.Streams).
func (f *Feed) Held() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.held)
}

// Shared reports whether other replicas hold streams too (ticks.Streams).
func (f *Feed) Shared() bool { return f.cfg.Members != nil && len(f.cfg.Members.Live()) > 1 }

// HeldCounts is what this replica holds: its own symbols and those lingering after a move.
func (f *Feed) HeldCounts() (owned, lingering int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.owned), len(f.lingering)
}

// Stats are the feed's and the books' counters.
func (f *Feed) Stats() (exchange.FeedStats, exchange.BooksStats) {
	return f.feed.Stats(), f.books.Stats()
}

func (f *Feed) String() string {
	o, l := f.HeldCounts()
	return fmt.Sprintf("feed(%s, owned %d, lingering %d)", f.cfg.URL, o, l)
}
