package simex_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/simex"
)

func statusOf(t *testing.T, b *bundle, q url.Values) map[string]string {
	t.Helper()
	a := b.get(t, "/api/v3/exchangeInfo", q)
	require.Equal(t, http.StatusOK, a.status, string(a.body))
	var info struct {
		Symbols []struct{ Symbol, Status string }
	}
	require.NoError(t, json.Unmarshal(a.body, &info))
	out := map[string]string{}
	for _, s := range info.Symbols {
		out[s.Symbol] = s.Status
	}
	return out
}

func TestSymbolStatuses(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *simex.Config) { c.Statuses = map[string]string{"ETHBTC": simex.StatusBreak} })
	require.NoError(t, b.ex.SetSymbolStatus("BTCUSDT", simex.StatusHalt))
	require.Equal(t, simex.StatusHalt, b.ex.SymbolStatus("BTCUSDT"))

	st := statusOf(t, b, nil)
	require.Equal(t, "HALT", st["BTCUSDT"])
	require.Equal(t, "BREAK", st["ETHBTC"])
	require.Equal(t, "TRADING", st["ETHUSDT"])
	require.Equal(t, map[string]string{"BTCUSDT": "HALT"}, statusOf(t, b, url.Values{"symbolStatus": {"HALT"}}))
	require.Len(t, statusOf(t, b, url.Values{"symbolStatus": {"TRADING"}}), 5)
	requireError(t, b.get(t, "/api/v3/exchangeInfo", url.Values{"symbolStatus": {"OPEN"}}), 400, -1122)
	requireError(t, b.get(t, "/api/v3/exchangeInfo", url.Values{"symbolStatus": {"HALT"}, "symbol": {"BTCUSDT"}}), 400, -1128)

	// Depth: an empty book that keeps its id while the market is halted.
	var ob struct {
		LastUpdateID int64 `json:"lastUpdateId"`
		Bids, Asks   [][]string
	}
	depth := func() {
		a := b.get(t, "/api/v3/depth", url.Values{"symbol": {"BTCUSDT"}})
		require.Equal(t, http.StatusOK, a.status)
		require.NoError(t, json.Unmarshal(a.body, &ob))
	}
	depth()
	require.Empty(t, ob.Bids)
	require.Empty(t, ob.Asks)
	frozen := ob.LastUpdateID
	require.Positive(t, frozen)
	b.clock.Add(10 * time.Second)
	depth()
	require.Equal(t, frozen, ob.LastUpdateID)

	// Tickers: zero prices and volumes, as for a symbol without trades.
	var tk map[string]any
	a := b.get(t, "/api/v3/ticker/24hr", url.Values{"symbol": {"BTCUSDT"}})
	require.NoError(t, json.Unmarshal(a.body, &tk))
	for _, k := range []string{"lastPrice", "bidPrice", "askPrice", "openPrice", "highPrice", "lowPrice", "volume", "quoteVolume"} {
		require.True(t, dec(t, tk[k]).IsZero(), "%s = %v", k, tk[k])
	}
	require.EqualValues(t, 0, tk["count"])
	require.EqualValues(t, -1, tk["firstId"])
	var price struct{ Symbol, Price string }
	a = b.get(t, "/api/v3/ticker/price", url.Values{"symbol": {"BTCUSDT"}})
	require.NoError(t, json.Unmarshal(a.body, &price))
	require.Equal(t, "0.00000000", price.Price)
	a = b.get(t, "/api/v3/ticker/price", url.Values{"symbol": {"ETHUSDT"}})
	require.NoError(t, json.Unmarshal(a.body, &price))
	require.False(t, dec(t, price.Price).IsZero(), "a trading symbol keeps its price")

	// Klines: the last candle is the one trading stopped in; none after it.
	haltedAt := t0.UnixMilli()
	ks := klines(t, b, url.Values{"symbol": {"BTCUSDT"}, "interval": {"1m"}, "limit": {"3"}})
	require.Len(t, ks, 3)
	require.EqualValues(t, haltedAt/60000*60000, ks[2][0])
	require.Empty(t, klines(t, b, url.Values{"symbol": {"BTCUSDT"}, "interval": {"1m"},
		"startTime": {strconv.FormatInt(haltedAt+60000, 10)}}))

	// Back to trading: a book and prices again.
	require.NoError(t, b.ex.SetSymbolStatus("BTCUSDT", simex.StatusTrading))
	depth()
	require.NotEmpty(t, ob.Bids)
	require.Greater(t, ob.LastUpdateID, frozen)
	a = b.get(t, "/api/v3/ticker/price", url.Values{"symbol": {"BTCUSDT"}})
	require.NoError(t, json.Unmarshal(a.body, &price))
	require.False(t, dec(t, price.Price).IsZero())

	err := b.ex.SetSymbolStatus("BTCUSDT", "PAUSED")
	require.ErrorContains(t, err, `"PAUSED"`)
	require.ErrorContains(t, b.ex.SetSymbolStatus("LTCUSDT", "HALT"), "LTCUSDT")
	_, err = simex.New(simex.Config{Symbols: []string{"BTCUSDT"}, Statuses: map[string]string{"BTCUSDT": "halt"}})
	require.ErrorContains(t, err, `"halt"`)
	_, err = simex.New(simex.Config{Symbols: []string{"BTCUSDT"}, Statuses: map[string]string{"ETHUSDT": "HALT"}})
	require.ErrorContains(t, err, "ETHUSDT")
}

