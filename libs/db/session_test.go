package db_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/db"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
)

func TestStampSession(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := pgtest.NewDB(t)

	id, err := db.StampSession(ctx, d.Pool, db.SessionStamp{
		Service: "straux",
		Version: "v1.2.3",
		Env:     "staging",
		Extra:   map[string]any{"replica": "a", "symbols": 5},
	})
	require.NoError(t, err)
	require.Positive(t, id)

	var (
		service, version, host, env, extra string
		pid                                int
		startedAt                          time.Time
	)
	require.NoError(t, d.Pool.QueryRow(ctx,
		`SELECT service, version, host, pid, env, started_at, extra::text FROM ops.session_log WHERE id = $1`, id).
		Scan(&service, &version, &host, &pid, &env, &startedAt, &extra))
	wantHost, err := os.Hostname()
	require.NoError(t, err)
	require.Equal(t, "straux", service)
	require.Equal(t, "v1.2.3", version)
	require.Equal(t, wantHost, host)
	require.Equal(t, os.Getpid(), pid)
	require.Equal(t, "staging", env)
	require.WithinDuration(t, time.Now(), startedAt, time.Minute)
	require.JSONEq(t, `{"replica": "a", "symbols": 5}`, extra)

	// Every start is its own row; Extra and Version have defaults.
	next, err := db.StampSession(ctx, d.Pool, db.SessionStamp{Service: "straux", Env: "dev"})
	require.NoError(t, err)
	require.Greater(t, next, id)
	require.NoError(t, d.Pool.QueryRow(ctx, `SELECT version, extra::text FROM ops.session_log WHERE id = $1`, next).Scan(&version, &extra))
	require.Equal(t, "dev", version)
	require.JSONEq(t, `{}`, extra)

	_, err = db.StampSession(ctx, d.Pool, db.SessionStamp{})
	require.Error(t, err, "a stamp needs its service")
}

func TestTouchAndStopSession(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := pgtest.NewDB(t)
	id, err := db.StampSession(ctx, d.Pool, db.SessionStamp{Service: "seeder", Env: "dev"})
	require.NoError(t, err)

	read := func() (seen, stopped *time.Time, every *time.Duration) {
		t.Helper()
		require.NoError(t, d.Pool.QueryRow(ctx,
			`SELECT last_seen_at, stopped_at, heartbeat_every FROM ops.session_log WHERE id = $1`, id).Scan(&seen, &stopped, &every))
		return
	}
	seen, stopped, every := read()
	require.Nil(t, seen, "no heartbeat yet")
	require.Nil(t, stopped)
	require.Nil(t, every)

	require.NoError(t, db.TouchSession(ctx, d.Pool, id, 15*time.Second))
	seen, stopped, every = read()
	require.NotNil(t, seen)
	require.Nil(t, stopped)
	require.Equal(t, 15*time.Second, *every)

	require.NoError(t, db.StopSession(ctx, d.Pool, id))
	_, stopped, _ = read()
	require.NotNil(t, stopped)
	first := *stopped

	// A late heartbeat does not revive a stopped session, and the first stop is kept.
	require.NoError(t, db.TouchSession(ctx, d.Pool, id, time.Second))
	require.NoError(t, db.StopSession(ctx, d.Pool, id))
	_, stopped, every = read()
	require.Equal(t, first, *stopped)
	require.Equal(t, 15*time.Second, *every)
}
