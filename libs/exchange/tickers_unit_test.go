package exchange_test

import (
	"bytes"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/exchange"
	"cryptopill.dev/jobs/libs/testkit/clocktest"
)

// tickerEvent is a 24hrTicker event of BTCUSDT at Unix millisecond ms, as Binance documents it.
func tickerEvent(ms int64) []byte {
	return []byte(strings.NewReplacer("MS", strconv.FormatInt(ms, 10), "OPEN", strconv.FormatInt(ms-86_400_000, 10)).Replace(
		`{"e":"24hrTicker","E":MS,"s":"BTCUSDT","p":"-12.50000000","P":"-0.020","w":"61000.12345678","x":"62012.50000000",` +
			`"c":"62000.00000000","Q":"0.00100000","b":"61999.99000000","B":"0.50000000","a":"62000.01000000","A":"1.25000000",` +
			`"o":"62012.50000000","h":"62500.00000000","l":"60500.00000000","v":"1234.56789000","q":"75308641.97530864",` +
			`"O":OPEN,"C":MS,"F":100,"L":200,"n":101}`))
}

type tickersBundle struct {
	clock   *clocktest.Clock
	logs    *bytes.Buffer
	tickers *exchange.Tickers
}

func setupTickers(t *testing.T, symbols ...string) *tickersBundle {
	t.Helper()
	b := &tickersBundle{clock: clocktest.NewClock(clocktest.Afternoon), logs: &bytes.Buffer{}}
	b.clock.Pause()
	b.tickers = exchange.NewTickers(exchange.TickersConfig{Now: b.clock.Now, StaleAfter: 3 * time.Second,
		Logger: slog.New(slog.NewTextHandler(b.logs, nil))})
	require.Equal(t, len(symbols), len(b.tickers.SetSymbols(symbols)))
	return b
}

func TestTickersKeepTheNewestAndAgeIt(t *testing.T) {
	t.Parallel()
	b := setupTickers(t, "BTCUSDT", "ETHUSDT")
	k := b.tickers
	ms := clocktest.Afternoon.UnixMilli()
	_, _, ok := k.Ticker("BTCUSDT")
	require.False(t, ok, "none yet")

	k.StreamMessage("btcusdt@ticker", tickerEvent(ms), b.clock.Now())
	tk, age, ok := k.Ticker("BTCUSDT")
	require.True(t, ok)
	require.Zero(t, age)
	require.Equal(t, "62000", tk.LastPrice.String())
	require.Equal(t, "-0.02", tk.PriceChangePercent.String())
	require.Equal(t, "62012.5", tk.PrevClosePrice.String())
	require.True(t, tk.CloseTime.Equal(clocktest.Afternoon), tk.CloseTime)
	require.True(t, tk.OpenTime.Equal(clocktest.Afternoon.Add(-24*time.Hour)))
	require.Equal(t, [3]int64{100, 200, 101}, [3]int64{tk.FirstID, tk.LastID, tk.Count})

	// An older or repeated event (a rotation's two connections) does not replace it.
	b.clock.Jump(time.Second)
	k.StreamMessage("btcusdt@ticker", tickerEvent(ms), b.clock.Now())
	k.StreamMessage("btcusdt@ticker", tickerEvent(ms-1000), b.clock.Now())
	_, age, _ = k.Ticker("BTCUSDT")
	require.Equal(t, time.Second, age)
	require.Equal(t, int64(2), k.Stats().Dropped)

	// Stale after StaleAfter, fresh again with the next event.
	b.clock.Jump(2*time.Second + time.Millisecond)
	tk, age, ok = k.Ticker("BTCUSDT")
	require.False(t, ok)
	require.Zero(t, tk.Symbol, "no ticker handed out when not ok")
	require.Equal(t, 3*time.Second+time.Millisecond, age)
	require.Zero(t, k.Stats().Live)
	k.StreamMessage("btcusdt@ticker", tickerEvent(ms+3001), b.clock.Now())
	_, _, ok = k.Ticker("BTCUSDT")
	require.True(t, ok)

	// Down with its connection, whatever its age, until the next event.
	k.StreamDown("btcusdt@ticker", errors.New("connection lost"))
	_, _, ok = k.Ticker("BTCUSDT")
	require.False(t, ok)
	k.StreamMessage("btcusdt@ticker", tickerEvent(ms+4000), b.clock.Now())
	_, _, ok = k.Ticker("BTCUSDT")
	require.True(t, ok)

	// Dropped symbols: their late events are counted, not kept.
	k.SetSymbols([]string{"ETHUSDT"})
	k.StreamMessage("btcusdt@ticker", tickerEvent(ms+5000), b.clock.Now())
	_, _, ok = k.Ticker("BTCUSDT")
	require.False(t, ok)
	st := k.Stats()
	require.Equal(t, exchange.TickersStats{Events: 3, Dropped: 2, Ignored: 1, Downs: 1, Symbols: 1}, st)
}

