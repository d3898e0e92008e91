package relay_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/testkit/natstest"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
	"cryptopill.dev/jobs/services/orchestrator/internal/bus"
	"cryptopill.dev/jobs/services/orchestrator/internal/relay"
)

func TestMain(m *testing.M) {
	if os.Getenv("CP_RELAY_HELPER") == "1" {
		helperRelayProcess()
		return
	}
	pgtest.Main(m)
}

var tables = []string{"settings.coin_universe", "cin_aux.rt_session", "market.account_trades"}

type bundle struct {
	db   *pgtest.DB
	nats *natstest.Server
	nc   *nats.Conn
	js   jetstream.JetStream
}

func setup(t *testing.T) *bundle {
	t.Helper()
	d := pgtest.NewDB(t)
	ns := natstest.NewServer(t)
	nc := ns.Connect(t, relayNATSOptions()...)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, events.NewTopology(events.TopologyConfig{}).Apply(ctx, js))
	return &bundle{db: d, nats: ns, nc: nc, js: js}
}

// relayNATSOptions are the relay connection's options in the orchestrator: reconnect forever, and
// no reconnect buffer, so nothing published while disconnected lands after what was lost.
func relayNATSOptions() []nats.Option {
	return []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(100 * time.Millisecond), nats.ReconnectBufSize(-1)}
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startRelay runs a relay until the test ends (or the returned stop is called).
func (b *bundle) startRelay(t *testing.T, nc *nats.Conn, mod func(*relay.Config)) (*relay.ChangeRelay, func()) {
	t.Helper()
	pub, err := bus.New(nc, bus.Config{MaxInFlight: 1024, AckTimeout: 2 * time.Second})
	require.NoError(t, err)
	cfg := relay.Config{
		ConnString:     b.db.URL,
		Pool:           b.db.Pool,
		Publisher:      pub,
		Slot:           b.slot(),
		Tables:         tables,
		StatusInterval: 200 * time.Millisecond,
		StandbyRetry:   200 * time.Millisecond,
		MaxBackoff:     time.Second,
		LagInterval:    200 * time.Millisecond,
		Logger:         testLogger(t),
	}
	if mod != nil {
		mod(&cfg)
	}
	r, err := relay.New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(15 * time.Second):
				t.Error("relay did not stop")
			}
			cctx, c := context.WithTimeout(context.Background(), 5*time.Second)
			defer c()
			_ = pub.Close(cctx)
		})
	}
	t.Cleanup(stop)
	return r, stop
}

// slot is the test's replication slot: slot names are cluster-wide, databases are per test.
func (b *bundle) slot() string { return "cp_relay_" + b.db.Name }

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type received struct {
	subject string
	id      string
	seq     uint64
	change  *eventsv1.RowChange
}

// readCDC reads every message of CP_CDC in stream order.
func readCDC(t *testing.T, js jetstream.JetStream) []received {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, events.StreamCDC)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	n := info.State.Msgs
	if n == 0 {
		return nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)
	var out []received
	for uint64(len(out)) < n {
		batch, err := c.Fetch(int(min(n-uint64(len(out)), 1000)), jetstream.FetchMaxWait(5*time.Second))
		require.NoError(t, err)
		for m := range batch.Messages() {
			_, ev, err := events.Decode(ctx, &nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
			require.NoError(t, err)
			md, _ := m.Metadata()
			out = append(out, received{subject: m.Subject(), id: ev.ID, seq: md.Sequence.Stream, change: ev.Payload.(*eventsv1.RowChange)})
		}
		require.NoError(t, batch.Error())
	}
	return out
}

func cdcCount(t *testing.T, js jetstream.JetStream) uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, events.StreamCDC)
	if err != nil {
		return 0
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0
	}
	return info.State.Msgs
}

// requireExactlyOnceInOrder checks that the stream holds each id once, that per table the
// changes come in commit order, and returns the changes of table.
func requireExactlyOnceInOrder(t *testing.T, got []received) map[string][]*eventsv1.RowChange {
	t.Helper()
	seen := map[string]bool{}
	last := map[string][2]uint64{}
	byTable := map[string][]*eventsv1.RowChange{}
	for _, r := range got {
		require.False(t, seen[r.id], "duplicate event %s (%s)", r.id, r.subject)
		seen[r.id] = true
		require.Equal(t, events.ChangeID(r.change.CommitLsn, r.change.IndexInTx), r.id)
		table := r.change.Schema + "." + r.change.Table
		pos := [2]uint64{r.change.CommitLsn, uint64(r.change.IndexInTx)}
		if prev, ok := last[table]; ok {
			require.True(t, pos[0] > prev[0] || (pos[0] == prev[0] && pos[1] > prev[1]),
				"%s out of commit order: %v after %v (stream seq %d)", table, pos, prev, r.seq)
		}
		last[table] = pos
		byTable[table] = append(byTable[table], r.change)
	}
	return byTable
}

