package ticks_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/events/eventstest"
	"cryptopill.dev/jobs/libs/exchange"
	"cryptopill.dev/jobs/libs/simex"
	"cryptopill.dev/jobs/libs/testkit/clocktest"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
	"cryptopill.dev/jobs/services/straux/internal/plan"
	"cryptopill.dev/jobs/services/straux/internal/store"
	"cryptopill.dev/jobs/services/straux/internal/ticks"
	"cryptopill.dev/jobs/services/straux/internal/universe"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const interval = 40 * time.Second

type bundle struct {
	db     *pgtest.DB
	bus    *eventstest.Bus
	simex  *simex.Exchange
	client *exchange.Client
	url    string // the simulated exchange's
	pub    *events.Publisher
	// p is the period the tests tick; now is the runners' frozen clock, a second into it. The
	// exchange (simex and client) runs on the same clock advancing at the real rate from each
	// setNow, so its weight windows roll. Both are fixed instants, never the wall clock: the
	// period's phase in the exchange's minute and the hour of day are the same at every run.
	p   time.Time
	now atomic.Pointer[setClock]
}

type setClock struct{ at, set time.Time }

func setup(t *testing.T, symbols []string, universeRows []string) *bundle {
	t.Helper()
	b := &bundle{db: pgtest.NewDB(t), bus: eventstest.NewBus(t)}
	var err error
	b.p = clocktest.Afternoon.Truncate(interval)
	b.setNow(b.p.Add(time.Second))
	b.simex, err = simex.New(simex.Config{Symbols: symbols, Seed: 7, Now: b.exchangeClock})
	require.NoError(t, err)
	srv := httptest.NewServer(b.simex)
	t.Cleanup(srv.Close)
	b.url = srv.URL
	b.client, err = exchange.New(exchange.Config{BaseURL: srv.URL, MaxRetries: -1, Now: b.exchangeClock})
	require.NoError(t, err)
	b.pub, err = events.NewPublisher(b.bus.Conn, events.PublisherConfig{Source: "test"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.pub.Close(context.Background()) })
	for _, s := range universeRows {
		_, err := b.db.Pool.Exec(context.Background(),
			`INSERT INTO settings.coin_universe (symbol, base_asset, quote_asset) VALUES ($1, left($1, -4), 'USDT')`, s)
		require.NoError(t, err)
	}
	return b
}

func (b *bundle) setNow(t time.Time) { b.now.Store(&setClock{at: t, set: time.Now()}) }
func (b *bundle) clock() time.Time   { return b.now.Load().at }
func (b *bundle) exchangeClock() time.Time {
	c := b.now.Load()
	return c.at.Add(time.Since(c.set))
}

// replica is one straux replica: its own pool, NATS connection, runner and consumers.
type replica struct {
	runner *ticks.Runner
	cons   *events.Consumer
	nc     *nats.Conn
	kill   context.CancelFunc
	done   chan struct{}
}

type replicaOpts struct {
	cfg      ticks.Config
	exchange ticks.Exchange
}

func (b *bundle) startReplica(t *testing.T, o replicaOpts) *replica {
	t.Helper()
	ctx, kill := context.WithCancel(context.Background())
	pool, err := pgxpool.New(ctx, b.db.URL)
	require.NoError(t, err)
	nc, err := nats.Connect(b.bus.Server.URL)
	require.NoError(t, err)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	st := store.New(pool)
	cfg := o.cfg
	cfg.Now = b.clock
	if cfg.Budget == nil {
		cfg.Budget = func() plan.Budget { return plan.Budget{PerWindow: 5400, Window: time.Minute} }
	}
	ex := o.exchange
	if ex == nil {
		ex = b.client
	}
	runner, err := ticks.New(ctx, st, ex, universe.New(js, st.SettingsUniverse, nil), cfg)
	require.NoError(t, err)
	cons, err := events.NewConsumer(ctx, js, events.ConsumerConfig{
		Stream: events.StreamTicks, Durable: events.ConsumerStrauxTicks, Handler: runner.Handler(),
		ShutdownTimeout: 5 * time.Second,
	})
	require.NoError(t, err)
	r := &replica{runner: runner, cons: cons, nc: nc, kill: kill, done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = cons.Run(ctx) }()
	go func() { defer wg.Done(); _ = runner.AssistTicks(ctx, js) }()
	go func() { wg.Wait(); close(r.done) }()
	t.Cleanup(func() {
		r.die()
		<-r.done
		runner.Stop()
		pool.Close()
	})
	return r
}

