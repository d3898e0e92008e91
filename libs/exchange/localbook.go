package exchange

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shopspring/decimal"
	"golang.org/x/time/rate"
)

// BooksConfig configures local order books fed by diff-depth streams.
type BooksConfig struct {
	// Snapshot fetches a REST depth snapshot; Client.Depth, so resyncs share the host's weight
	// limiter with every other call. Required.
	Snapshot func(ctx context.Context, symbol string, limit int) (*OrderBook, error)
	// SnapshotLimit is the snapshot's levels per side. Default 100 (weight 5).
	SnapshotLimit int
	// ResyncPerSecond paces snapshots, so a mass disconnect is resynced over time instead of at
	// once. Default 5 (25 weight a second at the default limit, a quarter of Binance's budget).
	ResyncPerSecond float64
	// StaleAfter: a live book with no update for this long is stale. Default 5 s.
	StaleAfter time.Duration
	// GapGrace is how long an event that does not follow on waits for the one that does before
	// it counts as a gap: while a connection is replaced both deliver, and the new one may run
	// ahead of the old by an event. Default 1 s.
	GapGrace time.Duration
	// MaxBuffered events are kept per book while it waits for its snapshot. Default 2,000.
	MaxBuffered int
	// Logger receives gaps and resync failures. Default: discard.
	Logger *slog.Logger
	// Now is the clock of book ages. Default time.Now.
	Now func() time.Time
}

// Book states.
const (
	BookSyncing = "syncing" // waiting for a snapshot (new, after a gap, after a reconnect)
	BookLive    = "live"
	BookStale   = "stale" // live, but no update for StaleAfter
	BookDown    = "down"  // its stream's connection ended
)

// BooksStats counts what the local books did.
type BooksStats struct {
	ByState        map[string]int
	Resyncs        int64 // snapshots applied
	ResyncFailures int64 // snapshots that failed or came too old
	Gaps           int64 // sequence gaps seen (U not following u)
	Applied        int64 // events applied
	Dropped        int64 // events already covered (snapshot, duplicate after a rotation)
	BadEvents      int64 // events that could not be read
	Overflows      int64 // buffers that overflowed while waiting for a snapshot
}

// Books keeps one local order book per symbol from "<symbol>@depth@100ms" streams, by Binance's
// documented procedure: buffer the stream, fetch a snapshot, drop the events it covers, check
// that the first event applied straddles its lastUpdateId and that each next U is the last u+1;
// a gap, a reconnect or an overflow sends the book back to a (queued, paced) resync. It is the
// FeedHandler of the Feed that carries its streams.
type Books struct {
	cfg    BooksConfig
	resync chan string

	events sync.Pool // *depthEvent: decoding scratch

	mu      sync.Mutex
	scratch mergeScratch          // the books' (see localBook.scratch)
	books   map[string]*localBook // by upper-case symbol
	queued  map[string]bool
	stats   BooksStats
}

// bookLevel is one price level of a side, kept sorted: its price as a number (its key) and
// where its texts are. Books hold no pointer, so the garbage collector does not scan them (hundreds of
// thousands of levels), and setting a level allocates nothing. The texts live apart in
// localBook.texts so that an insert or a removal shifts 16 bytes a level, not 64.
type bookLevel struct {
	key float64 // the price for bids, its negation for asks: both sides sort by key, best (highest) first
	at  int32   // index in localBook.texts
}

// levelTexts are a level's price and quantity as sent (so a book reads back exact decimals):
// inline up to levelTextCap bytes, longer ones (Binance sends none) in the book's long map.
type levelTexts struct {
	price, qty levelText
}

// levelTextCap is the longest price or quantity text a level holds inline. Binance's decimals
// have at most 8 fraction digits and fit in 20 characters.
const levelTextCap = 23

// levelText is a level's price or quantity as sent (so a book reads back exact decimals).
type levelText struct {
	n uint8 // its length; longText: the text is in localBook.long
	b [levelTextCap]byte
}

const longText = 255

// longKey names a text too long for a level: its side, its level's price, which text.
type longKey struct {
	ask, qty bool
	key      float64 // the level's bookLevel.key
}

