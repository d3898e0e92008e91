package ticks_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/exchange"
	"cryptopill.dev/jobs/libs/simex"
	"cryptopill.dev/jobs/services/straux/internal/store"
	"cryptopill.dev/jobs/services/straux/internal/ticks"
)

// A symbol the exchange halts is marked not_trading with its status, never sampled as a zero
// price: first through the empty book it answers while the statuses are still fresh, then
// straight from the statuses (no depth call); once it trades again it is sampled.
func TestNotTradingSymbolIsMarkedNotSampled(t *testing.T) {
	t.Parallel()
	syms := []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"}
	b := setup(t, syms, syms)
	reg := prometheus.NewRegistry()
	b.startReplica(t, replicaOpts{cfg: ticks.Config{Registerer: reg}})
	ctx := context.Background()
	tick := func(k int) time.Time { return tickDone(t, b, k) }
	reason := func(p time.Time) string {
		var r string
		require.NoError(t, b.db.Pool.QueryRow(ctx,
			`SELECT coalesce(reason, '') FROM str_aux.samples WHERE period_start = $1 AND symbol = 'SOLUSDT'`, p).Scan(&r))
		return r
	}
	noZeros := func(p time.Time) {
		t.Helper()
		require.Zero(t, b.count(t, `SELECT count(*) FROM str_aux.samples WHERE period_start = $1 AND mid <= 0`, p))
		require.Zero(t, b.count(t, `SELECT count(*) FROM market.tickers WHERE ts = $1 AND symbol = 'SOLUSDT'`, p))
		require.Zero(t, b.count(t, `SELECT count(*) FROM market.tickers WHERE ts = $1 AND last_price <= 0`, p))
		require.Equal(t, 2, b.count(t, `SELECT count(*) FROM market.tickers WHERE ts = $1`, p))
		require.Equal(t, 2, b.count(t, `SELECT count(*) FROM str_aux.samples WHERE period_start = $1 AND mid > 0`, p))
	}

	p0 := tick(0) // statuses read: all trading
	require.Empty(t, reason(p0))

	require.NoError(t, b.simex.SetSymbolStatus("SOLUSDT", simex.StatusHalt))
	depth := b.simex.Stats().Requests["/api/v3/depth"]
	p1 := tick(1) // 40 s later: statuses still fresh, so the empty book forces a read
	require.Equal(t, "not_trading:HALT", reason(p1))
	require.Equal(t, depth+3, b.simex.Stats().Requests["/api/v3/depth"])
	noZeros(p1)
	require.Equal(t, 1.0, gauge(t, reg, "cp_straux_not_trading_symbols"))

	depth = b.simex.Stats().Requests["/api/v3/depth"]
	p3 := tick(3) // 80 s after the last read: refreshed, still halted, no depth call for it
	require.Equal(t, "not_trading:HALT", reason(p3))
	require.Equal(t, depth+2, b.simex.Stats().Requests["/api/v3/depth"])
	noZeros(p3)

	require.NoError(t, b.simex.SetSymbolStatus("SOLUSDT", simex.StatusTrading))
	p5 := tick(5)
	require.Empty(t, reason(p5))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM str_aux.samples WHERE period_start = $1 AND symbol = 'SOLUSDT' AND mid > 0`, p5))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM market.tickers WHERE ts = $1 AND symbol = 'SOLUSDT' AND last_price > 0`, p5))
	require.Equal(t, 0.0, gauge(t, reg, "cp_straux_not_trading_symbols"))
}

// tickDone runs the k-th period after b.p, its clock a second into it, to its end.
func tickDone(t *testing.T, b *bundle, k int) time.Time {
	t.Helper()
	p := b.p.Add(time.Duration(k) * interval)
	b.setNow(p.Add(time.Second))
	b.publishTick(t, p, "")
	b.waitStatus(t, p, store.StatusDone)
	return p
}

// zeroPriceExchange answers one symbol's ticker with a zero last price, as the exchange does for
// a symbol without trades in the last day, while its book stays good.
type zeroPriceExchange struct {
	ticks.Exchange
	symbol string
}