// die stops a replica as a crash would: its connection drops (no ack, no nak) and every call
// it has in flight fails; it releases nothing.
func (r *replica) die() {
	r.nc.Close()
	r.kill()
}

func (b *bundle) publishTick(t *testing.T, p time.Time, id string) {
	t.Helper()
	if id == "" {
		id = events.TickID(events.ModuleStraux, p)
	}
	_, err := b.pub.Publish(context.Background(), events.Event{
		Subject: events.TickSubject(events.ModuleStraux), ID: id,
		Payload: &eventsv1.Tick{Module: events.ModuleStraux, PeriodStart: timestamppb.New(p), Period: durationpb.New(interval)},
	})
	require.NoError(t, err)
}

func (b *bundle) waitStatus(t *testing.T, p time.Time, want string) {
	t.Helper()
	require.Eventually(t, func() bool {
		var st string
		_ = b.db.Pool.QueryRow(context.Background(), `SELECT status FROM str_aux.tick_periods WHERE period_start = $1`, p).Scan(&st)
		return st == want
	}, 90*time.Second, 50*time.Millisecond, "period %s never became %s", p, want)
}

func (b *bundle) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.db.Pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

func waitAcked(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	require.Eventually(t, func() bool {
		c, err := js.Consumer(context.Background(), events.StreamTicks, events.ConsumerStrauxTicks)
		if err != nil {
			return false
		}
		info, err := c.Info(context.Background())
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0 && info.AckFloor.Stream == info.Delivered.Stream
	}, 90*time.Second, 50*time.Millisecond, "tick never acked")
}

func TestTickSamplesComputesAndAcks(t *testing.T) {
	t.Parallel()
	syms := []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"}
	b := setup(t, syms, append(syms, "NOPEUSDT"))
	b.startReplica(t, replicaOpts{cfg: ticks.Config{Backfill: true}})

	b.publishTick(t, b.p, "")
	b.waitStatus(t, b.p, store.StatusDone)
	waitAcked(t, b.bus.JS)

	// Every universe symbol has exactly one sample of the period; the unknown one says why.
	require.Equal(t, 3, b.count(t, `SELECT count(*) FROM str_aux.samples WHERE period_start = $1 AND mid IS NOT NULL
		AND spread_bps > 0 AND imbalance_top5 BETWEEN -1 AND 1 AND bid_vol > 0 AND ask_vol > 0 AND n_snapshots = 1`, b.p))
	var reason string
	require.NoError(t, b.db.Pool.QueryRow(context.Background(),
		`SELECT reason FROM str_aux.samples WHERE period_start = $1 AND symbol = 'NOPEUSDT' AND mid IS NULL`, b.p).Scan(&reason))
	require.Contains(t, reason, "invalid symbol")
	// Tickers survived the unknown symbol in their batch.
	require.Equal(t, 3, b.count(t, `SELECT count(*) FROM market.tickers WHERE ts = $1`, b.p))

	// History was backfilled from 1m klines, so all three windows have values for the good
	// symbols; the unknown symbol's windows say why they have none.
	require.Positive(t, b.count(t, `SELECT count(*) FROM str_aux.samples WHERE 'kline_backfill' = ANY(flags)`))
	require.Equal(t, 9, b.count(t, `SELECT count(*) FROM str_aux.window_vectors WHERE period_start = $1
		AND reason IS NULL AND v_inner BETWEEN -100 AND 100 AND v_swap BETWEEN -100 AND 100`, b.p))
	require.Equal(t, 9, b.count(t, `SELECT count(*) FROM str_aux.window_stats WHERE period_start = $1
		AND gfm IS NOT NULL AND confidence BETWEEN 0 AND 1`, b.p))
	require.Equal(t, 3, b.count(t, `SELECT count(*) FROM str_aux.window_vectors WHERE period_start = $1
		AND symbol = 'NOPEUSDT' AND reason LIKE 'too few samples%' AND v_inner IS NULL`, b.p))

	// A replayed tick (same period, another message id) rewrites nothing and adds nothing.
	before := b.count(t, `SELECT count(*) FROM str_aux.samples`)
	depthCalls := b.simex.Stats().Requests["/api/v3/depth"]
	b.publishTick(t, b.p, "replay-1")
	waitAcked(t, b.bus.JS)
	require.Equal(t, before, b.count(t, `SELECT count(*) FROM str_aux.samples`))
	require.Equal(t, depthCalls, b.simex.Stats().Requests["/api/v3/depth"], "not sampled twice")
}

