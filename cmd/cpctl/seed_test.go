package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/testkit/pgtest"
)

func TestSeedTwice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := pgtest.NewDB(t)

	first := newTestEnv(map[string]string{"DATABASE_URL": d.URL})
	require.Equal(t, 0, seedCommand(ctx, nil, first.cmdEnv), first.stderr.String())
	require.Contains(t, first.stdout.String(), "coin universe: 5 inserted (BTCUSDT, ETHUSDT, BNBUSDT, SOLUSDT, ADAUSDT), 0 already present")
	require.Contains(t, first.stdout.String(), "windows: 30m, 1h, 4h")

	second := newTestEnv(nil)
	require.Equal(t, 0, seedCommand(ctx, []string{"--database-url", d.URL}, second.cmdEnv), second.stderr.String())
	require.Contains(t, second.stdout.String(), "coin universe: 0 inserted, 5 already present")

	var n int
	require.NoError(t, d.Pool.QueryRow(ctx, `SELECT count(*) FROM settings.coin_universe`).Scan(&n))
	require.Equal(t, 5, n)
}

func TestSeedNeedsDatabaseURL(t *testing.T) {
	t.Parallel()
	env := newTestEnv(nil)
	require.Equal(t, 2, seedCommand(context.Background(), nil, env.cmdEnv))
	require.Contains(t, env.stderr.String(), "DATABASE_URL")
}
