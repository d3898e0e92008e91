package db_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/db"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
)

func TestUnavailableTellsAnOutageFromAFailedStatement(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := pgtest.NewDB(t)

	// Statements that fail on their own are not an outage.
	_, err := d.Pool.Exec(ctx, `SELEC 1`)
	require.Error(t, err)
	require.False(t, db.Unavailable(err), "syntax error")
	_, err = d.Pool.Exec(ctx, `SELECT 1/0`)
	require.False(t, db.Unavailable(err), "division by zero")
	require.False(t, db.Unavailable(nil))
	require.False(t, db.Unavailable(context.Canceled))
	require.False(t, db.Unavailable(errors.New("plain")))

	// A server that is not there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = pgx.Connect(cctx, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?connect_timeout=2", port))
	require.Error(t, err)
	require.True(t, db.Unavailable(err), "connection refused: %v", err)

	// A connection the server ends (as at a shutdown or a crash restart).
	conn, err := d.Pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	var pid int
	require.NoError(t, conn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid))
	_, err = d.Pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `SELECT 1`)
	require.Error(t, err)
	require.True(t, db.Unavailable(err), "terminated connection: %v", err)
}
