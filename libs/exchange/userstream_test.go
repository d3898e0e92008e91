package exchange_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/exchange"
	"cryptopill.dev/jobs/libs/simex"
	"cryptopill.dev/jobs/libs/testkit/clocktest"
	"cryptopill.dev/jobs/libs/testkit/logtest"
)

// userRecorder is a UserStreamHandler that keeps what it hears.
type userRecorder struct {
	mu       sync.Mutex
	trades   []exchange.Trade
	connects []time.Time
	downs    []error
	gaps     []time.Time
}

func (r *userRecorder) UserStreamGap(at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gaps = append(r.gaps, at)
}

func (r *userRecorder) UserStreamConnected(at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.connects = append(r.connects, at)
}

func (r *userRecorder) UserStreamDown(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.downs = append(r.downs, err)
}

func (r *userRecorder) UserTrade(_ context.Context, t exchange.Trade) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.trades = append(r.trades, t)
}

func (r *userRecorder) snapshot() (trades []exchange.Trade, connects int, downs []error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.trades), len(r.connects), slices.Clone(r.downs)
}

type userRig struct {
	clock  *clocktest.Clock
	ex     *simex.Exchange
	client *exchange.Client
	stream *exchange.UserStream
	rec    *userRecorder
}

func newUserRig(t *testing.T, tradeEvery time.Duration, opts ...func(*exchange.UserStreamConfig)) *userRig {
	t.Helper()
	r := &userRig{clock: clocktest.NewClock(clocktest.Afternoon), rec: &userRecorder{}}
	ex, err := simex.New(simex.Config{Symbols: []string{"BTCUSDT", "ETHUSDT", "ETHBTC"}, Seed: 3, APIKey: "k", APISecret: "s",
		TradeEvery: tradeEvery, WeightLimit: -1, Now: r.clock.Now})
	require.NoError(t, err)
	r.ex = ex
	srv := httptest.NewServer(ex)
	t.Cleanup(srv.Close)
	r.client, err = exchange.New(exchange.Config{BaseURL: srv.URL, APIKey: "k", APISecret: "s", WeightLimit: 6000, Now: r.clock.Now})
	require.NoError(t, err)
	wsURL, err := exchange.StreamURLFor(srv.URL)
	require.NoError(t, err)
	ucfg := exchange.UserStreamConfig{URL: wsURL, Now: r.clock.Now, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}
	for _, o := range opts {
		o(&ucfg)
	}
	r.stream, err = exchange.NewUserStream(r.client, ucfg, r.rec)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.stream.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	require.Eventually(t, func() bool { _, n, _ := r.rec.snapshot(); return n == 1 }, 5*time.Second, 5*time.Millisecond)
	return r
}

func TestUserStreamTradesAreMyTrades(t *testing.T) {
	t.Parallel()
	r := newUserRig(t, 5*time.Second)
	r.clock.Jump(3 * time.Minute)
	require.Eventually(t, func() bool { tr, _, _ := r.rec.snapshot(); return len(tr) > 60 }, 5*time.Second, 5*time.Millisecond)
	got, _, _ := r.rec.snapshot()
	bySymbol := map[string][]exchange.Trade{}
	for _, tr := range got {
		bySymbol[tr.Symbol] = append(bySymbol[tr.Symbol], tr)
	}
	require.Len(t, bySymbol, 3)
	for sym, trades := range bySymbol {
		from := trades[0].ID
		want, err := r.client.MyTrades(context.Background(), exchange.MyTradesRequest{Symbol: sym, FromID: &from, Limit: len(trades)})
		require.NoError(t, err)
		ids := func(ts []exchange.Trade) (out []int64) {
			for _, t := range ts {
				out = append(out, t.ID)
			}
			return out
		}
		require.Equal(t, ids(want), ids(trades), "%s: the stream skipped no id", sym)
		for i := range want {
			g, w := trades[i], want[i]
			require.Contains(t, string(g.Raw), `"e":"executionReport"`)
			g.Raw, w.Raw = nil, nil
			require.Equal(t, w, g, "%s trade %d field by field", sym, w.ID)
		}
	}
	st := r.stream.Stats()
	require.True(t, st.Up)
	require.GreaterOrEqual(t, st.Trades, int64(len(got)), "trades go on arriving")
	require.Equal(t, int64(1), st.ListenKeys)
}

func TestUserStreamReplacesAnExpiredKey(t *testing.T) {
	t.Parallel()
	r := newUserRig(t, time.Hour)
	r.ex.ExpireListenKeys()
	require.Eventually(t, func() bool { _, n, _ := r.rec.snapshot(); return n == 2 }, 5*time.Second, 5*time.Millisecond)
	st := r.stream.Stats()
	require.Equal(t, int64(2), st.ListenKeys)
	require.Equal(t, int64(1), st.Expired)
	_, _, downs := r.rec.snapshot()
	require.Len(t, downs, 1, "the expiry is reported as a gap")
}

func TestUserStreamKeepsItsKeyAlive(t *testing.T) {
	t.Parallel()
	r := newUserRig(t, time.Hour)
	// Three keepalive periods: each extends the key, which would lapse after one hour without.
	for i := 1; i <= 3; i++ {
		r.clock.Jump(exchange.ListenKeyKeepAlive + time.Second)
		require.Eventually(t, func() bool { return r.stream.Stats().KeepAlives == int64(i) }, 5*time.Second, 5*time.Millisecond)
	}
	st := r.stream.Stats()
	require.Equal(t, int64(1), st.ListenKeys, "one key all along")
	require.Equal(t, int64(1), st.Connects)
	require.Zero(t, st.KeepAliveFailures)
}

