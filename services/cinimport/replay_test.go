package main

import (
	"context"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/redeliver"
	"cryptopill.dev/jobs/libs/testkit/clocktest"
	"cryptopill.dev/jobs/libs/testkit/proctest"
)

// tableDigests digests every row of the tables cinimport reads and writes, so "no row changed"
// is checked, not only counted.
func tableDigests(t *testing.T, pool *pgxpool.Pool) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	for _, tb := range []string{"cin_aux.rt_move", "cin_aux.rt_session", "cin_aux.session_import_cursor",
		"cin_aux.session_pending_market", "market.account_trades"} {
		var n int
		var digest string
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM `+tb+` t`).
			Scan(&n, &digest))
		out[tb] = digest
		out[tb+" rows"] = strconv.Itoa(n)
	}
	return out
}

// Replaying every row change to cinimport's handler (the session opening, the trade inserts)
// changes no row: the imports it re-runs find every move imported. The durable is untouched.
func TestReplayOfRowChangesChangesNoRow(t *testing.T) {
	t.Parallel()
	s := setup(t, "CDC_SLOT=cp_relay_replay_test")
	start := clocktest.Afternoon // a fixed past instant: the session and its trades, whatever the hour
	session := s.openSession(t, "default", start)
	s.insertTrades(t, "default", 1, 50, start.Add(time.Minute))
	s.insertTrades(t, "default", 100, 20, start.Add(2*time.Minute))
	require.True(t, proctest.Wait(s.ctx, 60*time.Second, func() bool { return s.moves(t, session) == 70 }))
	durable := func() *jetstream.ConsumerInfo {
		c, err := s.bus.JS.Consumer(s.ctx, events.StreamCDC, events.ConsumerCinimportChanges)
		require.NoError(t, err)
		info, err := c.Info(s.ctx)
		require.NoError(t, err)
		return info
	}
	// Every trade insert relayed and every change handled: handlers return once the import they
	// wait on is done, so nothing pending or unacked means no import is running.
	cdc, err := s.bus.JS.Stream(s.ctx, events.StreamCDC)
	require.NoError(t, err)
	handled := proctest.Wait(s.ctx, 120*time.Second, func() bool {
		// Only the durable's subjects: the relay also publishes changes nobody here reads.
		info, err := cdc.Info(s.ctx, jetstream.WithSubjectFilter("cp.cdc.market.account_trades.insert"))
		require.NoError(t, err)
		d := durable()
		return info.State.Subjects["cp.cdc.market.account_trades.insert"] == 70 && d.NumPending == 0 && d.NumAckPending == 0
	})
	if !handled {
		info, _ := cdc.Info(s.ctx, jetstream.WithSubjectFilter("cp.cdc.>"))
		d := durable()
		t.Fatalf("the relay published the changes and cinimport handled them: subjects %v, durable pending %d ack pending %d",
			info.State.Subjects, d.NumPending, d.NumAckPending)
	}
	before, infoBefore := tableDigests(t, s.db.Pool), durable()

	cl, err := redeliver.New(redeliver.Config{NC: s.bus.Conn, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	rep, err := cl.Replay(s.ctx, redeliver.ReplayOptions{Stream: events.StreamCDC, Service: events.ServiceCinimport, StartSeq: 1}, nil, nil)
	require.NoError(t, err)
	require.Equal(t, events.ConsumerCinimportChanges, rep.Durable)
	require.GreaterOrEqual(t, rep.Messages, 71, "%+v", rep)
	require.Equal(t, rep.Messages, rep.OK, "%+v", rep)
	require.Equal(t, before, tableDigests(t, s.db.Pool), "replayed row changes change no row")

	infoAfter := durable()
	require.Equal(t, infoBefore.Config, infoAfter.Config)
	require.Equal(t, infoBefore.Delivered, infoAfter.Delivered)
	require.Equal(t, infoBefore.AckFloor, infoAfter.AckFloor)
}
