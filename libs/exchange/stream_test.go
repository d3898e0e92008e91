package exchange_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/exchange"
	"cryptopill.dev/jobs/libs/simex"
	"cryptopill.dev/jobs/libs/testkit/clocktest"
)

// streamRig is the simulated exchange with its streams, a client, a Feed and, behind its
// FeedMux, Books (whose streams it holds) and Tickers (see subscribeTickers).
type streamRig struct {
	clock *clocktest.Clock
	// feedClock is the feed's own (rotation, quiet time), jumped apart from the exchange's.
	feedClock *clocktest.Clock
	ex        *simex.Exchange
	url       string
	client    *exchange.Client
	feed      *exchange.Feed
	books     *exchange.Books
	tickers   *exchange.Tickers
	mux       *exchange.FeedMux
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

func newStreamRig(t *testing.T, symbols []string, scfg func(*simex.Config), fcfg func(*exchange.FeedConfig)) *streamRig {
	t.Helper()
	r := &streamRig{clock: clocktest.NewClock(clocktest.Afternoon), feedClock: clocktest.NewClock(clocktest.Afternoon)}
	cfg := simex.Config{Symbols: symbols, Seed: 7, Now: r.clock.Now, WeightLimit: -1}
	if scfg != nil {
		scfg(&cfg)
	}
	ex, err := simex.New(cfg)
	require.NoError(t, err)
	r.ex = ex
	srv := httptest.NewServer(ex)
	r.url = srv.URL
	r.client, err = exchange.New(exchange.Config{BaseURL: srv.URL, Now: r.clock.Now, WeightLimit: 6000,
		MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	require.NoError(t, err)
	r.books, err = exchange.NewBooks(exchange.BooksConfig{Snapshot: r.client.Depth, ResyncPerSecond: 50, Now: r.feedClock.Now})
	require.NoError(t, err)
	fc := exchange.FeedConfig{URL: "ws" + strings.TrimPrefix(srv.URL, "http"), Now: r.feedClock.Now,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	if fcfg != nil {
		fcfg(&fc)
	}
	r.tickers = exchange.NewTickers(exchange.TickersConfig{Now: r.feedClock.Now})
	r.mux, err = exchange.NewFeedMux(map[string]exchange.FeedHandler{
		exchange.DepthStreamKind: r.books, exchange.TickerStreamKind: r.tickers}, nil)
	require.NoError(t, err)
	r.feed, err = exchange.NewFeed(fc, r.mux)
	require.NoError(t, err)
	r.feed.SetStreams(r.books.SetSymbols(symbols))
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Add(2)
	go func() { defer r.wg.Done(); _ = r.feed.Run(ctx) }()
	go func() { defer r.wg.Done(); _ = r.books.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		ex.DropStreams()
		r.wg.Wait()
		srv.Close()
		exchange.ForgetLimiter(srv.URL)
	})
	return r
}

// subscribeTickers makes the feed carry the symbols' ticker streams beside the depth streams.
func (r *streamRig) subscribeTickers(symbols []string) {
	r.feed.SetStreams(append(r.books.SetSymbols(r.ex.Symbols()), r.tickers.SetSymbols(symbols)...))
}

func (r *streamRig) waitLive(t *testing.T, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return r.books.Stats().ByState[exchange.BookLive] == n }, 20*time.Second, 10*time.Millisecond,
		"books live: %+v", r.books.Stats())
}

// requireSameAsREST pauses the exchange's clock, waits for each local book to reach the REST
// book's lastUpdateId, and compares their best levels.
func (r *streamRig) requireSameAsREST(t *testing.T, symbols []string, depth int) {
	t.Helper()
	r.clock.Pause()
	defer r.clock.Resume()
	for _, sym := range symbols {
		rest, err := r.client.Depth(context.Background(), sym, depth)
		require.NoError(t, err)
		var local *exchange.OrderBook
		require.Eventually(t, func() bool {
			ob, _, _, ok := r.books.Book(sym, depth)
			local = ob
			return ok && ob.LastUpdateID == rest.LastUpdateID
		}, 10*time.Second, 5*time.Millisecond, "%s never reached lastUpdateId %d", sym, rest.LastUpdateID)
		require.Equal(t, len(rest.Bids), len(local.Bids), sym)
		require.Equal(t, len(rest.Asks), len(local.Asks), sym)
		for i := range rest.Bids {
			require.True(t, rest.Bids[i].Price.Equal(local.Bids[i].Price) && rest.Bids[i].Qty.Equal(local.Bids[i].Qty),
				"%s bid %d: rest %v local %v", sym, i, rest.Bids[i], local.Bids[i])
		}
		for i := range rest.Asks {
			require.True(t, rest.Asks[i].Price.Equal(local.Asks[i].Price) && rest.Asks[i].Qty.Equal(local.Asks[i].Qty),
				"%s ask %d: rest %v local %v", sym, i, rest.Asks[i], local.Asks[i])
		}
	}
}

func TestLocalBooksFollowTheExchange(t *testing.T) {
	t.Parallel()
	syms := []string{"BTCUSDT", "ETHUSDT", "ETHBTC", "XRPUSDT"}
	r := newStreamRig(t, syms, nil, nil)
	r.waitLive(t, len(syms))
	// Let the books take some seconds of diffs (the exchange's clock runs 9× ahead in jumps).
	for range 50 {
		r.clock.Jump(200 * time.Millisecond)
		time.Sleep(25 * time.Millisecond)
	}
	r.requireSameAsREST(t, syms, 100)
	st := r.books.Stats()
	require.Zero(t, st.Gaps, "%+v", st)
	require.Zero(t, st.BadEvents)
	require.Equal(t, int64(len(syms)), st.Resyncs, "one snapshot per book")
}

func TestGapResyncs(t *testing.T) {
	t.Parallel()
	syms := []string{"BTCUSDT", "ETHUSDT"}
	r := newStreamRig(t, syms, nil, nil)
	r.waitLive(t, len(syms))
	r.ex.InjectStreamGap()
	require.Eventually(t, func() bool { st := r.books.Stats(); return st.Gaps >= 2 && st.Resyncs >= 4 }, 20*time.Second, 10*time.Millisecond)
	r.waitLive(t, len(syms))
	r.requireSameAsREST(t, syms, 50)
}

func TestDroppedConnectionsReconnectAndResyncPaced(t *testing.T) {
	t.Parallel()
	syms := simex.GeneratedSymbols(30)
	r := newStreamRig(t, syms, nil, nil)
	r.waitLive(t, len(syms))
	before := r.ex.Stats().Requests["/api/v3/depth"]
	r.ex.DropStreams()
	require.Eventually(t, func() bool { return r.feed.Stats().Connects >= 2 }, 20*time.Second, 10*time.Millisecond)
	r.waitLive(t, len(syms))
	// Each book resynced once after the reconnect: one snapshot each, none beyond.
	require.Equal(t, before+int64(len(syms)), r.ex.Stats().Requests["/api/v3/depth"])
	r.requireSameAsREST(t, syms[:3], 100)
}

func TestRotationBeforeTheCutoffLeavesNoGap(t *testing.T) {
	t.Parallel()
	syms := []string{"BTCUSDT", "ETHUSDT"}
	r := newStreamRig(t, syms, nil, func(c *exchange.FeedConfig) { c.Rotate = time.Hour })
	r.waitLive(t, len(syms))
	resyncs := r.books.Stats().Resyncs
	r.feedClock.Jump(time.Hour + time.Second)
	require.Eventually(t, func() bool { st := r.feed.Stats(); return st.Rotations == 1 && st.Connections == 1 }, 20*time.Second, 10*time.Millisecond)
	time.Sleep(300 * time.Millisecond) // events on the new connection
	st := r.books.Stats()
	require.Zero(t, st.Gaps, "%+v", st)
	require.Equal(t, resyncs, st.Resyncs, "a rotation needs no snapshot")
	require.Zero(t, r.feed.Stats().Disconnects)
	r.requireSameAsREST(t, syms, 100)
}

func TestExchangeCutoffAfter24Hours(t *testing.T) {
	t.Parallel()
	syms := []string{"BTCUSDT"}
	// The feed's own rotation is late here: the exchange's cutoff comes first.
	r := newStreamRig(t, syms, nil, func(c *exchange.FeedConfig) { c.Rotate = 48 * time.Hour })
	r.waitLive(t, 1)
	r.clock.Jump(24 * time.Hour)
	require.Eventually(t, func() bool { return r.ex.StreamStats().Closed["24-hour cutoff"] == 1 }, 10*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return r.feed.Stats().Connects >= 2 }, 10*time.Second, 10*time.Millisecond)
	r.waitLive(t, 1)
	r.requireSameAsREST(t, syms, 20)
}