func TestUserStreamReconnectsAfterADrop(t *testing.T) {
	t.Parallel()
	var logs logtest.Buffer
	r := newUserRig(t, time.Hour, func(c *exchange.UserStreamConfig) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	r.ex.SetStreamFaults(simex.StreamFaults{UserStreamDown: true})
	require.Eventually(t, func() bool { _, _, d := r.rec.snapshot(); return len(d) == 1 }, 5*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool { return r.stream.Stats().DialFailures > 0 }, 5*time.Second, 5*time.Millisecond)
	require.False(t, r.stream.Stats().Up)
	r.ex.SetStreamFaults(simex.StreamFaults{})
	require.Eventually(t, func() bool { _, n, _ := r.rec.snapshot(); return n == 2 }, 5*time.Second, 5*time.Millisecond)
	require.True(t, r.stream.Stats().Up)

	// The listenKey (the account's live one, which creating gives back) is in no log line and
	// no error.
	key, err := r.client.CreateListenKey(context.Background())
	require.NoError(t, err)
	require.Contains(t, logs.String(), "user data stream lost")
	require.NotContains(t, logs.String(), key)
	_, _, downs := r.rec.snapshot()
	for _, d := range downs {
		require.NotContains(t, d.Error(), key)
	}
}

// A connection that delivers nothing and answers no ping is replaced.
func TestUserStreamReplacesAHalfDeadConnection(t *testing.T) {
	t.Parallel()
	r := newUserRig(t, time.Hour, func(c *exchange.UserStreamConfig) { c.PingTimeout = 200 * time.Millisecond })
	r.ex.SetStreamFaults(simex.StreamFaults{IgnorePings: true})
	r.clock.Jump(time.Minute + time.Second) // a ping is due
	require.Eventually(t, func() bool { _, _, d := r.rec.snapshot(); return len(d) == 1 }, 5*time.Second, 5*time.Millisecond)
	_, _, downs := r.rec.snapshot()
	require.ErrorContains(t, downs[0], "ping")
	r.ex.SetStreamFaults(simex.StreamFaults{})
	require.Eventually(t, func() bool { _, n, _ := r.rec.snapshot(); return n == 2 }, 5*time.Second, 5*time.Millisecond)
}

func TestUserStreamRotatesBeforeTheCutoff(t *testing.T) {
	t.Parallel()
	r := newUserRig(t, time.Hour, func(c *exchange.UserStreamConfig) { c.Rotate = 20 * time.Minute })
	r.clock.Jump(21 * time.Minute) // within the key's validity: a rotation, not a new key
	require.Eventually(t, func() bool { _, n, _ := r.rec.snapshot(); return n == 2 }, 5*time.Second, 5*time.Millisecond)
	st := r.stream.Stats()
	require.Equal(t, int64(1), st.Rotations)
	require.Equal(t, int64(2), st.Connects, "a rotation is a connect, reported as a possible gap")
	require.Zero(t, st.Disconnects)
	require.True(t, st.Up)
}

func TestListenKeyCallsKeepTheKeySecret(t *testing.T) {
	t.Parallel()
	clock := clocktest.NewClock(clocktest.Afternoon)
	ex, err := simex.New(simex.Config{APIKey: "k", APISecret: "s", WeightLimit: -1, Now: clock.Now})
	require.NoError(t, err)
	srv := httptest.NewServer(ex)
	t.Cleanup(srv.Close)
	client, err := exchange.New(exchange.Config{BaseURL: srv.URL, APIKey: "k", APISecret: "s", WeightLimit: 6000, Now: clock.Now})
	require.NoError(t, err)
	ctx := context.Background()

	key, err := client.CreateListenKey(ctx)
	require.NoError(t, err)
	require.Len(t, key, 60)
	again, err := client.CreateListenKey(ctx)
	require.NoError(t, err)
	require.Equal(t, key, again, "an account's live key comes back")
	require.NoError(t, client.KeepAliveListenKey(ctx, key))

	clock.Jump(exchange.ListenKeyValidity + time.Second)
	err = client.KeepAliveListenKey(ctx, key)
	require.ErrorIs(t, err, exchange.ErrListenKeyNotFound)
	require.NotContains(t, err.Error(), key)
	require.Contains(t, err.Error(), "listenKey=REDACTED")
	require.Contains(t, err.Error(), "This listenKey does not exist.")

	fresh, err := client.CreateListenKey(ctx)
	require.NoError(t, err)
	require.NotEqual(t, key, fresh)
	require.NoError(t, client.CloseListenKey(ctx, fresh))
	require.ErrorIs(t, client.CloseListenKey(ctx, fresh), exchange.ErrListenKeyNotFound)

	anon, err := exchange.New(exchange.Config{BaseURL: srv.URL, WeightLimit: 6000, Now: clock.Now})
	require.NoError(t, err)
	_, err = anon.CreateListenKey(ctx)
	require.ErrorIs(t, err, exchange.ErrMissingCredentials)
	wrong, err := exchange.New(exchange.Config{BaseURL: srv.URL, APIKey: "nope", APISecret: "s", WeightLimit: 6000, Now: clock.Now})
	require.NoError(t, err)
	_, err = wrong.CreateListenKey(ctx)
	require.ErrorIs(t, err, exchange.ErrInvalidAPIKey)
	require.Equal(t, int64(8), ex.Stats().Requests["/api/v3/userDataStream"])
	require.False(t, errors.Is(err, exchange.ErrListenKeyNotFound))
	require.False(t, strings.Contains(err.Error(), "nope"), "the API key is not in the error")
}