// mergeScratch is applySide's scratch: the merged side and an event side's level keys.
type mergeScratch struct {
	levels []bookLevel
	keys   []float64
}

type localBook struct {
	symbol   string
	max      int // levels kept per side (the snapshot's limit)
	state    string
	lastID   int64
	updated  time.Time // when the last event (or the snapshot) was applied
	created  time.Time // when SetSymbols added it
	failures int       // snapshots failed in a row (their retries back off)
	backoff  bool      // waiting for its retry timer: not queued before it
	eventMs  int64     // the last applied event's time, the exchange's clock
	bids     []bookLevel
	asks     []bookLevel
	// scratch is where applySide merges: its Books', shared by all books under the lock, so it
	// stays in cache (a second buffer per book would double the memory a message touches).
	scratch  *mergeScratch
	texts    []levelTexts       // of the levels of both sides, by bookLevel.at
	free     []int32            // unused texts
	long     map[longKey]string // texts longer than levelTextCap
	buffered []depthEvent
	// ahead are events that came before the one that follows on (see GapGrace), since aheadAt.
	ahead   []depthEvent
	aheadAt time.Time
}

// depthEvent is a diff-depth event. Every key has its field: encoding/json matches keys
// case-insensitively when no field has the exact name, and "e" would land in E. Its texts are
// sub-slices of the message on the fast path: owned copies them for an event that is kept.
type depthEvent struct {
	Type   rawText    `json:"e"`
	E      int64      `json:"E"`
	Symbol rawText    `json:"s"`
	First  int64      `json:"U"`
	Final  int64      `json:"u"`
	Bids   []rawLevel `json:"b"`
	Asks   []rawLevel `json:"a"`
}

// rawText is a JSON string's text (a []byte read and written as a string, not base64).
type rawText []byte

// UnmarshalJSON reads a JSON string (null leaves it as is, as for a string).
func (t *rawText) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*t = rawText(s)
	return nil
}

// MarshalJSON writes it as a string.
func (t rawText) MarshalJSON() ([]byte, error) { return json.Marshal(string(t)) }

// rawLevel is a ["price","qty"] pair, kept as text until a book is read: exactly two strings (a
// Go array would take a short one silently).
type rawLevel [2]rawText

// UnmarshalJSON is the slow path's strict reading.
func (l *rawLevel) UnmarshalJSON(b []byte) error {
	var a []string
	if err := json.Unmarshal(b, &a); err != nil {
		return fmt.Errorf("price level: %w", err)
	}
	if len(a) != 2 {
		return fmt.Errorf("price level: %d elements, want [price, qty]", len(a))
	}
	l[0], l[1] = rawText(a[0]), rawText(a[1])
	return nil
}

// owned is a copy of the event that holds its own levels' texts (in one block), for an event
// kept past the message's call (buffered while syncing, or ahead). Type and Symbol are not kept:
// nothing reads them after decoding.
func (ev *depthEvent) owned() depthEvent {
	n := 0
	for _, side := range [2][]rawLevel{ev.Bids, ev.Asks} {
		for _, l := range side {
			n += len(l[0]) + len(l[1])
		}
	}
	text := make([]byte, 0, n)
	keep := func(side []rawLevel) []rawLevel {
		if len(side) == 0 {
			return nil
		}
		out := make([]rawLevel, len(side))
		for i, l := range side {
			for j := range l {
				at := len(text)
				text = append(text, l[j]...)
				out[i][j] = rawText(text[at:len(text):len(text)])
			}
		}
		return out
	}
	return depthEvent{E: ev.E, First: ev.First, Final: ev.Final, Bids: keep(ev.Bids), Asks: keep(ev.Asks)}
}

// NewBooks builds Books; Run serves its resyncs.
func NewBooks(cfg BooksConfig) (*Books, error) {
	if cfg.Snapshot == nil {
		return nil, fmt.Errorf("exchange: books: Snapshot is required")
	}
	if cfg.SnapshotLimit <= 0 {
		cfg.SnapshotLimit = 100
	}
	if cfg.ResyncPerSecond <= 0 {
		cfg.ResyncPerSecond = 5
	}
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = 5 * time.Second
	}
	if cfg.GapGrace <= 0 {
		cfg.GapGrace = time.Second
	}
	if cfg.MaxBuffered <= 0 {
		cfg.MaxBuffered = 2000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Books{cfg: cfg, resync: make(chan string, 1<<16), books: map[string]*localBook{}, queued: map[string]bool{}}, nil
}

