package exchange_test

import (
	"context"
	"testing"
	"time"

	"cryptopill.dev/jobs/libs/exchange"
)

// A combined-stream diff event as the simulated exchange sends it at depth 100: a dozen levels.
var benchEvent = []byte(`{"stream":"s0001usdt@depth@100ms","data":{"e":"depthUpdate","E":1773759845100,"s":"S0001USDT","U":17737598451,"u":17737598460,"b":[["12.34560000","100.10000000"],["12.34550000","0.00000000"],["12.34400000","51.20000000"],["12.34000000","7.00000000"],["12.33000000","1.50000000"],["12.32000000","12.00000000"]],"a":[["12.34570000","3.30000000"],["12.34600000","0.00000000"],["12.35000000","44.00000000"],["12.36000000","9.90000000"],["12.37000000","1.00000000"],["12.38000000","2.20000000"]]}}`)

// BenchmarkBooksStreamMessage is the per-message cost of the stream path after the socket: the
// combined wrapper and the diff decoded, the book updated.
func BenchmarkBooksStreamMessage(b *testing.B) {
	books, err := exchange.NewBooks(exchange.BooksConfig{Snapshot: func(context.Context, string, int) (*exchange.OrderBook, error) {
		return &exchange.OrderBook{LastUpdateID: 1}, nil
	}})
	if err != nil {
		b.Fatal(err)
	}
	books.SetSymbols([]string{"S0001USDT"})
	now := time.Now()
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
