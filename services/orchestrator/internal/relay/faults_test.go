package relay_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/testkit/metrictest"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
	"cryptopill.dev/jobs/services/orchestrator/internal/bus"
	"cryptopill.dev/jobs/services/orchestrator/internal/relay"
)

func updateCDC(t *testing.T, js jetstream.JetStream, mod func(*jetstream.StreamConfig)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, events.StreamCDC)
	require.NoError(t, err)
	cfg := s.CachedInfo().Config
	mod(&cfg)
	_, err = js.UpdateStream(ctx, cfg)
	require.NoError(t, err)
}

func slotConfirmed(t *testing.T, b *bundle) uint64 {
	t.Helper()
	var s string
	require.NoError(t, b.db.Pool.QueryRow(context.Background(), `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, b.slot()).Scan(&s))
	lsn, err := pglogrepl.ParseLSN(s)
	require.NoError(t, err)
	return uint64(lsn)
}

// One event in the middle of a stream is rejected by the server (the stream's max message size,
// a fault only a stream change removes) while the events after it are already in flight: every
// table's events must still be stored in commit order with none missing, the relay must report
// itself blocked rather than retry silently, must confirm what was stored before the failure,
// and must go on once the cause is removed.
func TestRejectedPublishMidStreamKeepsEveryTableInOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	updateCDC(t, b.js, func(c *jetstream.StreamConfig) { c.MaxMsgSize = 4096 })
	reg := prometheus.NewRegistry()
	r, _ := b.startRelay(t, b.nc, func(c *relay.Config) {
		c.Registerer = reg
		c.BlockedAfter = 2
		// Status only when a session ends: the confirmed position below comes from that.
		c.StatusInterval = 20 * time.Second
	})
	waitFor(t, 10*time.Second, "streaming", func() bool { return r.State() == relay.StateStreaming })

	session := func(label string) {
		t.Helper()
		_, err := b.db.Pool.Exec(ctx, `INSERT INTO cin_aux.rt_session (label) VALUES ($1)`, label)
		require.NoError(t, err)
	}
	require.NoError(t, insertTrades(ctx, b.db.Pool, 1, 100))
	session("s1")
	session(strings.Repeat("x", 8000)) // over CP_CDC's 4096 bytes: rejected in every session
	session("s3")
	require.NoError(t, insertTrades(ctx, b.db.Pool, 101, 100))
	session("s4")

	waitFor(t, 30*time.Second, "the relay to report itself blocked", func() bool { return r.State() == relay.StateBlocked })
	require.Equal(t, 1.0, metrictest.Value(t, reg, "cp_relay_publish_blocked"))
	require.GreaterOrEqual(t, metrictest.Value(t, reg, "cp_relay_publish_failures_total"), 2.0)
	require.GreaterOrEqual(t, metrictest.Value(t, reg, "cp_relay_sessions_ended_total", "reason", "publish"), 2.0)

	// What was stored before the rejected event is confirmed, although no periodic status went out.
	stored := readCDC(t, b.js)
	var s1LSN uint64
	for _, m := range stored {
		if m.change.Table == "rt_session" && m.change.NewValues["label"].GetText() == "s1" {
			s1LSN = m.change.CommitLsn
		}
	}
	require.NotZero(t, s1LSN, "s1 is stored")
	require.Greater(t, slotConfirmed(t, b), s1LSN, "the failed session confirmed the transactions before the rejected one")

	// Remove the cause: the relay goes on and nothing is out of order, missing or doubled.
	updateCDC(t, b.js, func(c *jetstream.StreamConfig) { c.MaxMsgSize = -1 })
	const want = 200 + 4
	waitFor(t, 30*time.Second, "every event", func() bool { return cdcCount(t, b.js) >= want })
	waitFor(t, 10*time.Second, "unblocked", func() bool { return r.State() == relay.StateStreaming })
	require.Zero(t, metrictest.Value(t, reg, "cp_relay_publish_blocked"))
	got := readCDC(t, b.js)
	require.Len(t, got, want)
	byTable := requireExactlyOnceInOrder(t, got)
	require.Equal(t, seq(1, 200), tradeIDs(t, byTable["market.account_trades"]))
	var labels []string
	for _, c := range byTable["cin_aux.rt_session"] {
		labels = append(labels, c.NewValues["label"].GetText()[:2])
	}
	require.Equal(t, []string{"s1", "xx", "s3", "s4"}, labels)
}

// A relay killed with events stored but not yet confirmed to the slot replays them from the slot.
// When it comes back after CP_CDC's duplicate window has passed, JetStream no longer drops the
// replay: the relay itself must skip what the stream already holds.
func TestReplayAfterTheDuplicateWindowStoresEachChangeOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	const window = time.Second
	updateCDC(t, b.js, func(c *jetstream.StreamConfig) { c.Duplicates = window })
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := newHelper(exe, b.db.URL, b.nats.URL, b.slot())
	cmd.Env = append(cmd.Env, "CP_RELAY_STATUS_INTERVAL=20s") // nothing confirmed before the kill
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitFor(t, 30*time.Second, "child streaming", func() bool {
		return pgtest.SlotStreaming(ctx, b.db.Pool, b.slot())
	})
	before := slotConfirmed(t, b)
	for i := 0; i < 5; i++ {
		require.NoError(t, insertTrades(ctx, b.db.Pool, i*100+1, 100))
	}
	_, err = b.db.Pool.Exec(ctx, `INSERT INTO cin_aux.rt_session (label) VALUES ('before the outage')`)
	require.NoError(t, err)
	waitFor(t, 30*time.Second, "the child to relay everything", func() bool { return cdcCount(t, b.js) >= 501 })
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	require.Equal(t, before, slotConfirmed(t, b), "the killed relay confirmed nothing: its successor replays it all")

	// The outage outlasts the duplicate window (server time: nothing to await but time itself).
	time.Sleep(window + 500*time.Millisecond)
	reg := prometheus.NewRegistry()
	r, _ := b.startRelay(t, b.nc, func(c *relay.Config) { c.Registerer = reg })
	require.NoError(t, insertTrades(ctx, b.db.Pool, 501, 100))
	waitFor(t, 30*time.Second, "the trades after the outage", func() bool { return cdcCount(t, b.js) >= 601 })
	waitFor(t, 15*time.Second, "the slot to confirm everything", func() bool {
		var lag int64
		err := b.db.Pool.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $1`, b.slot()).Scan(&lag)
		return err == nil && lag == 0
	})
	got := readCDC(t, b.js)
	byTable := requireExactlyOnceInOrder(t, got)
	require.Equal(t, 501.0, metrictest.Value(t, reg, "cp_relay_events_skipped_total"))
	require.Equal(t, seq(1, 600), tradeIDs(t, byTable["market.account_trades"]))
	require.Len(t, byTable["cin_aux.rt_session"], 1)
	require.Equal(t, relay.StateStreaming, r.State())
}