func TestStalledStreamIsNoticed(t *testing.T) {
	t.Parallel()
	syms := []string{"BTCUSDT", "ETHUSDT"}
	r := newStreamRig(t, syms, nil, func(c *exchange.FeedConfig) { c.QuietTimeout = time.Second })
	r.waitLive(t, len(syms))
	r.ex.SetStreamFaults(simex.StreamFaults{Stall: true})
	// Quiet for QuietTimeout: the feed replaces the connection; the books are down, then stale.
	require.Eventually(t, func() bool { return r.feed.Stats().Disconnects >= 1 }, 20*time.Second, 10*time.Millisecond)
	_, state, _, ok := r.books.Book("BTCUSDT", 5)
	require.False(t, ok, state)
	r.ex.SetStreamFaults(simex.StreamFaults{})
	r.waitLive(t, len(syms))
}

func TestManyStreamsStayUnderTheMessageLimit(t *testing.T) {
	t.Parallel()
	syms := simex.GeneratedSymbols(1500) // two connections, eight SUBSCRIBEs
	r := newStreamRig(t, syms, nil, func(c *exchange.FeedConfig) { c.StreamsPerRequest = 200 })
	require.Eventually(t, func() bool { return r.ex.StreamStats().ActiveSubscribed == len(syms) }, 30*time.Second, 20*time.Millisecond)
	st := r.ex.StreamStats()
	require.Equal(t, 2, st.Connections)
	require.Zero(t, st.Closed["too many messages"])
}

