package simex_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"cryptopill.dev/jobs/libs/simex"
)

// benchServe measures one request served in process over a 500-symbol market.
func benchServe(b *testing.B, target string) {
	ex, err := simex.New(simex.Config{Symbols: simex.GeneratedSymbols(500), WeightLimit: -1})
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, target, nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		ex.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}

func BenchmarkDepth100(b *testing.B) { benchServe(b, "/api/v3/depth?symbol=S0250USDT") }
func BenchmarkDepth5000(b *testing.B) {
	benchServe(b, "/api/v3/depth?symbol=S0250USDT&limit=5000")
}
func BenchmarkTickerPriceAll(b *testing.B) { benchServe(b, "/api/v3/ticker/price") }
func BenchmarkTicker24hAll(b *testing.B)   { benchServe(b, "/api/v3/ticker/24hr") }
func BenchmarkKlines1000(b *testing.B) {
	benchServe(b, "/api/v3/klines?symbol=S0250USDT&interval=1m&limit=1000")
}
func BenchmarkExchangeInfoAll(b *testing.B) { benchServe(b, "/api/v3/exchangeInfo") }