// DepthStream is the diff-depth stream of a symbol, e.g. "btcusdt@depth@100ms".
func DepthStream(symbol string) string { return strings.ToLower(symbol) + DepthStreamKind }

// SetSymbols sets the symbols kept and returns their streams, for Feed.SetStreams.
func (b *Books) SetSymbols(symbols []string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	keep := make(map[string]bool, len(symbols))
	streams := make([]string, 0, len(symbols))
	for _, s := range symbols {
		keep[s] = true
		streams = append(streams, DepthStream(s))
		if b.books[s] == nil {
			b.books[s] = &localBook{symbol: s, state: BookSyncing, max: b.cfg.SnapshotLimit, scratch: &b.scratch, created: b.cfg.Now()}
		}
	}
	for s := range b.books {
		if !keep[s] {
			delete(b.books, s)
		}
	}
	return streams
}

func symbolOfStream(stream string) string {
	s, _, _ := strings.Cut(stream, "@")
	return strings.ToUpper(s)
}

// bookOfStreamLocked is b.books[symbolOfStream(stream)] without allocating the symbol (it runs
// for every message).
func (b *Books) bookOfStreamLocked(stream string) *localBook {
	name, _, _ := strings.Cut(stream, "@")
	var buf [32]byte
	if len(name) > len(buf) {
		return b.books[strings.ToUpper(name)]
	}
	up := buf[:len(name)]
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 0x80:
			return b.books[strings.ToUpper(name)]
		case 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		}
		up[i] = c
	}
	return b.books[string(up)]
}