// A standby relay retries every StandbyRetry; it must not rewrite the publication (here it is
// configured with fewer tables, as a second orchestrator with a stale CDC_TABLES would be).
func TestStandbyLeavesThePublicationAlone(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	first, _ := b.startRelay(t, b.nc, nil)
	waitFor(t, 10*time.Second, "first streaming", func() bool { return first.State() == relay.StateStreaming })
	reg := prometheus.NewRegistry()
	second, _ := b.startRelay(t, b.nats.Connect(t, relayNATSOptions()...), func(c *relay.Config) {
		c.Tables = []string{"market.account_trades"}
		c.Registerer = reg
		c.StandbyRetry = 50 * time.Millisecond
	})
	waitFor(t, 10*time.Second, "several standby retries", func() bool {
		return metrictest.Value(t, reg, "cp_relay_sessions_ended_total", "reason", "slot_in_use") >= 5
	})
	require.Equal(t, relay.StateStandby, second.State())
	rows, err := b.db.Pool.Query(ctx, `SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = 'cp_cdc' ORDER BY 1`)
	require.NoError(t, err)
	var have []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		have = append(have, s)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"cin_aux.rt_session", "market.account_trades", "settings.coin_universe"}, have)
}

// boundedPublisher records the most bytes (payload + overhead, as the relay counts them) ever
// awaiting their PubAck at once.
type boundedPublisher struct {
	relay.Publisher
	mu        sync.Mutex
	now, peak int64
	largest   int
}

