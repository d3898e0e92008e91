package exchange_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/exchange"
	"cryptopill.dev/jobs/libs/simex"
)

// requireSameTicker compares every field of two tickers by value.
func requireSameTicker(t *testing.T, want, got exchange.Ticker24h) {
	t.Helper()
	require.Equal(t, want.Symbol, got.Symbol)
	for _, f := range []struct {
		name      string
		want, got interface{ String() string }
	}{
		{"priceChange", want.PriceChange, got.PriceChange}, {"priceChangePercent", want.PriceChangePercent, got.PriceChangePercent},
		{"weightedAvgPrice", want.WeightedAvgPrice, got.WeightedAvgPrice}, {"prevClosePrice", want.PrevClosePrice, got.PrevClosePrice},
		{"lastPrice", want.LastPrice, got.LastPrice}, {"lastQty", want.LastQty, got.LastQty},
		{"bidPrice", want.BidPrice, got.BidPrice}, {"bidQty", want.BidQty, got.BidQty},
		{"askPrice", want.AskPrice, got.AskPrice}, {"askQty", want.AskQty, got.AskQty},
		{"openPrice", want.OpenPrice, got.OpenPrice}, {"highPrice", want.HighPrice, got.HighPrice},
		{"lowPrice", want.LowPrice, got.LowPrice}, {"volume", want.Volume, got.Volume},
		{"quoteVolume", want.QuoteVolume, got.QuoteVolume},
	} {
		require.Equal(t, f.want.String(), f.got.String(), "%s %s", want.Symbol, f.name)
	}
	require.True(t, want.OpenTime.Equal(got.OpenTime), "%s openTime %s vs %s", want.Symbol, want.OpenTime, got.OpenTime)
	require.True(t, want.CloseTime.Equal(got.CloseTime), "%s closeTime %s vs %s", want.Symbol, want.CloseTime, got.CloseTime)
	require.Equal(t, [3]int64{want.FirstID, want.LastID, want.Count}, [3]int64{got.FirstID, got.LastID, got.Count}, want.Symbol)
}

// requireTickersAreREST stops the exchange's clock, for each symbol in turn, on an instant its
// ticker event is sent (its stream's phase past a whole second), waits for its ticker of that
// instant, and compares it with REST ticker/24hr at the same instant.
func (r *streamRig) requireTickersAreREST(t *testing.T, symbols []string) {
	t.Helper()
	r.clock.Pause()
	defer r.clock.Resume()
	second := r.clock.Now().Truncate(time.Second)
	for _, sym := range symbols {
		second = second.Add(time.Second)
		r.clock.Set(second.Add(simex.StreamPhase(strings.ToLower(sym) + "@ticker")))
		rest, err := r.client.Ticker24h(context.Background(), sym)
		require.NoError(t, err)
		var got exchange.Ticker24h
		require.Eventually(t, func() bool {
			tk, _, ok := r.tickers.Ticker(sym)
			got = tk
			return ok && tk.CloseTime.Equal(rest.CloseTime)
		}, 10*time.Second, 5*time.Millisecond, "%s: no ticker of %s (stats %+v)", sym, rest.CloseTime, r.tickers.Stats())
		requireSameTicker(t, *rest, got)
	}
}

func (r *streamRig) waitTickersLive(t *testing.T, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return r.tickers.Stats().Live == n }, 20*time.Second, 10*time.Millisecond,
		"tickers live: %+v", r.tickers.Stats())
}