// StreamMessage applies one diff-depth event (FeedHandler). data is read in place; an event
// kept past the call (buffered, ahead) is copied.
func (b *Books) StreamMessage(stream string, data []byte, received time.Time) {
	ev, _ := b.events.Get().(*depthEvent)
	if ev == nil {
		ev = new(depthEvent)
	}
	defer b.events.Put(ev)
	if err := decodeDepthEvent(data, ev); err != nil || ev.Final < ev.First || ev.First <= 0 {
		b.mu.Lock()
		b.stats.BadEvents++
		b.mu.Unlock()
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	bk := b.bookOfStreamLocked(stream)
	if bk == nil {
		return
	}
	sym := bk.symbol
	switch bk.state {
	case BookSyncing, BookDown:
		bk.state = BookSyncing
		if len(bk.buffered) >= b.cfg.MaxBuffered {
			bk.buffered = bk.buffered[:0] // the snapshot will be older than what is kept: start over
			b.stats.Overflows++
		}
		bk.buffered = append(bk.buffered, ev.owned())
		b.queueLocked(sym)
		return
	}
	switch {
	case ev.Final <= bk.lastID:
		b.stats.Dropped++
	case ev.First > bk.lastID+1:
		if len(bk.ahead) == 0 {
			bk.aheadAt = received
		}
		bk.ahead = append(bk.ahead, ev.owned())
		if received.Sub(bk.aheadAt) > b.cfg.GapGrace || len(bk.ahead) > 64 {
			b.gapLocked(bk)
		}
	default:
		bk.apply(ev)
		bk.updated = received
		bk.state = BookLive
		b.stats.Applied++
		b.catchUpLocked(bk)
	}
}

// catchUpLocked applies the events that came ahead and now follow on.
func (b *Books) catchUpLocked(bk *localBook) {
	for progress := true; progress && len(bk.ahead) > 0; {
		progress = false
		kept := bk.ahead[:0]
		for _, ev := range bk.ahead {
			switch {
			case ev.Final <= bk.lastID:
				b.stats.Dropped++
			case ev.First <= bk.lastID+1:
				bk.apply(&ev)
				b.stats.Applied++
				progress = true
			default:
				kept = append(kept, ev)
			}
		}
		bk.ahead = kept
	}
}

// gapLocked sends a book whose events stopped following on back to a resync.
func (b *Books) gapLocked(bk *localBook) {
	b.stats.Gaps++
	first := bk.ahead[0]
	b.cfg.Logger.Warn("order book gap; resyncing", "symbol", bk.symbol, "last_update_id", bk.lastID, "U", first.First)
	bk.state = BookSyncing
	bk.buffered = append(bk.buffered[:0], bk.ahead...)
	bk.ahead = bk.ahead[:0]
	b.queueLocked(bk.symbol)
}

// StreamDown marks the stream's book down (FeedHandler): its next event starts a resync.
func (b *Books) StreamDown(stream string, _ error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if bk := b.bookOfStreamLocked(stream); bk != nil {
		bk.state = BookDown
		bk.buffered = bk.buffered[:0]
		bk.ahead = bk.ahead[:0]
	}
}

func (b *Books) queueLocked(sym string) {
	if b.queued[sym] {
		return
	}
	if bk := b.books[sym]; bk != nil && bk.backoff {
		return // its retry timer queues it
	}
	select {
	case b.resync <- sym:
		b.queued[sym] = true
	default: // full: the next event queues it again
	}
}

// Run serves resyncs, paced at ResyncPerSecond, and marks books stale, until ctx ends.
func (b *Books) Run(ctx context.Context) error {
	// Books nobody keeps any more are not live: a reader must not sample frozen levels.
	defer b.markAllDown()
	lim := rate.NewLimiter(rate.Limit(b.cfg.ResyncPerSecond), 1)
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				b.markStale()
			}
		}
	}()
	for {
		var sym string
		select {
		case <-ctx.Done():
			return nil
		case sym = <-b.resync:
		}
		if err := lim.Wait(ctx); err != nil {
			return nil
		}
		b.mu.Lock()
		delete(b.queued, sym)
		bk := b.books[sym]
		want := bk != nil && bk.state == BookSyncing
		b.mu.Unlock()
		if !want {
			continue
		}
		ob, err := b.cfg.Snapshot(ctx, sym, b.cfg.SnapshotLimit)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// Retried after a backoff of its own (250 ms doubling to a minute), so one symbol the
			// exchange refuses (unknown, halted) does not take the resync pace from the others.
			b.mu.Lock()
			b.stats.ResyncFailures++
			n := 0
			if bk := b.books[sym]; bk != nil {
				bk.failures++
				bk.backoff = true
				n = bk.failures
			}
			b.mu.Unlock()
			delay := min(time.Minute, 250*time.Millisecond<<min(n, 8))
			if n&(n-1) == 0 { // the 1st, 2nd, 4th, 8th… failure in a row
				b.cfg.Logger.Warn("order book snapshot failed; retrying after a backoff", "symbol", sym,
					"failures_in_a_row", n, "retry_in", delay, "err", err)
			}
			time.AfterFunc(delay, func() {
				b.mu.Lock()
				defer b.mu.Unlock()
				if bk := b.books[sym]; bk != nil {
					bk.backoff = false
					if bk.state == BookSyncing {
						b.queueLocked(sym)
					}
				}
			})
			continue
		}
		b.applySnapshot(sym, ob)
	}
}

// applySnapshot is steps 3 to 6 of Binance's procedure.
func (b *Books) applySnapshot(sym string, ob *OrderBook) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bk := b.books[sym]
	if bk == nil || bk.state != BookSyncing {
		return
	}
	evs := bk.buffered
	i := 0
	for i < len(evs) && evs[i].Final <= ob.LastUpdateID {
		i++
	}
	b.stats.Dropped += int64(i)
	evs = evs[i:]
	if len(evs) > 0 && evs[0].First > ob.LastUpdateID+1 {
		// The snapshot is older than the stream: fetch another.
		b.stats.ResyncFailures++
		b.queueLocked(sym)
		return
	}
	bk.bids = bk.bids[:0]
	bk.asks = bk.asks[:0]
	bk.texts = bk.texts[:0]
	bk.free = bk.free[:0]
	clear(bk.long)
	for _, l := range ob.Bids {
		bk.set(false, []byte(l.Price.String()), []byte(l.Qty.String()))
	}
	for _, l := range ob.Asks {
		bk.set(true, []byte(l.Price.String()), []byte(l.Qty.String()))
	}
	bk.lastID = ob.LastUpdateID
	bk.trim()
	for _, ev := range evs {
		if ev.First > bk.lastID+1 {
			b.stats.Gaps++
			bk.buffered = append(bk.buffered[:0], ev)
			b.queueLocked(sym)
			return
		}
		bk.apply(&ev)
		b.stats.Applied++
	}
	bk.buffered = bk.buffered[:0]
	bk.state = BookLive
	bk.updated = b.cfg.Now()
	bk.failures = 0
	b.stats.Resyncs++
}