func TestUniverseComesFromTheLatestEvent(t *testing.T) {
	t.Parallel()
	syms := []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"}
	b := setup(t, syms, syms)
	for i, enabled := range [][]string{{"BTCUSDT"}, {"ETHUSDT", "SOLUSDT"}} {
		_, err := b.pub.Publish(context.Background(), events.Event{
			Subject: events.SubjectUniverseChanged, ID: fmt.Sprintf("u%d", i),
			Payload: &eventsv1.UniverseChanged{Version: fmt.Sprint(i), Enabled: enabled},
		})
		require.NoError(t, err)
	}
	b.startReplica(t, replicaOpts{})
	b.publishTick(t, b.p, "")
	b.waitStatus(t, b.p, store.StatusDone)
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM str_aux.samples WHERE period_start = $1`, b.p))
	require.Equal(t, 0, b.count(t, `SELECT count(*) FROM str_aux.samples WHERE symbol = 'BTCUSDT'`))
}

func TestLateTickIsSkipped(t *testing.T) {
	t.Parallel()
	syms := []string{"BTCUSDT", "ETHUSDT"}
	b := setup(t, syms, syms)
	old := b.p.Add(-3 * interval)
	// Insert one real sample of the old period: skipping must not overwrite it.
	_, err := b.db.Pool.Exec(context.Background(),
		`INSERT INTO str_aux.samples (symbol, period_start, mid) VALUES ('BTCUSDT', $1, 1)`, old)
	require.NoError(t, err)
	b.startReplica(t, replicaOpts{})

	b.publishTick(t, old, "")
	b.publishTick(t, b.p, "")
	b.waitStatus(t, old, store.StatusSkipped)
	b.waitStatus(t, b.p, store.StatusDone)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM str_aux.samples WHERE period_start = $1 AND reason = 'skipped'`, old))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM str_aux.samples WHERE period_start = $1 AND mid = 1`, old))
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM str_aux.samples WHERE period_start = $1 AND mid IS NOT NULL`, b.p))
}

func TestRotationWithinBudget(t *testing.T) {
	t.Parallel()
	var syms []string
	for i := range 10 {
		syms = append(syms, fmt.Sprintf("C%02dUSDT", i))
	}
	b := setup(t, syms, syms)
	costs := plan.Costs{DepthLimit: 100, Snapshots: 1}
	// A budget that pays for 4 symbols a tick: 40 s ticks start twice in some minutes, so each
	// gets half of a window's budget at a 100% share.
	// Each tick also keeps the weight of a symbol status read (exchangeInfo, 20).
	perWindow := (costs.Weight(4) + exchange.ExchangeInfoWeight) * 2
	b.startReplica(t, replicaOpts{cfg: ticks.Config{WeightSharePct: 100,
		Budget: func() plan.Budget { return plan.Budget{PerWindow: perWindow, Window: time.Minute} }}})

	for k := range 3 {
		p := b.p.Add(time.Duration(k) * interval)
		b.setNow(p.Add(time.Second))
		b.publishTick(t, p, "")
		b.waitStatus(t, p, store.StatusDone)
		require.Equal(t, 4, b.count(t, `SELECT count(*) FROM str_aux.samples WHERE period_start = $1`, p))
		require.Equal(t, 3, b.count(t, `SELECT rotation_rounds FROM str_aux.tick_periods WHERE period_start = $1`, p))
		require.LessOrEqual(t, b.count(t, `SELECT planned_weight FROM str_aux.tick_periods WHERE period_start = $1`, p), costs.Weight(4))
	}
	require.Equal(t, 10, b.count(t, `SELECT count(DISTINCT symbol) FROM str_aux.samples`), "every symbol within 3 ticks")
	require.Zero(t, b.simex.Stats().Statuses[429])
}

// blockingExchange passes calls through until it has passed `after` depth calls; later depth
// calls hang until their context ends, like a replica stuck mid-tick.
type blockingExchange struct {
	ticks.Exchange
	after  int64
	calls  atomic.Int64
	stuck  chan struct{}
	report sync.Once
}