func TestTickersFollowTheExchange(t *testing.T) {
	t.Parallel()
	syms := []string{"BTCUSDT", "ETHUSDT", "ETHBTC", "XRPUSDT"}
	r := newStreamRig(t, syms, nil, nil)
	r.subscribeTickers(syms[:3]) // XRPUSDT: depth only
	r.waitLive(t, len(syms))
	r.waitTickersLive(t, 3)
	for range 3 {
		r.requireTickersAreREST(t, syms[:3])
		r.clock.Jump(17*time.Minute + 300*time.Millisecond)
	}
	r.requireSameAsREST(t, syms, 100) // the depth streams on the same connections
	_, _, ok := r.tickers.Ticker("XRPUSDT")
	require.False(t, ok, "no ticker stream, no ticker")
	st := r.tickers.Stats()
	require.Zero(t, st.BadEvents, "%+v", st)
	require.Zero(t, r.books.Stats().BadEvents)
	require.Zero(t, r.mux.Unrouted())
	require.Equal(t, 3, st.Symbols)
}

func TestStalledTickerGoesStale(t *testing.T) {
	t.Parallel()
	syms := []string{"BTCUSDT", "ETHUSDT"}
	r := newStreamRig(t, syms, nil, nil)
	r.subscribeTickers(syms)
	r.waitTickersLive(t, 2)
	// The feed's clock stands still until it jumps: ages change only by the jump.
	r.feedClock.Pause()
	r.ex.SetStreamFaults(simex.StreamFaults{StallSymbols: []string{"BTCUSDT"}})
	// Two of ETHUSDT's events later, none of BTCUSDT's is in flight.
	eth, _, _ := r.tickers.Ticker("ETHUSDT")
	require.Eventually(t, func() bool {
		tk, _, ok := r.tickers.Ticker("ETHUSDT")
		return ok && tk.CloseTime.Sub(eth.CloseTime) >= 2*time.Second
	}, 20*time.Second, 10*time.Millisecond)
	btc, age, ok := r.tickers.Ticker("BTCUSDT")
	require.True(t, ok, "not yet stale: age %s", age)

	r.feedClock.Jump(5*time.Second + time.Millisecond) // the default StaleAfter, passed
	_, age, ok = r.tickers.Ticker("BTCUSDT")
	require.False(t, ok)
	require.Greater(t, age, 5*time.Second)
	require.Zero(t, r.tickers.Stats().Downs, "stale, not down: the connection stays")
	// ETHUSDT's next event makes it fresh again; BTCUSDT stays stale.
	require.Eventually(t, func() bool { _, _, ok := r.tickers.Ticker("ETHUSDT"); return ok }, 20*time.Second, 10*time.Millisecond)
	_, _, ok = r.tickers.Ticker("BTCUSDT")
	require.False(t, ok)
	require.Equal(t, 1, r.tickers.Stats().Live)

	r.ex.SetStreamFaults(simex.StreamFaults{})
	r.feedClock.Resume()
	require.Eventually(t, func() bool {
		tk, _, ok := r.tickers.Ticker("BTCUSDT")
		return ok && tk.CloseTime.After(btc.CloseTime)
	}, 20*time.Second, 10*time.Millisecond)
	r.requireTickersAreREST(t, syms)
}

func TestDroppedConnectionMarksTickersDownAndTheyRecover(t *testing.T) {
	t.Parallel()
	syms := simex.GeneratedSymbols(20)
	r := newStreamRig(t, syms, nil, nil)
	r.subscribeTickers(syms)
	r.waitTickersLive(t, len(syms))
	before, _, _ := r.tickers.Ticker(syms[0])
	r.ex.DropStreams()
	require.Eventually(t, func() bool { return r.tickers.Stats().Downs >= int64(len(syms)) }, 20*time.Second, 10*time.Millisecond,
		"every ticker's stream down: %+v", r.tickers.Stats())
	require.Eventually(t, func() bool { return r.feed.Stats().Connects >= 2 }, 20*time.Second, 10*time.Millisecond)
	r.waitTickersLive(t, len(syms))
	after, _, _ := r.tickers.Ticker(syms[0])
	require.True(t, after.CloseTime.After(before.CloseTime))
	r.requireTickersAreREST(t, syms[:3])
	require.Zero(t, r.tickers.Stats().BadEvents)
}