func (p *boundedPublisher) PublishAsync(ctx context.Context, c *relay.Change, done func(error)) error {
	n := int64(len(c.Data)) + 512
	p.mu.Lock()
	p.now += n
	p.peak = max(p.peak, p.now)
	p.largest = max(p.largest, len(c.Data))
	p.mu.Unlock()
	err := p.Publisher.PublishAsync(ctx, c, func(err error) {
		p.mu.Lock()
		p.now -= n
		p.mu.Unlock()
		done(err)
	})
	if err != nil {
		p.mu.Lock()
		p.now -= n
		p.mu.Unlock()
	}
	return err
}

// In-flight is bounded in bytes as well as in count; an event larger than the bound still goes.
func TestInFlightIsBoundedInBytes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	const bound = 64 << 10
	var bp *boundedPublisher
	r, _ := b.startRelay(t, b.nc, func(c *relay.Config) {
		bp = &boundedPublisher{Publisher: c.Publisher}
		c.Publisher = bp
		c.MaxInFlightBytes = bound
	})
	waitFor(t, 10*time.Second, "streaming", func() bool { return r.State() == relay.StateStreaming })
	// 100 sessions of 20 KB labels in one transaction, then one of 100 KB (over the bound).
	_, err := b.db.Pool.Exec(ctx, `INSERT INTO cin_aux.rt_session (label) SELECT repeat(md5(g::text), 640) FROM generate_series(1, 100) g`)
	require.NoError(t, err)
	_, err = b.db.Pool.Exec(ctx, `INSERT INTO cin_aux.rt_session (label) VALUES (repeat('y', 100000))`)
	require.NoError(t, err)
	waitFor(t, 30*time.Second, "every event", func() bool { return cdcCount(t, b.js) >= 101 })
	bp.mu.Lock()
	peak, largest := bp.peak, bp.largest
	bp.mu.Unlock()
	require.Greater(t, largest, bound, "the large event went")
	require.LessOrEqual(t, peak, int64(max(bound, largest+512)), "peak in flight %d bytes", peak)
	require.Len(t, requireExactlyOnceInOrder(t, readCDC(t, b.js))["cin_aux.rt_session"], 101)
	t.Logf("peak in flight %d bytes (bound %d)", peak, bound)
}

// A stream that holds changes from beyond this database's WAL (the database was restored into a
// new cluster, whose WAL starts over) must not make the relay skip real changes.
func TestStoredChangesFromAnotherHistoryAreNotSkipped(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	msg := nats.NewMsg("cp.cdc.market.account_trades.insert")
	msg.Header.Set(bus.HeaderCommitLSN, "4611686018427387904")
	msg.Header.Set(bus.HeaderIndexInTx, "0")
	msg.Data = []byte(`{}`)
	_, err := b.js.PublishMsg(ctx, msg)
	require.NoError(t, err)
	r, _ := b.startRelay(t, b.nc, nil)
	waitFor(t, 10*time.Second, "streaming", func() bool { return r.State() == relay.StateStreaming })
	require.NoError(t, insertTrades(ctx, b.db.Pool, 1, 50))
	waitFor(t, 20*time.Second, "the trades", func() bool { return cdcCount(t, b.js) >= 51 })
}

// Something other than the relay publishes on CP_CDC (a junk message, on a relayed table's
// subject, in the middle of the stream): the relay's sequence moves under it, and the junk is
// the table's last message at its next session start. Neither may wedge it or reorder anything.
func TestForeignMessageOnTheStreamDoesNotWedgeTheRelay(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	r, _ := b.startRelay(t, b.nc, func(c *relay.Config) { c.Registerer = reg })
	waitFor(t, 10*time.Second, "streaming", func() bool { return r.State() == relay.StateStreaming })
	require.NoError(t, insertTrades(ctx, b.db.Pool, 1, 100))
	waitFor(t, 20*time.Second, "first trades", func() bool { return cdcCount(t, b.js) >= 100 })
	_, err := b.js.Publish(ctx, "cp.cdc.market.account_trades.insert", []byte("not a row change"))
	require.NoError(t, err)
	require.NoError(t, insertTrades(ctx, b.db.Pool, 101, 100))
	waitFor(t, 30*time.Second, "every trade", func() bool { return cdcCount(t, b.js) >= 201 })
	// A new session starts with the junk as the table's last message.
	require.True(t, terminateRelayBackend(t, b.db.Pool, b.slot()))
	waitFor(t, 20*time.Second, "a second session", func() bool {
		return metrictest.Value(t, reg, "cp_relay_sessions_ended_total", "reason", "postgres") >= 1 && r.State() == relay.StateStreaming
	})
	require.NoError(t, insertTrades(ctx, b.db.Pool, 201, 100))
	waitFor(t, 30*time.Second, "the trades after it", func() bool { return cdcCount(t, b.js) >= 301 })

	var ids []int
	for _, m := range rawCDC(t, b) {
		if string(m.Data) == "not a row change" {
			continue
		}
		_, ev, err := events.Decode(ctx, m)
		require.NoError(t, err)
		id, err := strconv.Atoi(ev.Payload.(*eventsv1.RowChange).NewValues["trade_id"].GetText())
		require.NoError(t, err)
		ids = append(ids, id)
	}
	require.Equal(t, seq(1, 300), ids)
}

