package simex_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/simex"
)

func (b *bundle) userDataStream(t *testing.T, method, apiKey, listenKey string) answer {
	t.Helper()
	target := "/api/v3/userDataStream"
	if listenKey != "" {
		target += "?" + url.Values{"listenKey": {listenKey}}.Encode()
	}
	return b.send(t, method, target, apiKey)
}

func TestListenKeys(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	requireError(t, b.userDataStream(t, http.MethodPost, "", ""), http.StatusUnauthorized, -2014)
	requireError(t, b.userDataStream(t, http.MethodPost, "other", ""), http.StatusUnauthorized, -2015)

	a := b.userDataStream(t, http.MethodPost, testKey, "")
	require.Equal(t, http.StatusOK, a.status, string(a.body))
	var out struct {
		ListenKey string `json:"listenKey"`
	}
	require.NoError(t, json.Unmarshal(a.body, &out))
	require.Len(t, out.ListenKey, 60)
	used, _ := strconv.Atoi(a.header.Get("X-MBX-USED-WEIGHT-1M"))
	again := b.userDataStream(t, http.MethodPost, testKey, "")
	require.Contains(t, string(again.body), out.ListenKey, "the account's live key, extended")
	used2, _ := strconv.Atoi(again.header.Get("X-MBX-USED-WEIGHT-1M"))
	require.Equal(t, used+2, used2, "weight 2")

	b.clock.Add(50 * time.Minute)
	require.Equal(t, http.StatusOK, b.userDataStream(t, http.MethodPut, testKey, out.ListenKey).status)
	b.clock.Add(50 * time.Minute) // alive: the PUT extended it by 60 minutes
	require.Equal(t, http.StatusOK, b.userDataStream(t, http.MethodPut, testKey, out.ListenKey).status)
	requireError(t, b.userDataStream(t, http.MethodPut, testKey, "nope"), http.StatusBadRequest, -1125)
	requireError(t, b.userDataStream(t, http.MethodPut, testKey, ""), http.StatusBadRequest, -1102)
	requireError(t, b.userDataStream(t, http.MethodGet, testKey, ""), http.StatusMethodNotAllowed, -1000)
	require.Equal(t, 1, b.ex.UserStreamStats().ListenKeys)

	b.clock.Add(61 * time.Minute)
	a = b.userDataStream(t, http.MethodPut, testKey, out.ListenKey)
	requireError(t, a, http.StatusBadRequest, -1125)
	require.Contains(t, string(a.body), "This listenKey does not exist.")
	require.Zero(t, b.ex.UserStreamStats().ListenKeys)
	fresh := b.userDataStream(t, http.MethodPost, testKey, "")
	require.NotContains(t, string(fresh.body), out.ListenKey)
	require.NoError(t, json.Unmarshal(fresh.body, &out))
	require.Equal(t, http.StatusOK, b.userDataStream(t, http.MethodDelete, testKey, out.ListenKey).status)
	requireError(t, b.userDataStream(t, http.MethodDelete, testKey, out.ListenKey), http.StatusBadRequest, -1125)
}

// The stream's executionReports are myTrades' trades, field by field.
func TestUserStreamPushesMyTrades(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *simex.Config) { c.Symbols = []string{"BTCUSDT", "ETHBTC"}; c.TradeEvery = 20 * time.Second })
	ctx := context.Background()
	var key struct {
		ListenKey string `json:"listenKey"`
	}
	require.NoError(t, json.Unmarshal(b.userDataStream(t, http.MethodPost, testKey, "").body, &key))
	_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(b.srv.URL, "http")+"/ws/unknownkey", nil)
	require.Error(t, err, "an unknown key is refused")
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)

	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(b.srv.URL, "http")+"/ws/"+key.ListenKey, nil)
	require.NoError(t, err)
	defer ws.CloseNow()
	time.Sleep(300 * time.Millisecond) // the connection's first round: the trades from now on only
	b.clock.Add(10 * time.Minute)
	events := map[string][]map[string]any{}
	n := 0
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for n < 40 {
		_, data, err := ws.Read(rctx)
		require.NoError(t, err)
		var ev map[string]any
		require.NoError(t, json.Unmarshal(data, &ev))
		require.Equal(t, "executionReport", ev["e"])
		require.Equal(t, "TRADE", ev["x"])
		require.Contains(t, []any{"FILLED", "PARTIALLY_FILLED"}, ev["X"])
		events[ev["s"].(string)] = append(events[ev["s"].(string)], ev)
		n++
	}
	for sym, evs := range events {
		from := int64(evs[0]["t"].(float64))
		a := b.signed(t, url.Values{"symbol": {sym}, "fromId": {strconv.FormatInt(from, 10)}, "limit": {strconv.Itoa(len(evs))}}, testKey, testSecret, b.clock.Now())
		require.Equal(t, http.StatusOK, a.status, string(a.body))
		var trades []map[string]any
		require.NoError(t, json.Unmarshal(a.body, &trades))
		require.Len(t, trades, len(evs))
		for i, tr := range trades {
			ev := evs[i]
			side := "SELL"
			if tr["isBuyer"].(bool) {
				side = "BUY"
			}
			for mt, key := range map[string]string{"symbol": "s", "id": "t", "orderId": "i", "orderListId": "g", "price": "L", "qty": "l",
				"quoteQty": "Y", "commission": "n", "commissionAsset": "N", "time": "T", "isMaker": "m", "isBestMatch": "M"} {
				require.Equal(t, tr[mt], ev[key], "%s trade %v: myTrades %s, event %s", sym, tr["id"], mt, key)
			}
			require.Equal(t, side, ev["S"])
		}
	}

	b.ex.ExpireListenKeys()
	for {
		_, data, err := ws.Read(rctx)
		require.NoError(t, err)
		if strings.Contains(string(data), `"e":"listenKeyExpired"`) {
			require.Contains(t, string(data), key.ListenKey)
			break
		}
	}
	_, _, err = ws.Read(rctx)
	require.Equal(t, websocket.StatusNormalClosure, websocket.CloseStatus(err), "closed after listenKeyExpired: %v", err)
}
