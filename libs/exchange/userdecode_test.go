package exchange

import (
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"
)

// Binance's documented executionReport example, as a TRADE of a BUY.
const executionReport = `{"e":"executionReport","E":1499405658658,"s":"ETHBTC","c":"mUvoqJxFIILMdfAW5iGSOW","S":"BUY",` +
	`"o":"LIMIT","f":"GTC","q":"1.00000000","p":"0.10264410","P":"0.00000000","F":"0.00000000","g":-1,"C":"",` +
	`"x":"TRADE","X":"PARTIALLY_FILLED","r":"NONE","i":4293153,"l":"0.50000000","z":"0.50000000","L":"0.10264400",` +
	`"n":"0.00050000","N":"ETH","T":1499405658657,"t":112,"I":8641984,"w":false,"m":true,"M":true,` +
	`"O":1499405658657,"Z":"0.05132200","Y":"0.05132200","Q":"0.00000000","W":1499405658657,"V":"NONE"}`

func TestDecodeUserEvent(t *testing.T) {
	t.Parallel()
	ev, err := decodeUserEvent([]byte(executionReport))
	require.NoError(t, err)
	require.NotNil(t, ev.trade)
	tr := *ev.trade
	// Keys that differ only in case are read exactly: t (trade id) not T (time), l (last
	// quantity) not L (last price), m (maker) not M, i (order id) not I.
	require.Equal(t, int64(112), tr.ID)
	require.Equal(t, int64(4293153), tr.OrderID)
	require.Equal(t, int64(-1), tr.OrderListID)
	require.True(t, decimal.RequireFromString("0.102644").Equal(tr.Price))
	require.True(t, decimal.RequireFromString("0.5").Equal(tr.Qty))
	require.True(t, decimal.RequireFromString("0.051322").Equal(tr.QuoteQty))
	require.True(t, decimal.RequireFromString("0.0005").Equal(tr.Commission))
	require.Equal(t, "ETH", tr.CommissionAsset)
	require.Equal(t, time.UnixMilli(1499405658657).UTC(), tr.Time)
	require.True(t, tr.IsBuyer)
	require.True(t, tr.IsMaker)
	require.True(t, tr.IsBestMatch)
	require.Equal(t, "ETHBTC", tr.Symbol)

	// Not a trade: a NEW order, a balance update; listenKeyExpired.
	for _, other := range []string{strings.Replace(executionReport, `"x":"TRADE"`, `"x":"NEW"`, 1),
		`{"e":"outboundAccountPosition","E":1564034571105,"u":1564034571073,"B":[]}`} {
		ev, err := decodeUserEvent([]byte(other))
		require.NoError(t, err)
		require.Nil(t, ev.trade)
		require.False(t, ev.expired)
	}
	ev, err = decodeUserEvent([]byte(`{"e":"listenKeyExpired","E":1576653824250,"listenKey":"OfYGbUzi3PraNagEkdKuFwUHn48brFsItTdsuiIXrucEvD0rhRXZ7I6URWfE8YE8"}`))
	require.NoError(t, err)
	require.True(t, ev.expired)

	// Bad input names what is wrong.
	for bad, want := range map[string]string{
		`{`: "user event",
		strings.Replace(executionReport, `"t":112,`, ``, 1):                "field t missing",
		strings.Replace(executionReport, `"S":"BUY"`, `"S":"HOLD"`, 1):     `side S "HOLD"`,
		strings.Replace(executionReport, `"L":"0.10264400"`, `"L":"x"`, 1): "field L",
	} {
		_, err := decodeUserEvent([]byte(bad))
		require.ErrorContains(t, err, want, bad)
	}
}

func FuzzUserEvent(f *testing.F) {
	f.Add([]byte(executionReport))
	f.Add([]byte(`{"e":"listenKeyExpired","E":1,"listenKey":"k"}`))
	f.Add([]byte(`{"e":"executionReport","x":"TRADE","X":"TRADE","t":1,"T":2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := decodeUserEvent(b)
		if err != nil {
			require.Nil(t, ev.trade)
			return
		}
		if ev.trade != nil {
			require.NotEmpty(t, ev.trade.Symbol)
			require.GreaterOrEqual(t, ev.trade.ID, int64(0))
		}
	})
}
