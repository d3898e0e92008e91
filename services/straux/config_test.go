package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/jobs"
)

func TestJobsRetentionConfig(t *testing.T) {
	t.Parallel()
	load := func(v string) (Config, error) {
		return LoadConfig(func(k string) (string, bool) {
			env := map[string]string{"DATABASE_URL": "postgres://localhost/x"}
			if v != "" {
				env["JOBS_RETENTION"] = v
			}
			s, ok := env[k]
			return s, ok
		})
	}
	cfg, err := load("")
	require.NoError(t, err)
	require.Equal(t, jobs.DefaultRetention, cfg.JobsRetention)
	cfg, err = load("72h")
	require.NoError(t, err)
	require.Equal(t, 72*time.Hour, cfg.JobsRetention)
	_, err = load("-1h")
	require.ErrorContains(t, err, "JOBS_RETENTION")
	_, err = load("a week")
	require.ErrorContains(t, err, "JOBS_RETENTION")
}