// markAllDown marks every book down (Run has ended: no resyncs, no staleness sweep).
func (b *Books) markAllDown() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, bk := range b.books {
		bk.state = BookDown
	}
}

// stateLocked is a book's state as of now: a live book without an event for StaleAfter is stale
// even before the sweep (markStale) sees it, or when the sweep has stopped.
func (b *Books) stateLocked(bk *localBook, now time.Time) string {
	if bk.state == BookLive && now.Sub(bk.updated) > b.cfg.StaleAfter {
		bk.state = BookStale
	}
	return bk.state
}

func (b *Books) markStale() {
	now := b.cfg.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, bk := range b.books {
		if (bk.state == BookLive || bk.state == BookStale) && len(bk.ahead) > 0 && now.Sub(bk.aheadAt) > b.cfg.GapGrace {
			b.gapLocked(bk)
			continue
		}
		b.stateLocked(bk, now)
		// A new book whose stream has sent nothing yet (a symbol without changes): take its
		// snapshot anyway, or it would wait for a first event forever.
		if bk.state == BookSyncing && len(bk.buffered) == 0 && !b.queued[bk.symbol] && now.Sub(bk.created) > b.cfg.StaleAfter {
			b.queueLocked(bk.symbol)
		}
	}
}

// Book returns a symbol's book, best levels first, up to depth per side, its state and its age
// (since its last update). ok is false unless the book is live.
func (b *Books) Book(symbol string, depth int) (ob *OrderBook, state string, age time.Duration, ok bool) {
	b.mu.Lock()
	bk, state, age, live := b.liveLocked(symbol)
	if !live {
		b.mu.Unlock()
		return nil, state, age, false
	}
	bids := bk.copyLevels(bk.bids[:min(depth, len(bk.bids))])
	asks := bk.copyLevels(bk.asks[:min(depth, len(bk.asks))])
	long := maps.Clone(bk.long)
	out := &OrderBook{LastUpdateID: bk.lastID}
	b.mu.Unlock()
	conv := func(ask bool, ls []copiedLevel) ([]PriceLevel, error) {
		pl := make([]PriceLevel, len(ls))
		for i, l := range ls {
			p, err := decimal.NewFromString(l.price.text(long, longKey{ask: ask, key: l.key}))
			if err != nil {
				return nil, err
			}
			q, err := decimal.NewFromString(l.qty.text(long, longKey{ask: ask, qty: true, key: l.key}))
			if err != nil {
				return nil, err
			}
			pl[i] = PriceLevel{Price: p, Qty: q}
		}
		return pl, nil
	}
	var err error
	if out.Bids, err = conv(false, bids); err == nil {
		out.Asks, err = conv(true, asks)
	}
	if err != nil {
		b.unreadable(symbol, bk, err)
		return nil, BookSyncing, age, false
	}
	return out, state, age, true
}

// liveLocked is a symbol's book, its state as of now and its age (since its last update); live
// is false unless it is live (bk is nil when there is no book of symbol). b.mu held.
func (b *Books) liveLocked(symbol string) (bk *localBook, state string, age time.Duration, live bool) {
	bk = b.books[symbol]
	if bk == nil {
		return nil, "", 0, false
	}
	now := b.cfg.Now()
	state = b.stateLocked(bk, now)
	if !bk.updated.IsZero() {
		age = now.Sub(bk.updated)
	}
	return bk, state, age, state == BookLive
}