// foreignCopyPublisher stores, once, a copy of CP_CDC's first event under a new Nats-Msg-Id (as
// an operator replaying a change into the stream would: every other header kept) right before
// the relay's event number at, once every event before it is stored.
type foreignCopyPublisher struct {
	relay.Publisher
	t     *testing.T
	b     *bundle
	at    int
	calls int
	mu    sync.Mutex
	seq   uint64 // the copy's stream sequence
}

func (p *foreignCopyPublisher) PublishAsync(ctx context.Context, c *relay.Change, done func(error)) error {
	p.mu.Lock()
	p.calls++
	now := p.calls == p.at
	p.mu.Unlock()
	if now {
		waitFor(p.t, 10*time.Second, "the events before the copy", func() bool { return cdcCount(p.t, p.b.js) >= uint64(p.at-1) })
		s, err := p.b.js.Stream(ctx, events.StreamCDC)
		require.NoError(p.t, err)
		first, err := s.GetMsg(ctx, 1)
		require.NoError(p.t, err)
		msg := &nats.Msg{Subject: first.Subject, Header: first.Header, Data: first.Data}
		msg.Header.Set(events.HeaderMsgID, "replayed-by-hand")
		ack, err := p.b.js.PublishMsg(ctx, msg)
		require.NoError(p.t, err)
		p.mu.Lock()
		p.seq = ack.Sequence
		p.mu.Unlock()
	}
	return p.Publisher.PublishAsync(ctx, c, done)
}

// A copy of a stored change lands in CP_CDC in the middle of a transaction the relay is
// publishing: the relay's next event is refused (its predecessor is no longer the stream's last
// message) and the session ends with part of the transaction stored. The next session replays
// the transaction: what is already stored must not be published again, since the server would
// acknowledge it as a duplicate without making it the last message, and every event chained after
// it would be refused, session after session, until the duplicate window passed.
func TestCopyOfAStoredChangeMidTransactionDoesNotWedgeTheRelay(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	var fp *foreignCopyPublisher
	r, _ := b.startRelay(t, b.nc, func(c *relay.Config) {
		c.Registerer = reg
		fp = &foreignCopyPublisher{Publisher: c.Publisher, t: t, b: b, at: 50}
		c.Publisher = fp
	})
	waitFor(t, 10*time.Second, "streaming", func() bool { return r.State() == relay.StateStreaming })
	require.NoError(t, insertTrades(ctx, b.db.Pool, 1, 100))
	waitFor(t, 20*time.Second, "every trade", func() bool { return cdcCount(t, b.js) >= 101 })
	require.NoError(t, insertTrades(ctx, b.db.Pool, 101, 10))
	waitFor(t, 20*time.Second, "the trades after it", func() bool { return cdcCount(t, b.js) >= 111 })

	var relayed []received
	fp.mu.Lock()
	copySeq := fp.seq
	fp.mu.Unlock()
	require.NotZero(t, copySeq)
	for _, m := range readCDC(t, b.js) {
		if m.seq != copySeq {
			relayed = append(relayed, m)
		}
	}
	require.Equal(t, seq(1, 110), tradeIDs(t, requireExactlyOnceInOrder(t, relayed)["market.account_trades"]))
	require.GreaterOrEqual(t, metrictest.Value(t, reg, "cp_relay_sessions_ended_total", "reason", "publish"), 1.0)
	require.Equal(t, 49.0, metrictest.Value(t, reg, "cp_relay_events_skipped_total"), "the stored part of the transaction is skipped, not published again")
	require.Equal(t, relay.StateStreaming, r.State())
}