func TestBadTickerEventsAreCountedAndLoggedOncePerStream(t *testing.T) {
	t.Parallel()
	b := setupTickers(t, "BTCUSDT", "ETHUSDT")
	good := string(tickerEvent(clocktest.Afternoon.UnixMilli()))
	for _, bad := range []struct{ data, stream, want string }{
		{`{"e":"24hrTicker"`, "btcusdt@ticker", "unexpected end"},
		{strings.Replace(good, `"c":"62000.00000000"`, `"c":"62,000"`, 1), "btcusdt@ticker", `"c"`},
		{strings.Replace(good, `"Q":"0.00100000",`, ``, 1), "btcusdt@ticker", `"Q" missing`},
		{strings.Replace(good, `24hrTicker`, `24hrMiniTicker`, 1), "btcusdt@ticker", `type "24hrMiniTicker"`},
		{good, "ethusdt@ticker", ""}, // a good event on another symbol's stream

		{strings.Replace(good, `"E":`, `"E":-`, 1), "ethusdt@ticker", "event time"},
		{`[]`, "ethusdt@ticker", "cannot unmarshal"},
		{`{"e":"24hrTicker","E":1,"s":"","c":"1"}`, "ethusdt@ticker", "no symbol"},
	} {
		if bad.want != "" {
			_, err := exchange.DecodeTickerEvent([]byte(bad.data))
			require.ErrorContains(t, err, bad.want, bad.data)
		}
		b.tickers.StreamMessage(bad.stream, []byte(bad.data), b.clock.Now())
	}
	st := b.tickers.Stats()
	require.Equal(t, int64(8), st.BadEvents)
	require.Zero(t, st.Events)
	logs := b.logs.String()
	require.Equal(t, 2, strings.Count(logs, "bad ticker event"), logs)
	require.Contains(t, logs, "stream=btcusdt@ticker")
	require.Contains(t, logs, `unexpected end`, "the first bad event of each stream is the one logged")
}

// countingHandler is a FeedHandler that counts what it is handed.
type countingHandler struct{ messages, downs int }

func (h *countingHandler) StreamMessage(string, []byte, time.Time) { h.messages++ }
func (h *countingHandler) StreamDown(string, error)                { h.downs++ }

func TestFeedMuxRoutesByStreamKind(t *testing.T) {
	t.Parallel()
	depth, ticker := &countingHandler{}, &countingHandler{}
	var logs bytes.Buffer
	mux, err := exchange.NewFeedMux(map[string]exchange.FeedHandler{exchange.DepthStreamKind: depth, exchange.TickerStreamKind: ticker},
		slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	now := clocktest.Afternoon
	mux.StreamMessage(exchange.DepthStream("BTCUSDT"), nil, now)
	mux.StreamMessage(exchange.TickerStream("BTCUSDT"), nil, now)
	mux.StreamMessage("ethusdt@ticker", nil, now)
	mux.StreamDown("ethusdt@depth@100ms", nil)
	for range 3 {
		mux.StreamMessage("btcusdt@miniTicker", nil, now)
	}
	mux.StreamMessage("btcusdt@depth", nil, now) // the 1 s diff stream is another kind
	mux.StreamDown("noat", nil)
	require.Equal(t, countingHandler{1, 1}, *depth)
	require.Equal(t, countingHandler{2, 0}, *ticker)
	require.Equal(t, int64(5), mux.Unrouted())
	require.Equal(t, 3, strings.Count(logs.String(), "stream of no route"), logs.String())

	for _, routes := range []map[string]exchange.FeedHandler{nil, {"ticker": ticker}, {"@": ticker}, {"@ticker": nil}} {
		_, err := exchange.NewFeedMux(routes, nil)
		require.Error(t, err, "%v", routes)
	}
}
