package relay_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/testkit/metrictest"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
	"cryptopill.dev/jobs/services/orchestrator/internal/bus"
	"cryptopill.dev/jobs/services/orchestrator/internal/relay"
)

// consumed is what a real events.Consumer of CP_CDC (cinimport's durable) handed its handler.
type consumed struct {
	mu       sync.Mutex
	sessions []*eventsv1.RowChange
	trades   int
}

func (c *consumed) counts() (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sessions), c.trades
}

// A row change of any size reaches the consumers: over the claim-check threshold (up to far
// over NATS' max_payload) the payload goes to the claim bucket and the event carries the
// reference, which events.Consumer resolves; the changes after it keep flowing.
func TestOversizedRowsReachTheConsumer(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	const threshold = 256 << 10
	claims, err := events.NewClaimCheck(ctx, b.js, events.ClaimConfig{Create: true, Threshold: threshold})
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	r, _ := b.startRelay(t, b.nc, func(c *relay.Config) {
		pub, err := bus.New(b.nc, bus.Config{MaxInFlight: 1024, AckTimeout: 2 * time.Second, Claims: claims})
		require.NoError(t, err)
		t.Cleanup(func() { _ = pub.Close(context.Background()) })
		c.Publisher = pub
		c.Registerer = reg
	})
	waitFor(t, 10*time.Second, "streaming", func() bool { return r.State() == relay.StateStreaming })

	got := &consumed{}
	cctx, stop := context.WithCancel(ctx)
	cons, err := events.NewConsumer(cctx, b.js, events.ConsumerConfig{
		Stream: events.StreamCDC, Durable: events.ConsumerCinimportChanges, Logger: testLogger(t),
		Handler: func(_ context.Context, ev events.Event) error {
			rc := ev.Payload.(*eventsv1.RowChange)
			got.mu.Lock()
			defer got.mu.Unlock()
			if rc.Table == "rt_session" {
				got.sessions = append(got.sessions, rc)
			} else {
				got.trades++
			}
			return nil
		},
	})
	require.NoError(t, err)
	consDone := make(chan error, 1)
	go func() { consDone <- cons.Run(cctx) }()
	t.Cleanup(func() { stop(); <-consDone })

	exec := func(q string, args ...any) {
		t.Helper()
		_, err := b.db.Pool.Exec(ctx, q, args...)
		require.NoError(t, err, q)
	}
	label := func(n int, c string) string { return strings.Repeat(c, n) }
	exec(`INSERT INTO cin_aux.rt_session (label) VALUES ($1)`, label(2<<20, "a"))          // 2 MB: twice max_payload
	exec(`INSERT INTO cin_aux.rt_session (label) VALUES ($1)`, label(threshold-2000, "b")) // just under the threshold
	exec(`INSERT INTO cin_aux.rt_session (label) VALUES ($1)`, label(threshold+1, "c"))    // just over it
	// An update under REPLICA IDENTITY FULL carries the old row whole: 600 KB of old label.
	exec(`INSERT INTO cin_aux.rt_session (label) VALUES ($1)`, label(600<<10, "d"))
	exec(`UPDATE cin_aux.rt_session SET status = 'CLOSED', closed_at = now() WHERE label LIKE 'd%'`)
	require.NoError(t, insertTrades(ctx, b.db.Pool, 1, 500))
	exec(`INSERT INTO cin_aux.rt_session (label) VALUES ('after')`)

	waitFor(t, 2*time.Minute, "every change consumed", func() bool {
		s, tr := got.counts()
		return s >= 6 && tr >= 500
	})
	got.mu.Lock()
	sessions := got.sessions
	got.mu.Unlock()
	require.Len(t, sessions, 6)
	require.Equal(t, label(2<<20, "a"), sessions[0].NewValues["label"].GetText())
	require.Equal(t, label(threshold-2000, "b"), sessions[1].NewValues["label"].GetText())
	require.Equal(t, label(threshold+1, "c"), sessions[2].NewValues["label"].GetText())
	require.Equal(t, label(600<<10, "d"), sessions[3].NewValues["label"].GetText())
	require.Equal(t, eventsv1.RowChange_OP_UPDATE, sessions[4].Op)
	require.Equal(t, label(600<<10, "d"), sessions[4].OldValues["label"].GetText())
	require.Equal(t, "after", sessions[5].NewValues["label"].GetText())

	// In the stream: references for the events over the threshold, the payload for the others.
	msgs := rawCDC(t, b)
	var claimed []bool
	for _, m := range msgs {
		if strings.HasPrefix(m.Subject, "cp.cdc.cin_aux.rt_session.") {
			claimed = append(claimed, m.Header.Get(events.HeaderClaim) != "")
			require.Less(t, len(m.Data)+len(m.Header), threshold)
		}
	}
	require.Equal(t, []bool{true, false, true, true, true, false}, claimed)
	require.Zero(t, metrictest.Value(t, reg, "cp_relay_publish_failures_total"))
	require.Equal(t, uint64(4), claims.Stats().Offloaded)
}

// Without a claim-check an event over max_payload cannot be published: the relay must say so
// (blocked, counted, logged) and keep the change, not skip it or retry silently.
func TestUnpublishableEventBlocksVisibly(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	r, _ := b.startRelay(t, b.nc, func(c *relay.Config) { c.Registerer = reg; c.BlockedAfter = 2 })
	waitFor(t, 10*time.Second, "streaming", func() bool { return r.State() == relay.StateStreaming })
	_, err := b.db.Pool.Exec(ctx, `INSERT INTO cin_aux.rt_session (label) VALUES (repeat('z', 2000000))`)
	require.NoError(t, err)
	waitFor(t, 30*time.Second, "blocked", func() bool { return r.State() == relay.StateBlocked })
	require.Equal(t, 1.0, metrictest.Value(t, reg, "cp_relay_publish_blocked"))
	require.GreaterOrEqual(t, metrictest.Value(t, reg, "cp_relay_publish_failures_total"), 2.0)
	require.Zero(t, cdcCount(t, b.js))
	var confirmed, commit string
	require.NoError(t, b.db.Pool.QueryRow(ctx, `SELECT confirmed_flush_lsn::text, pg_current_wal_lsn()::text FROM pg_replication_slots WHERE slot_name = $1`, b.slot()).Scan(&confirmed, &commit))
	require.NotEqual(t, commit, confirmed, "the slot keeps the change: it is not skipped")
}

// rawCDC returns CP_CDC's messages as stored (claims unresolved).
func rawCDC(t *testing.T, b *bundle) []*nats.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := b.js.Stream(ctx, events.StreamCDC)
	require.NoError(t, err)
	var out []*nats.Msg
	for seq := uint64(1); seq <= s.CachedInfo().State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		require.NoError(t, err, "seq "+strconv.FormatUint(seq, 10))
		out = append(out, &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
	}
	return out
}