func requireHTML(t *testing.T, a answer, status int) {
	t.Helper()
	require.Equal(t, status, a.status, string(a.body))
	require.Equal(t, "text/html", a.header.Get("Content-Type"))
	require.False(t, json.Valid(a.body))
	require.True(t, strings.HasPrefix(strings.ToLower(string(a.body)), "<"), string(a.body))
}

func TestFirewall(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.ex.SetFirewall(true)
	a := b.get(t, "/api/v3/time", nil)
	requireHTML(t, a, http.StatusForbidden)
	require.Contains(t, string(a.body), "Request blocked")
	require.Empty(t, a.header.Get("X-MBX-USED-WEIGHT-1M"), "the firewall counts no weight")
	b.ex.SetFirewall(false)
	require.Equal(t, http.StatusOK, b.get(t, "/api/v3/time", nil).status)

	require.NoError(t, b.ex.SetFaults(simex.Faults{FirewallRate: 1}))
	requireHTML(t, b.get(t, "/api/v3/depth", url.Values{"symbol": {"BTCUSDT"}}), http.StatusForbidden)
	require.Error(t, b.ex.SetFaults(simex.Faults{FirewallRate: 1.1}))
}

func TestGatewayErrors(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *simex.Config) { c.Faults.GatewayErrorRate = 1 })
	requireHTML(t, b.get(t, "/api/v3/time", nil), http.StatusBadGateway)
	requireHTML(t, b.get(t, "/api/v3/time", nil), http.StatusGatewayTimeout)
	requireError(t, b.get(t, "/api/v3/time", nil), http.StatusInternalServerError, -1000)
	requireHTML(t, b.get(t, "/api/v3/time", nil), http.StatusBadGateway)
	require.Error(t, b.ex.SetFaults(simex.Faults{GatewayErrorRate: -1}))
}

// Beyond MaxInFlight concurrent requests the exchange is overloaded, with no fault switched on.
func TestOverloaded(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *simex.Config) { c.MaxInFlight = 1 })
	require.NoError(t, b.ex.SetFaults(simex.Faults{Latency: 2 * time.Second}))
	var wg sync.WaitGroup
	wg.Add(1)
	var first answer
	go func() { defer wg.Done(); first = b.get(t, "/api/v3/ping", nil) }()
	require.Eventually(t, func() bool { return b.ex.Stats().Requests["/api/v3/ping"] == 1 }, 10*time.Second, time.Millisecond)
	requireError(t, b.get(t, "/api/v3/time", nil), http.StatusServiceUnavailable, -1008)
	wg.Wait()
	require.Equal(t, http.StatusOK, first.status)
	require.NoError(t, b.ex.SetFaults(simex.Faults{}))
	require.Equal(t, http.StatusOK, b.get(t, "/api/v3/time", nil).status, "not overloaded once the first is answered")
}
