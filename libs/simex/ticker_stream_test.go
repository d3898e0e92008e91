package simex_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/simex"
)

// streamTickerKeys maps Binance's ticker stream keys to REST ticker/24hr's.
var streamTickerKeys = map[string]string{
	"p": "priceChange", "P": "priceChangePercent", "w": "weightedAvgPrice", "x": "prevClosePrice",
	"c": "lastPrice", "Q": "lastQty", "b": "bidPrice", "B": "bidQty", "a": "askPrice", "A": "askQty",
	"o": "openPrice", "h": "highPrice", "l": "lowPrice", "v": "volume", "q": "quoteVolume",
	"O": "openTime", "C": "closeTime", "F": "firstId", "L": "lastId", "n": "count",
}

var miniTickerKeys = []string{"c", "o", "h", "l", "v", "q"}

func decodeObject(t *testing.T, b []byte) map[string]any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	require.NoError(t, d.Decode(&m), string(b))
	return m
}

func (b *bundle) dial(t *testing.T, path string) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(b.srv.URL, "http")+path, nil)
	require.NoError(t, err)
	t.Cleanup(func() { ws.CloseNow() })
	return ws
}

func readMsg(t *testing.T, ws *websocket.Conn) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := ws.Read(ctx)
	require.NoError(t, err)
	return b
}

// requireTickerIsREST checks a ticker or mini ticker event against REST ticker/24hr at the
// exchange's (unmoving) clock.
func (b *bundle) requireTickerIsREST(t *testing.T, ev map[string]any, symbol string, mini bool) {
	t.Helper()
	a := b.get(t, "/api/v3/ticker/24hr", url.Values{"symbol": {symbol}})
	require.Equal(t, 200, a.status, string(a.body))
	rest := decodeObject(t, a.body)
	require.Equal(t, symbol, ev["s"])
	require.Equal(t, rest["closeTime"], ev["E"], "event time is the statistics' close time")
	want := len(streamTickerKeys) + 3
	if mini {
		require.Equal(t, "24hrMiniTicker", ev["e"])
		want = len(miniTickerKeys) + 3
		for _, k := range miniTickerKeys {
			require.Equal(t, rest[streamTickerKeys[k]], ev[k], "%s %s", symbol, k)
		}
	} else {
		require.Equal(t, "24hrTicker", ev["e"])
		for k, rk := range streamTickerKeys {
			require.Equal(t, rest[rk], ev[k], "%s %s (%s)", symbol, k, rk)
		}
	}
	require.Len(t, ev, want, "exactly Binance's keys: %v", ev)
}

func TestTickerStreamsAreRESTAtTheSameInstant(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	raw := b.dial(t, "/ws/btcusdt@ticker")
	combined := b.dial(t, "/stream?streams=ethbtc@ticker/ethbtc@miniTicker")
	sub := b.dial(t, "/ws")
	require.NoError(t, sub.Write(context.Background(), websocket.MessageText,
		[]byte(`{"method":"SUBSCRIBE","params":["pepeusdt@miniTicker"],"id":1}`)))
	require.JSONEq(t, `{"result":null,"id":1}`, string(readMsg(t, sub)))

	// The clock stands still between steps: each step's events and REST see the same instant.
	for _, step := range []time.Duration{time.Second, 37*time.Minute + 1300*time.Millisecond, 23 * time.Hour} {
		b.clock.Add(step)
		b.requireTickerIsREST(t, decodeObject(t, readMsg(t, raw)), "BTCUSDT", false)
		got := map[string]map[string]any{}
		for range 2 {
			m := decodeObject(t, readMsg(t, combined))
			data, err := json.Marshal(m["data"])
			require.NoError(t, err)
			got[m["stream"].(string)] = decodeObject(t, data)
		}
		b.requireTickerIsREST(t, got["ethbtc@ticker"], "ETHBTC", false)
		b.requireTickerIsREST(t, got["ethbtc@miniTicker"], "ETHBTC", true)
		b.requireTickerIsREST(t, decodeObject(t, readMsg(t, sub)), "PEPEUSDT", true)
	}
	require.GreaterOrEqual(t, b.ex.StreamStats().Events, int64(12))
}

func TestTickerStreamsStallAndRefuseBadNames(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.ex.SetStreamFaults(simex.StreamFaults{StallSymbols: []string{"BTCUSDT"}})
	ws := b.dial(t, "/stream?streams=btcusdt@ticker/ethusdt@ticker")
	for range 3 {
		b.clock.Add(time.Second)
		m := decodeObject(t, readMsg(t, ws))
		require.Equal(t, "ethusdt@ticker", m["stream"], "a stalled symbol's ticker is silent")
	}
	b.ex.SetStreamFaults(simex.StreamFaults{})
	b.clock.Add(time.Second)
	seen := map[any]bool{}
	for !seen["btcusdt@ticker"] {
		seen[decodeObject(t, readMsg(t, ws))["stream"]] = true
	}

	for _, name := range []string{"btcusdt@ticker@100ms", "btcusdt@tickerx", "nosuch@ticker"} {
		a := b.get(t, "/ws/"+name, nil)
		requireError(t, a, 400, -1000)
		require.Contains(t, string(a.body), name)
	}
}