func (e *blockingExchange) Depth(ctx context.Context, symbol string, limit int) (*exchange.OrderBook, error) {
	if e.calls.Add(1) > e.after {
		e.report.Do(func() { close(e.stuck) })
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return e.Exchange.Depth(ctx, symbol, limit)
}

func TestReplicasShareATickAndTakeOverFromADeadOne(t *testing.T) {
	t.Parallel()
	var syms []string
	for i := range 40 {
		syms = append(syms, fmt.Sprintf("R%02dUSDT", i))
	}
	b := setup(t, syms, syms)
	require.NoError(t, b.simex.SetFaults(simex.Faults{Latency: 100 * time.Millisecond}))
	cfg := ticks.Config{ChunkSize: 5, Workers: 1, FetchConcurrency: 5, Lease: 2 * time.Second}

	// Replica A samples one chunk, then hangs mid-way through its second. B joins only once A
	// is stuck, so the split does not depend on how the two race on a loaded machine.
	stuckA := &blockingExchange{Exchange: b.client, after: 5, stuck: make(chan struct{})}
	cfgA := cfg
	cfgA.Replica = "A"
	a := b.startReplica(t, replicaOpts{cfg: cfgA, exchange: stuckA})

	b.publishTick(t, b.p, "")
	select {
	case <-stuckA.stuck:
	case <-time.After(60 * time.Second):
		t.Fatal("replica A never got to its second chunk")
	}
	cfgB := cfg
	cfgB.Replica = "B"
	b.startReplica(t, replicaOpts{cfg: cfgB})
	a.die()

	b.waitStatus(t, b.p, store.StatusDone)
	waitAcked(t, b.bus.JS)

	// Every symbol sampled exactly once: one good row each, one finished claim each.
	require.Equal(t, 40, b.count(t, `SELECT count(*) FROM str_aux.samples WHERE period_start = $1 AND mid IS NOT NULL`, b.p))
	require.Equal(t, 40, b.count(t, `SELECT count(*) FROM str_aux.tick_claims WHERE period_start = $1 AND outcome = 'sampled'`, b.p))
	// Both replicas did part of it, and B finished the chunk A died holding (claimed twice).
	require.Equal(t, 5, b.count(t, `SELECT count(*) FROM str_aux.tick_claims WHERE period_start = $1 AND done_by = 'A'`, b.p))
	require.Equal(t, 35, b.count(t, `SELECT count(*) FROM str_aux.tick_claims WHERE period_start = $1 AND done_by = 'B'`, b.p))
	require.Equal(t, 5, b.count(t, `SELECT count(*) FROM str_aux.tick_claims WHERE period_start = $1 AND done_by = 'B' AND attempts = 2`, b.p))
}

// Periods that went without a price (a skipped or failed sample row, as after an outage) are
// backfilled like empty ones, and the windows are computed from what the database holds.
func TestBackfillFillsPeriodsWithoutAPrice(t *testing.T) {
	t.Parallel()
	syms := []string{"BTCUSDT", "ETHUSDT"}
	b := setup(t, syms, syms)
	ctx := context.Background()
	for k := 1; k <= 20; k++ {
		_, err := b.db.Pool.Exec(ctx, `INSERT INTO str_aux.samples (symbol, period_start, reason) VALUES ('BTCUSDT', $1, 'skipped')`,
			b.p.Add(-time.Duration(k)*interval))
		require.NoError(t, err)
	}
	b.startReplica(t, replicaOpts{cfg: ticks.Config{Backfill: true}})
	b.publishTick(t, b.p, "")
	b.waitStatus(t, b.p, store.StatusDone)

	require.Zero(t, b.count(t, `SELECT count(*) FROM str_aux.samples WHERE symbol = 'BTCUSDT' AND mid IS NULL`))
	require.Equal(t, 20, b.count(t, `SELECT count(*) FROM str_aux.samples WHERE symbol = 'BTCUSDT' AND period_start < $1
		AND period_start >= $1::timestamptz - interval '1 second' * $2 AND 'kline_backfill' = ANY(flags)`, b.p, int(20*interval/time.Second)))
	require.Equal(t, 6, b.count(t, `SELECT count(*) FROM str_aux.window_vectors WHERE period_start = $1 AND reason IS NULL`, b.p))
}