func TestExchangeEnforcesItsStreamRules(t *testing.T) {
	t.Parallel()
	clock := clocktest.NewClock(clocktest.Afternoon)
	clock.Pause() // every message falls in one second
	ex, err := simex.New(simex.Config{Symbols: []string{"BTCUSDT"}, Now: clock.Now,
		Streams: simex.StreamConfig{MaxStreams: 2, MaxAttempts: 3}})
	require.NoError(t, err)
	srv := httptest.NewServer(ex)
	t.Cleanup(srv.Close)
	ctx := context.Background()
	wsURL := "ws" + strings.TrimPrefix(srv.URL, "http")

	ws, _, err := websocket.Dial(ctx, wsURL+"/ws", nil)
	require.NoError(t, err)
	read := func() string {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, b, err := ws.Read(rctx)
		require.NoError(t, err)
		return string(b)
	}
	require.NoError(t, ws.Write(ctx, websocket.MessageText, []byte(`{"method":"SUBSCRIBE","params":["btcusdt@depth5","btcusdt@depth","btcusdt@depth10"],"id":1}`)))
	require.Contains(t, read(), "at most 2 streams")
	require.NoError(t, ws.Write(ctx, websocket.MessageText, []byte(`{"method":"SUBSCRIBE","params":["nosuch@depth"],"id":2}`)))
	require.Contains(t, read(), "unknown symbol")
	require.NoError(t, ws.Write(ctx, websocket.MessageText, []byte(`{"method":"LIST_SUBSCRIPTIONS","id":3}`)))
	require.JSONEq(t, `{"result":[],"id":3}`, read())
	for i := 4; i <= 6; i++ { // the sixth message in one second
		require.NoError(t, ws.Write(ctx, websocket.MessageText, []byte(`{"method":"LIST_SUBSCRIPTIONS","id":4}`)))
	}
	require.Eventually(t, func() bool { return ex.StreamStats().Closed["too many messages"] == 1 }, 5*time.Second, 5*time.Millisecond)

	// The third connection attempt in the window is the last one admitted.
	for range 2 {
		c, _, err := websocket.Dial(ctx, wsURL+"/ws/btcusdt@depth5", nil)
		require.NoError(t, err)
		c.CloseNow()
	}
	_, resp, err := websocket.Dial(ctx, wsURL+"/ws/btcusdt@depth5", nil)
	require.Error(t, err)
	require.Equal(t, 429, resp.StatusCode)
}