func insertTrades(ctx context.Context, pool *pgxpool.Pool, from, n int) error {
	_, err := pool.Exec(ctx, `
		INSERT INTO market.account_trades (symbol, trade_id, order_id, price, qty, quote_qty, commission, commission_asset, trade_time, is_buyer, is_maker)
		SELECT 'BTCUSDT', g, g, 100, 1, 100, 0, 'BNB', now(), true, false FROM generate_series($1::bigint, $2::bigint) g`, from, from+n-1)
	return err
}

// tradeIDs returns the trade ids of account-trade inserts in stream order.
func tradeIDs(t *testing.T, changes []*eventsv1.RowChange) []int {
	t.Helper()
	out := make([]int, 0, len(changes))
	for _, c := range changes {
		require.Equal(t, eventsv1.RowChange_OP_INSERT, c.Op)
		id, err := strconv.Atoi(c.NewValues["trade_id"].GetText())
		require.NoError(t, err)
		out = append(out, id)
	}
	return out
}

func seq(from, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = from + i
	}
	return out
}

func TestRelayPublishesEveryCommittedChangeInOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	r, _ := b.startRelay(t, b.nc, nil)
	waitFor(t, 10*time.Second, "streaming", func() bool { return r.State() == relay.StateStreaming })

	pool := b.db.Pool
	// A rolled-back transaction publishes nothing.
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `INSERT INTO settings.coin_universe (symbol, base_asset, quote_asset) VALUES ('XRPUSDT', 'XRP', 'USDT')`)
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(ctx))

	for _, q := range []string{
		`INSERT INTO settings.coin_universe (symbol, base_asset, quote_asset) VALUES ('BTCUSDT', 'BTC', 'USDT'), ('ETHUSDT', 'ETH', 'USDT')`,
		`UPDATE settings.coin_universe SET enabled = false WHERE symbol = 'ETHUSDT'`,
		`DELETE FROM settings.coin_universe WHERE symbol = 'BTCUSDT'`,
		// A label big enough to be TOASTed out of line, then an update that leaves it alone.
		`INSERT INTO cin_aux.rt_session (label) SELECT string_agg(md5(g::text), '') FROM generate_series(1, 400) g`,
		`UPDATE cin_aux.rt_session SET status = 'CLOSED', closed_at = now()`,
	} {
		_, err := pool.Exec(ctx, q)
		require.NoError(t, err, q)
	}
	// Several tables in one transaction, many rows.
	tx, err = pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `INSERT INTO settings.coin_universe (symbol, base_asset, quote_asset, enabled) VALUES ('SOLUSDT', 'SOL', 'USDT', NULL)`)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `
		INSERT INTO market.account_trades (symbol, trade_id, order_id, price, qty, quote_qty, commission, commission_asset, trade_time, is_buyer, is_maker)
		SELECT 'BTCUSDT', g, g, 100, 1, 100, 0, 'BNB', now(), true, false FROM generate_series(1, 300) g`)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	// A change to a table outside the publication is not relayed.
	_, err = pool.Exec(ctx, `UPDATE settings.windows SET cycles = cycles + 1`)
	require.NoError(t, err)

	const want = 2 + 1 + 1 + 1 + 1 + 1 + 300
	waitFor(t, 20*time.Second, "all changes", func() bool { return cdcCount(t, b.js) >= want })
	time.Sleep(300 * time.Millisecond)
	got := readCDC(t, b.js)
	require.Len(t, got, want)
	byTable := requireExactlyOnceInOrder(t, got)

	cu := byTable["settings.coin_universe"]
	require.Len(t, cu, 5)
	require.Equal(t, "cp.cdc.settings.coin_universe.insert", got[0].subject)
	require.Equal(t, eventsv1.RowChange_OP_INSERT, cu[0].Op)
	require.Equal(t, "BTCUSDT", cu[0].NewValues["symbol"].GetText())
	require.Equal(t, []string{"symbol", "base_asset", "quote_asset", "enabled", "added_at", "updated_at"}, cu[0].KeyColumns,
		"replica identity full: every column identifies the row")
	require.Equal(t, uint32(1), cu[1].IndexInTx)
	require.Equal(t, cu[0].CommitLsn, cu[1].CommitLsn)
	require.Equal(t, eventsv1.RowChange_OP_UPDATE, cu[2].Op)
	require.Equal(t, "f", cu[2].NewValues["enabled"].GetText())
	require.Equal(t, "t", cu[2].OldValues["enabled"].GetText(), "replica identity full gives old values")
	require.Equal(t, eventsv1.RowChange_OP_DELETE, cu[3].Op)
	require.Equal(t, "BTCUSDT", cu[3].OldValues["symbol"].GetText())
	require.Empty(t, cu[3].NewValues)
	_, isNull := cu[4].NewValues["enabled"].GetKind().(*eventsv1.Value_Null)
	require.True(t, isNull, "NULL is NULL")
	require.NotZero(t, cu[4].Xid)
	require.WithinDuration(t, time.Now(), cu[4].CommitTime.AsTime(), time.Minute)

	rs := byTable["cin_aux.rt_session"]
	require.Len(t, rs, 2)
	require.Len(t, rs[0].NewValues["label"].GetText(), 400*32)
	require.True(t, rs[1].NewValues["label"].GetUnchangedToast(), "unchanged TOAST is marked, not NULL: %v", rs[1].NewValues["label"])
	require.Equal(t, "CLOSED", rs[1].NewValues["status"].GetText())

	trades := byTable["market.account_trades"]
	require.Equal(t, seq(1, 300), tradeIDs(t, trades))
	require.Equal(t, []string{"symbol", "trade_id"}, trades[0].KeyColumns)
	require.Equal(t, uint32(1), trades[0].IndexInTx, "index counts every row of the transaction")
	require.Equal(t, cu[4].CommitLsn, trades[0].CommitLsn)

	// The slot's confirmed position reaches the end of what was relayed.
	var lag int64
	waitFor(t, 10*time.Second, "slot confirmed", func() bool {
		err := pool.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $1`, b.slot()).Scan(&lag)
		return err == nil && lag == 0
	})
}

func TestIdleSlotAdvances(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	r, _ := b.startRelay(t, b.nc, nil)
	waitFor(t, 10*time.Second, "streaming", func() bool { return r.State() == relay.StateStreaming })
	var before string
	require.NoError(t, b.db.Pool.QueryRow(ctx, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, b.slot()).Scan(&before))
	// Only changes outside the publication: no events, but the slot must not pin the WAL.
	for i := 0; i < 20; i++ {
		_, err := b.db.Pool.Exec(ctx, `UPDATE settings.windows SET cycles = cycles + 1`)
		require.NoError(t, err)
	}
	waitFor(t, 15*time.Second, "slot to advance while idle", func() bool {
		var lag int64
		err := b.db.Pool.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $1`, b.slot()).Scan(&lag)
		return err == nil && lag == 0
	})
	require.Zero(t, cdcCount(t, b.js))
}

