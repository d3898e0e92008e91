package simex_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"cryptopill.dev/jobs/libs/simex"
	"cryptopill.dev/jobs/libs/testkit/clocktest"
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

// BenchmarkStreamWrite measures the diff-depth and ticker streams: conns connections of
// perConn symbols each (<sym>@depth@100ms and <sym>@ticker), written for one simulated second
// per op on the exchange's manual clock (ten 100 ms snapshots, ten diff events and one ticker
// event per symbol). It reports the messages per op and the process CPU per message (clients
// reading included: profile to split them).
func BenchmarkStreamWrite(b *testing.B) {
	const conns, perConn = 2, 300
	syms := simex.GeneratedSymbols(conns * perConn)
	clock := clocktest.NewClock(time.Date(2025, 6, 4, 12, 0, 0, 0, time.UTC))
	clock.Pause()
	ex, err := simex.New(simex.Config{Symbols: syms, WeightLimit: -1, Now: clock.Now,
		Streams: simex.StreamConfig{Interval: time.Millisecond}})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(ex)
	defer srv.Close()
	var got atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for c := range conns {
		names := make([]string, 0, 2*perConn)
		for _, s := range syms[c*perConn : (c+1)*perConn] {
			s = strings.ToLower(s)
			names = append(names, s+"@depth@100ms", s+"@ticker")
		}
		ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/stream?streams="+strings.Join(names, "/"), nil)
		if err != nil {
			b.Fatal(err)
		}
		ws.SetReadLimit(1 << 20)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer ws.CloseNow()
			for {
				if _, _, err := ws.Read(ctx); err != nil {
					return
				}
				got.Add(1)
			}
		}()
	}
	// Each snapshot: one diff event per symbol; each second also one ticker event.
	wait := func(want int64) {
		for got.Load() < want {
			time.Sleep(50 * time.Microsecond)
		}
	}
	want := int64(0)
	step := func() {
		clock.Jump(100 * time.Millisecond)
		want += conns * perConn
		if ms := clock.Now().UnixMilli(); ms%1000 < 100 {
			want += conns * perConn
		}
		wait(want)
	}
	for range 10 { // warm up: every stream has written its first events
		step()
	}
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	msgs0 := got.Load()
	b.ResetTimer()
	for b.Loop() {
		for range 10 {
			step()
		}
	}
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	msgs := got.Load() - msgs0
	cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) * time.Nanosecond
	b.ReportMetric(float64(msgs)/float64(b.N), "msgs/op")
	b.ReportMetric(float64(cpu.Microseconds())/float64(max(1, msgs)), "cpu-µs/msg")
	cancel()
	wg.Wait()
}
