package config_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/config"
)

func env(kv map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := kv[k]; return v, ok }
}

func TestProfilesAndOverrides(t *testing.T) {
	t.Parallel()
	l := config.NewLoader(env(map[string]string{"CP_ENV": "prod", "STR_AUX_RUNNER_INTERVAL_MS": "7000"}))
	require.Equal(t, config.EnvProd, l.Env)
	require.Equal(t, 3, config.Pick(l, 1, 2, 3))
	require.Equal(t, 7*time.Second, l.Millis("STR_AUX_RUNNER_INTERVAL_MS", 40*time.Second))
	require.NoError(t, l.Err())
}

func TestErrorsNameTheVariable(t *testing.T) {
	t.Parallel()
	l := config.NewLoader(env(map[string]string{"CP_ENV": "qa", "RUN_JOBS": "maybe", "STR_AUX_RUNNER_INTERVAL_MS": "-5"}))
	l.Bool("RUN_JOBS", false)
	l.Millis("STR_AUX_RUNNER_INTERVAL_MS", time.Second)
	l.Required("DATABASE_URL", "a postgres:// URL")
	err := l.Err()
	require.Error(t, err)
	for _, want := range []string{"CP_ENV", "dev, staging, prod", "RUN_JOBS", "STR_AUX_RUNNER_INTERVAL_MS", "milliseconds", "missing DATABASE_URL"} {
		require.Contains(t, err.Error(), want)
	}
}

func TestSafeNATSURLMasksCredentials(t *testing.T) {
	t.Parallel()
	require.Equal(t, "nats://alice:xxxxx@a:4222,nats://xxxxx@b:4222,nats://c:4222",
		config.SafeNATSURL("nats://alice:hunter2@a:4222,nats://s3cr3tt0ken@b:4222,nats://c:4222"))
}