func TestLargeTransactionWithSmallInFlightBound(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	r, _ := b.startRelay(t, b.nc, func(c *relay.Config) { c.MaxInFlight = 16 })
	waitFor(t, 10*time.Second, "streaming", func() bool { return r.State() == relay.StateStreaming })
	require.NoError(t, insertTrades(ctx, b.db.Pool, 1, 5000))
	waitFor(t, 30*time.Second, "5000 events", func() bool { return cdcCount(t, b.js) >= 5000 })
	got := readCDC(t, b.js)
	require.Len(t, got, 5000)
	require.Equal(t, seq(1, 5000), tradeIDs(t, requireExactlyOnceInOrder(t, got)["market.account_trades"]))
}

// terminateRelayBackend kills the relay's walsender, as a network drop or a crash of the relay's
// host would end its connection: no CopyDone, no final status.
func terminateRelayBackend(t *testing.T, pool *pgxpool.Pool, slot string) bool {
	var n int
	err := pool.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(active_pid)) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`, slot).Scan(&n)
	require.NoError(t, err)
	return n > 0
}

func TestRelayKilledMidStreamLosesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	r, _ := b.startRelay(t, b.nc, nil)
	waitFor(t, 10*time.Second, "streaming", func() bool { return r.State() == relay.StateStreaming })

	const txs, rows = 40, 250
	done := make(chan error, 1)
	go func() {
		for i := 0; i < txs; i++ {
			if err := insertTrades(ctx, b.db.Pool, i*rows+1, rows); err != nil {
				done <- err
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		done <- nil
	}()
	kills := 0
	for kills < 3 {
		if c := cdcCount(t, b.js); c > uint64(kills+1)*1500 {
			if terminateRelayBackend(t, b.db.Pool, b.slot()) {
				kills++
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	require.NoError(t, <-done)
	waitFor(t, 60*time.Second, "every event", func() bool { return cdcCount(t, b.js) >= txs*rows })
	time.Sleep(500 * time.Millisecond)
	got := readCDC(t, b.js)
	require.Equal(t, seq(1, txs*rows), tradeIDs(t, requireExactlyOnceInOrder(t, got)["market.account_trades"]))
}

func TestRelayResumesAfterNATSRestart(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	r, _ := b.startRelay(t, b.nc, nil)
	waitFor(t, 10*time.Second, "streaming", func() bool { return r.State() == relay.StateStreaming })

	require.NoError(t, insertTrades(ctx, b.db.Pool, 1, 2000))
	waitFor(t, 20*time.Second, "first batch", func() bool { return cdcCount(t, b.js) >= 500 })
	b.nats.Restart(t)
	// Changes committed while NATS is restarting and after.
	require.NoError(t, insertTrades(ctx, b.db.Pool, 2001, 2000))
	waitFor(t, 60*time.Second, "every event", func() bool { return cdcCount(t, b.js) >= 4000 })
	time.Sleep(500 * time.Millisecond)
	got := readCDC(t, b.js)
	require.Equal(t, seq(1, 4000), tradeIDs(t, requireExactlyOnceInOrder(t, got)["market.account_trades"]))
}

func TestSecondRelayStandsByAndTakesOver(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	first, stopFirst := b.startRelay(t, b.nc, nil)
	waitFor(t, 10*time.Second, "first streaming", func() bool { return first.State() == relay.StateStreaming })
	second, _ := b.startRelay(t, b.nats.Connect(t, relayNATSOptions()...), nil)
	waitFor(t, 10*time.Second, "second standing by", func() bool { return second.State() == relay.StateStandby })

	require.NoError(t, insertTrades(ctx, b.db.Pool, 1, 1000))
	waitFor(t, 20*time.Second, "first batch", func() bool { return cdcCount(t, b.js) >= 1000 })
	require.Equal(t, relay.StateStandby, second.State())

	stopFirst()
	waitFor(t, 10*time.Second, "second takes over", func() bool { return second.State() == relay.StateStreaming })
	require.NoError(t, insertTrades(ctx, b.db.Pool, 1001, 1000))
	waitFor(t, 20*time.Second, "second batch", func() bool { return cdcCount(t, b.js) >= 2000 })
	time.Sleep(300 * time.Millisecond)
	got := readCDC(t, b.js)
	require.Equal(t, seq(1, 2000), tradeIDs(t, requireExactlyOnceInOrder(t, got)["market.account_trades"]))
}

// TestRelayProcessKilledResumesWithoutGap runs the relay in a child process, SIGKILLs it in the
// middle of a stream of transactions, and lets a fresh relay finish: nothing may be missing.
func TestRelayProcessKilledResumesWithoutGap(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := newHelper(exe, b.db.URL, b.nats.URL, b.slot())
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// Changes committed before the slot exists are not relayed: wait for the child to stream.
	waitFor(t, 30*time.Second, "child streaming", func() bool {
		return pgtest.SlotStreaming(ctx, b.db.Pool, b.slot())
	})

	const txs, rows = 30, 200
	done := make(chan error, 1)
	go func() {
		for i := 0; i < txs; i++ {
			if err := insertTrades(ctx, b.db.Pool, i*rows+1, rows); err != nil {
				done <- err
				return
			}
			time.Sleep(15 * time.Millisecond)
		}
		done <- nil
	}()
	waitFor(t, 30*time.Second, "child relaying", func() bool { return cdcCount(t, b.js) >= 1000 })
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	killedAt := cdcCount(t, b.js)
	require.NoError(t, <-done)

	r, _ := b.startRelay(t, b.nc, nil)
	waitFor(t, 60*time.Second, "every event", func() bool { return cdcCount(t, b.js) >= txs*rows })
	time.Sleep(500 * time.Millisecond)
	got := readCDC(t, b.js)
	require.Equal(t, seq(1, txs*rows), tradeIDs(t, requireExactlyOnceInOrder(t, got)["market.account_trades"]))
	t.Logf("child killed with %d of %d events in the stream; successor state %s", killedAt, txs*rows, r.State())
}

func newHelper(exe, dbURL, natsURL, slot string) *exec.Cmd {
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "CP_RELAY_HELPER=1", "CP_RELAY_DB="+dbURL, "CP_RELAY_NATS="+natsURL, "CP_RELAY_SLOT="+slot)
	cmd.Stderr = os.Stderr
	return cmd
}

// helperRelayProcess is the child of TestRelayProcessKilledResumesWithoutGap: a relay that runs
// until it is killed.
func helperRelayProcess() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("CP_RELAY_DB"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	nc, err := nats.Connect(os.Getenv("CP_RELAY_NATS"), relayNATSOptions()...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	pub, err := bus.New(nc, bus.Config{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	status := 100 * time.Millisecond
	if v := os.Getenv("CP_RELAY_STATUS_INTERVAL"); v != "" {
		if status, err = time.ParseDuration(v); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
	}
	r, err := relay.New(relay.Config{ConnString: os.Getenv("CP_RELAY_DB"), Pool: pool, Publisher: pub, Tables: tables, Slot: os.Getenv("CP_RELAY_SLOT"),
		StatusInterval: status, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	_ = r.Run(ctx)
	os.Exit(0)
}
