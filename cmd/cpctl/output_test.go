package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func fixedEnv(vars map[string]string) cmdEnv {
	return cmdEnv{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, lookupEnv: func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}}
}

func TestConnFlagsResolveOrder(t *testing.T) {
	t.Parallel()
	devEnv := filepath.Join(t.TempDir(), "dev.env")
	require.NoError(t, os.WriteFile(devEnv, []byte("# written by cpctl dev\nDATABASE_URL=postgres://dev@127.0.0.1:55432/cp\nNATS_URL=nats://127.0.0.1:4333\n"), 0o644))

	// The dev env file fills in what the environment does not set.
	env := fixedEnv(map[string]string{"CP_DEV_ENV": devEnv})
	var c connFlags
	u, err := c.database(env)
	require.NoError(t, err)
	require.Equal(t, "postgres://dev@127.0.0.1:55432/cp", u)
	n, err := c.nats(env)
	require.NoError(t, err)
	require.Equal(t, "nats://127.0.0.1:4333", n)

	// The environment wins over the file, the flag over both.
	env = fixedEnv(map[string]string{"CP_DEV_ENV": devEnv, "DATABASE_URL": "postgres://env/cp", "NATS_URL": "nats://env:4222"})
	u, _ = c.database(env)
	require.Equal(t, "postgres://env/cp", u)
	n, _ = c.nats(env)
	require.Equal(t, "nats://env:4222", n)
	c = connFlags{dbURL: "postgres://flag/cp", natsURL: "nats://flag:4222"}
	u, _ = c.database(env)
	require.Equal(t, "postgres://flag/cp", u)
	n, _ = c.nats(env)
	require.Equal(t, "nats://flag:4222", n)

	// Nothing anywhere: a usage error naming every source; NATS has the services' default.
	env = fixedEnv(map[string]string{"CP_DEV_ENV": filepath.Join(t.TempDir(), "absent.env")})
	c = connFlags{}
	_, err = c.database(env)
	require.True(t, isUsageError(err))
	require.ErrorContains(t, err, "DATABASE_URL_FILE")
	require.ErrorContains(t, err, devEnvFile)
	n, err = c.nats(env)
	require.NoError(t, err)
	require.Equal(t, "nats://127.0.0.1:4222", n)

	// A malformed file is named.
	bad := filepath.Join(t.TempDir(), "bad.env")
	require.NoError(t, os.WriteFile(bad, []byte("DATABASE_URL\n"), 0o644))
	_, err = c.database(fixedEnv(map[string]string{"CP_DEV_ENV": bad}))
	require.ErrorContains(t, err, bad)
}

func TestConnStatus(t *testing.T) {
	t.Parallel()
	env := fixedEnv(nil)
	require.Equal(t, exitHealthy, connStatus(env, "x", nil))
	require.Equal(t, exitUsage, connStatus(env, "x", usageErrorf("bad flag")))
	require.Equal(t, exitUsage, connStatus(env, "x", connErrorf("connect nats %s: %w", "nats://h", errors.New("refused"))))
	require.Equal(t, exitUnhealthy, connStatus(env, "x", errors.New("query failed")))
	require.Contains(t, env.stderr.(*bytes.Buffer).String(), "cpctl x: connect nats nats://h: refused")
	require.Equal(t, exitUnhealthy, exitFor(false))
}