func (e zeroPriceExchange) Tickers24h(ctx context.Context, symbols []string) ([]exchange.Ticker24h, error) {
	ts, err := e.Exchange.Tickers24h(ctx, symbols)
	for i := range ts {
		if ts[i].Symbol == e.symbol {
			ts[i].LastPrice = decimal.Zero
		}
	}
	return ts, err
}

func TestZeroPriceTickerIsDropped(t *testing.T) {
	t.Parallel()
	syms := []string{"BTCUSDT", "ETHUSDT"}
	b := setup(t, syms, syms)
	b.startReplica(t, replicaOpts{exchange: zeroPriceExchange{Exchange: b.client, symbol: "ETHUSDT"}})
	b.publishTick(t, b.p, "")
	b.waitStatus(t, b.p, store.StatusDone)
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM str_aux.samples WHERE period_start = $1 AND mid > 0`, b.p))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM market.tickers WHERE ts = $1`, b.p))
	require.Zero(t, b.count(t, `SELECT count(*) FROM market.tickers WHERE ts = $1 AND symbol = 'ETHUSDT'`, b.p))
}

// A 403 from the exchange's firewall is recorded as such.
func TestFirewallFailureReason(t *testing.T) {
	t.Parallel()
	syms := []string{"BTCUSDT"}
	b := setup(t, syms, syms)
	b.simex.SetFirewall(true)
	b.startReplica(t, replicaOpts{cfg: ticks.Config{MaxAttempts: 1}})
	b.publishTick(t, b.p, "")
	b.waitStatus(t, b.p, store.StatusDone)
	var reason string
	require.NoError(t, b.db.Pool.QueryRow(context.Background(),
		`SELECT reason FROM str_aux.samples WHERE period_start = $1 AND symbol = 'BTCUSDT' AND mid IS NULL`, b.p).Scan(&reason))
	require.True(t, strings.HasPrefix(reason, "firewall: "), reason)
	require.NotContains(t, reason, "<")
}

// heldInfoExchange answers exchangeInfo at once the first time, and later only once released
// (ignoring its context, as a hung exchange would).
type heldInfoExchange struct {
	ticks.Exchange
	calls   *atomic.Int32
	release chan struct{}
}

func (e heldInfoExchange) ExchangeInfo(ctx context.Context, symbols ...string) (*exchange.ExchangeInfo, error) {
	if e.calls.Add(1) > 1 {
		<-e.release
	}
	return e.Exchange.ExchangeInfo(ctx, symbols...)
}

// Statuses gone stale while every symbol trades are read again behind the ticks: a tick does not
// wait on the exchangeInfo read (2,000 symbols of it once a minute), and the answer is used once
// it comes.
func TestStaleStatusesAreReadBehindTheTick(t *testing.T) {
	t.Parallel()
	syms := []string{"BTCUSDT", "ETHUSDT"}
	b := setup(t, syms, syms)
	ex := heldInfoExchange{Exchange: b.client, calls: &atomic.Int32{}, release: make(chan struct{})}
	var once sync.Once
	release := func() { once.Do(func() { close(ex.release) }) }
	t.Cleanup(release)
	reg := prometheus.NewRegistry()
	b.startReplica(t, replicaOpts{exchange: ex, cfg: ticks.Config{Registerer: reg}})
	tick := func(k int) time.Time { return tickDone(t, b, k) }
	tick(0) // the first read, waited for
	require.Equal(t, int32(1), ex.calls.Load())
	require.NoError(t, b.simex.SetSymbolStatus("ETHUSDT", simex.StatusBreak))
	p2 := tick(2) // 80 s on: stale, read behind the tick, which is written meanwhile
	require.Equal(t, int32(2), ex.calls.Load())
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM str_aux.samples WHERE period_start = $1`, p2))
	release()
	require.Eventually(t, func() bool { return gauge(t, reg, "cp_straux_not_trading_symbols") == 1 },
		10*time.Second, 10*time.Millisecond, "the read's answer is used once it comes")
}
