package exchange_test

import (
	"context"
	"testing"

	"cryptopill.dev/jobs/libs/exchange"
	"cryptopill.dev/jobs/libs/testkit/clocktest"
)

// A combined-stream diff event as the simulated exchange sends it at depth 100: a dozen levels.
var benchEvent = []byte(`{"stream":"s0001usdt@depth@100ms","data":{"e":"depthUpdate","E":1773759845100,"s":"S0001USDT","U":17737598451,"u":17737598460,"b":[["12.34560000","100.10000000"],["12.34550000","0.00000000"],["12.34400000","51.20000000"],["12.34000000","7.00000000"],["12.33000000","1.50000000"],["12.32000000","12.00000000"]],"a":[["12.34570000","3.30000000"],["12.34600000","0.00000000"],["12.35000000","44.00000000"],["12.36000000","9.90000000"],["12.37000000","1.00000000"],["12.38000000","2.20000000"]]}}`)

// BenchmarkBooksStreamMessage is the per-message cost of the stream path after the socket: the
// combined wrapper and the diff decoded, the book updated.
func BenchmarkBooksStreamMessage(b *testing.B) {
	books, err := exchange.NewBooks(exchange.BooksConfig{Snapshot: func(context.Context, string, int) (*exchange.OrderBook, error) {
		return &exchange.OrderBook{LastUpdateID: 1}, nil
	}, Now: clocktest.Fixed(clocktest.Afternoon)})
	if err != nil {
		b.Fatal(err)
	}
	books.SetSymbols([]string{"S0001USDT"})
	now := clocktest.Afternoon
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		stream, data, err := exchange.UnwrapCombined(benchEvent)
		if err != nil {
			b.Fatal(err)
		}
		exchange.SetBookLive(books, "S0001USDT", 17737598450)
		books.StreamMessage(stream, data, now)
	}
}

// A combined-stream ticker event as the simulated exchange sends it.
var benchTickerEvent = []byte(`{"stream":"btcusdt@ticker","data":{"e":"24hrTicker","E":1773759857345,"s":"BTCUSDT","p":"339.71000000",` +
	`"P":"0.548","w":"61703.01765306","x":"61940.50000000","c":"62280.21000000","Q":"0.00049000","b":"62280.36000000",` +
	`"B":"0.00312000","a":"62280.37000000","A":"0.04180000","o":"61940.50000000","h":"62280.21000000","l":"61197.62000000",` +
	`"v":"555.68697000","q":"34287562.91948610","O":1773673457345,"C":1773759857345,"F":4742442400,"L":4742673415,"n":231016}}`)

// BenchmarkTickersStreamMessage is the per-message cost of a ticker event after the socket: the
// combined wrapper unwrapped, the event decoded and checked, the ticker kept, through a FeedMux.
func BenchmarkTickersStreamMessage(b *testing.B) {
	tickers := exchange.NewTickers(exchange.TickersConfig{Now: clocktest.Fixed(clocktest.Afternoon)})
	tickers.SetSymbols([]string{"BTCUSDT"})
	mux, err := exchange.NewFeedMux(map[string]exchange.FeedHandler{exchange.TickerStreamKind: tickers}, nil)
	if err != nil {
		b.Fatal(err)
	}
	now := clocktest.Afternoon
	b.ReportAllocs()
	for b.Loop() {
		stream, data, err := exchange.UnwrapCombined(benchTickerEvent)
		if err != nil {
			b.Fatal(err)
		}
		tickers.StreamDown(stream, nil) // so the same event is kept each time
		mux.StreamMessage(stream, data, now)
	}
	if st := tickers.Stats(); st.BadEvents != 0 || st.Events == 0 {
		b.Fatalf("%+v", st)
	}
}