// A message on CP_CDC that names a position but is not the relay's change there (its id is not
// that change's id) says nothing of what the relay stored: changes it claims to cover are
// published all the same.
func TestMessageNamingAPositionItDoesNotHoldSkipsNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	r, stop := b.startRelay(t, b.nc, nil)
	waitFor(t, 10*time.Second, "streaming", func() bool { return r.State() == relay.StateStreaming })
	stop()
	require.NoError(t, insertTrades(ctx, b.db.Pool, 1, 100)) // while no relay runs
	// A position past the trades' commit (the next WAL segment's start) and within this WAL.
	var wal string
	_, err := b.db.Pool.Exec(ctx, `SELECT pg_switch_wal()`)
	require.NoError(t, err)
	require.NoError(t, b.db.Pool.QueryRow(ctx, `SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint::text`).Scan(&wal))
	msg := nats.NewMsg("cp.cdc.cin_aux.rt_session.insert")
	msg.Header.Set(bus.HeaderCommitLSN, wal)
	msg.Header.Set(bus.HeaderIndexInTx, "1000")
	msg.Header.Set(events.HeaderMsgID, "not-the-relays")
	msg.Data = []byte(`{}`)
	_, err = b.js.PublishMsg(ctx, msg)
	require.NoError(t, err)

	reg := prometheus.NewRegistry()
	r, _ = b.startRelay(t, b.nc, func(c *relay.Config) { c.Registerer = reg })
	waitFor(t, 20*time.Second, "the trades", func() bool { return cdcCount(t, b.js) >= 101 })
	require.Zero(t, metrictest.Value(t, reg, "cp_relay_events_skipped_total"))
	require.Equal(t, relay.StateStreaming, r.State())
}

// After a restore the database's WAL starts over below what CP_CDC holds of its old history, and
// an idle table's last change (here the universe's) can stay an old one. Once the new WAL passes
// it, it must not make the relay skip newer tables' changes that are not stored: the latest
// stored change is the newest in the stream, not the one naming the highest position.
func TestOldHistoryOnAnIdleTableSkipsNothingNewer(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	lsn := func() uint64 {
		var v uint64
		require.NoError(t, b.db.Pool.QueryRow(ctx, `SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint`).Scan(&v))
		return v
	}
	// The old history's last universe change, a WAL segment ahead of the new WAL.
	old := lsn() + 16<<20
	msg := nats.NewMsg("cp.cdc.settings.coin_universe.update")
	msg.Header.Set(bus.HeaderCommitLSN, strconv.FormatUint(old, 10))
	msg.Header.Set(bus.HeaderIndexInTx, "0")
	msg.Header.Set(events.HeaderMsgID, events.ChangeID(old, 0))
	msg.Data = []byte(`{}`)
	_, err := b.js.PublishMsg(ctx, msg)
	require.NoError(t, err)

	r, stop := b.startRelay(t, b.nc, nil)
	waitFor(t, 10*time.Second, "streaming", func() bool { return r.State() == relay.StateStreaming })
	require.NoError(t, insertTrades(ctx, b.db.Pool, 1, 10))
	waitFor(t, 20*time.Second, "the first trades", func() bool { return cdcCount(t, b.js) >= 11 })
	stop()
	require.NoError(t, insertTrades(ctx, b.db.Pool, 11, 10)) // while no relay runs
	for lsn() <= old {
		_, err := b.db.Pool.Exec(ctx, `SELECT pg_logical_emit_message(false, 'test', 'x'), pg_switch_wal()`)
		require.NoError(t, err)
	}

	reg := prometheus.NewRegistry()
	r, _ = b.startRelay(t, b.nc, func(c *relay.Config) { c.Registerer = reg })
	waitFor(t, 20*time.Second, "the trades made while no relay ran", func() bool { return cdcCount(t, b.js) >= 21 })
	require.Equal(t, relay.StateStreaming, r.State())
}