// unreadable resyncs a book with a level that cannot be read back as a decimal, rather than
// serve it.
func (b *Books) unreadable(symbol string, bk *localBook, err error) {
	b.mu.Lock()
	if cur := b.books[symbol]; cur == bk && bk.state == BookLive {
		bk.state = BookSyncing
		b.stats.BadEvents++
		b.queueLocked(symbol)
	}
	b.mu.Unlock()
	b.cfg.Logger.Warn("local book level unreadable; resyncing the book", "symbol", symbol, "err", err)
}

// Live lists the symbols whose books are live, sorted.
func (b *Books) Live() []string {
	b.mu.Lock()
	out := make([]string, 0, len(b.books))
	now := b.cfg.Now()
	for sym, bk := range b.books {
		if b.stateLocked(bk, now) == BookLive {
			out = append(out, sym)
		}
	}
	b.mu.Unlock()
	slices.Sort(out)
	return out
}

// Stats returns the counters and the books by state.
func (b *Books) Stats() BooksStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.stats
	st.ByState = map[string]int{}
	for _, bk := range b.books {
		st.ByState[bk.state]++
	}
	return st
}

func (bk *localBook) apply(ev *depthEvent) {
	bk.applySide(false, ev.Bids)
	bk.applySide(true, ev.Asks)
	bk.lastID = ev.Final
	bk.eventMs = ev.E
	bk.trim()
}

// trim drops the levels beyond the snapshot's depth: they were never in a snapshot, so the
// book does not know them all, and a book left to grow costs every insert more.
func (bk *localBook) trim() {
	if bk.max <= 0 {
		return
	}
	if len(bk.bids) > bk.max {
		bk.forget(false, bk.bids[bk.max:])
		bk.bids = bk.bids[:bk.max]
	}
	if len(bk.asks) > bk.max {
		bk.forget(true, bk.asks[bk.max:])
		bk.asks = bk.asks[:bk.max]
	}
}

// applySide sets an event's levels of one side. Levels of distinct prices give the same book in
// any order, so when the event's prices are distinct, readable and in the side's order (or its
// reverse), as the exchange sends them, they are merged with the side in one pass; otherwise
// they are set one by one, each a search and a shift.
func (bk *localBook) applySide(ask bool, ls []rawLevel) {
	if len(ls) < 4 {
		for _, l := range ls {
			bk.set(ask, l[0], l[1])
		}
		return
	}
	if bk.scratch == nil {
		bk.scratch = &mergeScratch{}
	}
	keys := bk.scratch.keys[:0]
	forward, backward := true, true
	for i, l := range ls {
		px, ok := parsePrice(l[0])
		if !ok || math.IsNaN(px) || math.IsInf(px, 0) {
			forward, backward = false, false
			break
		}
		key := px
		if ask {
			key = -px
		}
		if i > 0 {
			forward = forward && keys[i-1] > key
			backward = backward && key > keys[i-1]
		}
		keys = append(keys, key)
	}
	bk.scratch.keys = keys
	if !forward && !backward {
		for _, l := range ls {
			bk.set(ask, l[0], l[1])
		}
		return
	}
	side := &bk.bids
	if ask {
		side = &bk.asks
	}
	old, out := *side, bk.scratch.levels[:0]
	i := 0
	for n := range ls {
		k := n
		if !forward {
			k = len(ls) - 1 - n
		}
		key, qty := keys[k], ls[k][1]
		for i < len(old) && old[i].key > key {
			out = append(out, old[i])
			i++
		}
		if i < len(old) && old[i].key == key {
			if zeroQty(qty) {
				bk.forget(ask, old[i:i+1])
			} else {
				bk.setText(&bk.texts[old[i].at].qty, longKey{ask: ask, qty: true, key: key}, qty)
				out = append(out, old[i])
			}
			i++
			continue
		}
		if !zeroQty(qty) {
			out = append(out, bookLevel{key: key, at: bk.newTexts(ask, key, ls[k][0], qty)})
		}
	}
	out = append(out, old[i:]...)
	*side = append(old[:0], out...)
	bk.scratch.levels = out[:0]
}