func TestExchangeClosesAClientThatDoesNotPong(t *testing.T) {
	t.Parallel()
	ex, err := simex.New(simex.Config{Symbols: []string{"BTCUSDT"},
		Streams: simex.StreamConfig{PingInterval: 50 * time.Millisecond, PongTimeout: 100 * time.Millisecond}})
	require.NoError(t, err)
	srv := httptest.NewServer(ex)
	t.Cleanup(srv.Close)
	wsURL := "ws" + strings.TrimPrefix(srv.URL, "http")
	// A client that reads answers pings (coder/websocket pongs while reading): it stays.
	good, _, err := websocket.Dial(context.Background(), wsURL+"/ws/btcusdt@depth5@100ms", nil)
	require.NoError(t, err)
	defer good.CloseNow()
	readCtx, stopReading := context.WithCancel(context.Background())
	defer stopReading()
	go func() {
		for {
			if _, _, err := good.Read(readCtx); err != nil {
				return
			}
		}
	}()
	// One that never reads never pongs: the exchange closes it.
	bad, _, err := websocket.Dial(context.Background(), wsURL+"/ws/btcusdt@depth5@100ms", nil)
	require.NoError(t, err)
	defer bad.CloseNow()
	require.Eventually(t, func() bool { return ex.StreamStats().Closed["pong timeout"] == 1 }, 5*time.Second, 10*time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	require.Equal(t, int64(1), ex.StreamStats().Closed["pong timeout"], "the reading client stays")
}

// A book whose stream never sends (a symbol without changes) still gets its snapshot; a book is
// judged stale when it is read, not only by the sweep; and once the books stop running, nothing
// is served as live.
func TestBookStatesAreCurrentWhenRead(t *testing.T) {
	t.Parallel()
	syms := []string{"BTCUSDT", "ETHUSDT"}
	r := newStreamRig(t, append(syms, "BNBUSDT"), nil, nil)
	r.waitLive(t, 3)
	// BNBUSDT's book is kept again but its stream is no longer held: no event will ever come.
	r.feed.SetStreams(r.books.SetSymbols(syms))
	r.books.SetSymbols(append(syms, "BNBUSDT"))
	resyncs := r.books.Stats().Resyncs
	_, state, _, ok := r.books.Book("BNBUSDT", 5)
	require.False(t, ok)
	require.Equal(t, exchange.BookSyncing, state)
	r.feedClock.Jump(6 * time.Second) // past StaleAfter
	require.Eventually(t, func() bool { _, _, _, ok := r.books.Book("BNBUSDT", 5); return ok }, 20*time.Second, 10*time.Millisecond,
		"a book without events is snapshotted")
	require.Equal(t, resyncs+1, r.books.Stats().Resyncs)

	r.feedClock.Jump(6 * time.Second)
	_, state, age, ok := r.books.Book("BNBUSDT", 5)
	require.False(t, ok)
	require.Equal(t, exchange.BookStale, state)
	require.GreaterOrEqual(t, age, 6*time.Second)
	require.NotContains(t, r.books.Live(), "BNBUSDT")

	r.cancel()
	r.wg.Wait()
	_, state, _, ok = r.books.Book("BTCUSDT", 5)
	require.False(t, ok)
	require.Equal(t, exchange.BookDown, state)
	require.Empty(t, r.books.Live())
}

// A symbol whose snapshot the exchange refuses is retried after a growing backoff: it does not
// take the resync pace (and the weight) from the others, and its log does not flood.
func TestRefusedSnapshotsBackOff(t *testing.T) {
	t.Parallel()
	r := newStreamRig(t, []string{"BTCUSDT"}, nil, nil)
	r.waitLive(t, 1)
	r.books.SetSymbols([]string{"BTCUSDT", "NOPEUSDT"}) // unknown to the exchange
	r.feedClock.Jump(6 * time.Second)                   // past StaleAfter: its snapshot is due
	require.Eventually(t, func() bool { return r.books.Stats().ResyncFailures >= 2 }, 20*time.Second, 10*time.Millisecond)
	time.Sleep(2 * time.Second)
	// At 50 resyncs a second it would have failed about 100 times; backing off 250 ms, 500 ms,
	// 1 s, 2 s…: a handful.
	require.LessOrEqual(t, r.books.Stats().ResyncFailures, int64(6))
}

// A symbol the exchange takes out of TRADING streams nothing (its REST book is empty): its local
// book ages while the others' stay fresh, and it comes back when trading resumes.
func TestHaltedSymbolStreamsNothing(t *testing.T) {
	t.Parallel()
	syms := []string{"BTCUSDT", "ETHUSDT"}
	r := newStreamRig(t, syms, nil, nil)
	r.waitLive(t, len(syms))
	require.NoError(t, r.ex.SetSymbolStatus("ETHUSDT", "HALT"))
	require.Eventually(t, func() bool {
		_, _, eth, _ := r.books.Book("ETHUSDT", 5)
		_, _, btc, ok := r.books.Book("BTCUSDT", 5)
		return ok && eth > time.Second && btc < 500*time.Millisecond
	}, 20*time.Second, 10*time.Millisecond, "ETHUSDT's book gets no events; BTCUSDT's does")
	require.NoError(t, r.ex.SetSymbolStatus("ETHUSDT", "TRADING"))
	require.Eventually(t, func() bool {
		_, _, eth, ok := r.books.Book("ETHUSDT", 5)
		return ok && eth < 500*time.Millisecond
	}, 20*time.Second, 10*time.Millisecond, "events again once it trades")
	r.requireSameAsREST(t, syms, 20)
}