// newTexts stores a new level's texts and returns where.
func (bk *localBook) newTexts(ask bool, key float64, price, qty []byte) int32 {
	var at int32
	if n := len(bk.free); n > 0 {
		at, bk.free = bk.free[n-1], bk.free[:n-1]
	} else {
		at = int32(len(bk.texts))
		bk.texts = append(bk.texts, levelTexts{})
	}
	t := &bk.texts[at]
	t.price.n, t.qty.n = 0, 0
	bk.setText(&t.price, longKey{ask: ask, key: key}, price)
	bk.setText(&t.qty, longKey{ask: ask, qty: true, key: key}, qty)
	return at
}

// forget releases the texts of levels leaving a side.
func (bk *localBook) forget(ask bool, ls []bookLevel) {
	for _, l := range ls {
		if len(bk.long) > 0 {
			t := &bk.texts[l.at]
			if t.price.n == longText {
				delete(bk.long, longKey{ask: ask, key: l.key})
			}
			if t.qty.n == longText {
				delete(bk.long, longKey{ask: ask, qty: true, key: l.key})
			}
		}
		bk.free = append(bk.free, l.at)
	}
}

// set puts a level into a side, or removes it when its quantity is zero. price and qty are
// copied.
func (bk *localBook) set(ask bool, price, qty []byte) {
	key, ok := parsePrice(price)
	if !ok {
		return
	}
	side := &bk.bids
	if ask {
		side, key = &bk.asks, -key
	}
	ls := *side
	// The first level at or past key.
	lo, hi := 0, len(ls)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if ls[m].key > key {
			lo = m + 1
		} else {
			hi = m
		}
	}
	i := lo
	found := i < len(ls) && ls[i].key == key
	if zeroQty(qty) {
		if found {
			bk.forget(ask, ls[i:i+1])
			*side = append(ls[:i], ls[i+1:]...)
		}
		return
	}
	if found {
		bk.setText(&bk.texts[ls[i].at].qty, longKey{ask: ask, qty: true, key: key}, qty)
		return
	}
	at := bk.newTexts(ask, key, price, qty)
	ls = append(ls, bookLevel{})
	copy(ls[i+1:], ls[i:])
	ls[i] = bookLevel{key: key, at: at}
	*side = ls
}

// exactPow10 are the powers of ten a float64 holds exactly.
var exactPow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// parsePrice is strconv.ParseFloat(string(b), 64), the same number, quicker for the plain
// decimals Binance sends: digits with at most 2^53 as their integer and at most 22 after the
// point divide exactly-rounded (Clinger's fast path, as strconv's own). Anything else goes to
// strconv.
func parsePrice(b []byte) (float64, bool) {
	var m uint64
	scale, digits, dot := 0, 0, false
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			m = m*10 + uint64(c-'0')
			digits++
			if dot {
				scale++
			}
			if m > 1<<53 {
				return parseFloat(b)
			}
		case c == '.' && !dot:
			dot = true
		default:
			return parseFloat(b)
		}
	}
	if digits == 0 || scale >= len(exactPow10) {
		return parseFloat(b)
	}
	return float64(m) / exactPow10[scale], true
}

func parseFloat(b []byte) (float64, bool) {
	f, err := strconv.ParseFloat(string(b), 64)
	return f, err == nil
}

// copiedLevel is a level with its texts, read out of a book.
type copiedLevel struct {
	key float64
	levelTexts
}

func (bk *localBook) copyLevels(ls []bookLevel) []copiedLevel {
	out := make([]copiedLevel, len(ls))
	for i, l := range ls {
		out[i] = copiedLevel{key: l.key, levelTexts: bk.texts[l.at]}
	}
	return out
}

// setText copies a level's text inline, or into the long map when it does not fit.
func (bk *localBook) setText(t *levelText, key longKey, text []byte) {
	if len(text) <= levelTextCap {
		if t.n == longText {
			delete(bk.long, key)
		}
		t.n = uint8(copy(t.b[:], text))
		return
	}
	if bk.long == nil {
		bk.long = map[longKey]string{}
	}
	bk.long[key] = string(text)
	t.n = longText
}

// text is the level's text; long holds the book's long ones.
func (t *levelText) text(long map[longKey]string, key longKey) string {
	if t.n == longText {
		return long[key]
	}
	return string(t.b[:t.n])
}

func zeroQty(q []byte) bool {
	for _, c := range q {
		if c != '0' && c != '.' {
			return false
		}
	}
	return true
}
