package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// sampled stores good samples of symbol every 40 s for periods from..to (inclusive), skipping the
// periods in gap.
func (f smokeFixture) sampled(symbol string, from, to int, gap ...[2]int) {
	f.t.Helper()
	for i := from; i <= to; i++ {
		skip := false
		for _, g := range gap {
			skip = skip || (i >= g[0] && i <= g[1])
		}
		if !skip {
			f.exec(`INSERT INTO str_aux.samples (symbol, period_start, mid, n_snapshots) VALUES ($1, $2, 100, 1)`, symbol, f.period(i))
		}
	}
}

// planned records the newest tick period, i, of 40 s with rotation rounds.
func (f smokeFixture) planned(i, rounds int) {
	f.t.Helper()
	f.exec(`INSERT INTO str_aux.tick_periods (period_start, period, status, universe_size, planned_symbols, rotation_rounds, planned_by)
		VALUES ($1, '40 seconds', 'done', 3, 3, $2, 'test')`, f.period(i), rounds)
}

func (f smokeFixture) smokeJSON(now time.Time, args ...string) (int, map[string]smokeCheck) {
	f.t.Helper()
	env := newTestEnv(map[string]string{"DATABASE_URL": f.db.URL})
	code := smokeMain(context.Background(), append([]string{"--json"}, args...), env.cmdEnv, func() time.Time { return now })
	var got struct{ Checks []smokeCheck }
	require.NoError(f.t, json.Unmarshal(env.stdout.Bytes(), &got), env.stdout.String()+env.stderr.String())
	out := map[string]smokeCheck{}
	for _, c := range got.Checks {
		out[c.Name] = c
	}
	return code, out
}

func TestSmokeSamplingHealthy(t *testing.T) {
	f := setupSmoke(t)
	// Two hours of samples every period, the newest one period before now.
	for _, s := range []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"} {
		f.sampled(s, 0, 180)
	}
	f.planned(180, 1)
	code, c := f.smokeJSON(f.period(181), "-schema=false", "-e2e=false")
	require.Equal(t, 0, code, "%+v", c)
	for _, name := range []string{"straux.sampling_recency", "straux.sampling_density", "straux.window_coverage", "straux.sample_gaps"} {
		require.Equal(t, statusOK, c[name].Status, "%s: %s", name, c[name].Detail)
	}
	require.Equal(t, "9 symbol windows: at least 100% of their due samples are good (limit 80%)", c["straux.window_coverage"].Detail)
	require.Equal(t, "9 symbol windows: longest gap between good samples 40s (limit 5 due periods)", c["straux.sample_gaps"].Detail)
}

func TestSmokeSamplingStaleSparseAndGappy(t *testing.T) {
	f := setupSmoke(t)
	f.sampled("BTCUSDT", 0, 180)
	f.sampled("ETHUSDT", 0, 180, [2]int{150, 164}) // 10 minutes without a good sample, half an hour ago
	f.sampled("SOLUSDT", 0, 165)                   // nothing for the last 10 minutes
	// A failed sample is no good sample.
	f.exec(`INSERT INTO str_aux.samples (symbol, period_start, reason) VALUES ('SOLUSDT', $1, 'exchange: 503')`, f.period(180))
	f.planned(180, 1)
	code, c := f.smokeJSON(f.period(181), "-schema=false", "-e2e=false")
	require.Equal(t, 1, code)

	rec := c["straux.sampling_recency"]
	require.Equal(t, statusFail, rec.Status)
	require.Equal(t, "SOLUSDT: newest good sample 10m40s old (due every 40s)", rec.Detail)

	gaps := c["straux.sample_gaps"]
	require.Equal(t, statusFail, gaps.Status)
	require.Len(t, gaps.Findings, 3, gaps.Detail) // ETHUSDT's gap lies inside its 30m, 1h and 4h windows
	require.Contains(t, gaps.Detail, "ETHUSDT 1h: no good sample for 10m40s before "+f.period(165).Format(time.RFC3339))

	cov := c["straux.window_coverage"]
	require.Equal(t, statusFail, cov.Status)
	var thin []string
	for _, fd := range cov.Findings {
		thin = append(thin, fd.Symbol+" "+fd.Window)
	}
	require.Equal(t, []string{"ETHUSDT 30m", "SOLUSDT 30m"}, thin, cov.Detail)

	// A rotating universe is due less often: the same samples are fine when each symbol comes
	// up every 20 ticks.
	f.exec(`UPDATE str_aux.tick_periods SET rotation_rounds = 20`)
	code, c = f.smokeJSON(f.period(181), "-schema=false", "-e2e=false")
	require.Equal(t, 0, code, "%+v", c)
	require.True(t, strings.HasPrefix(c["straux.sampling_recency"].Detail, "3 symbols"), c["straux.sampling_recency"].Detail)
}

func TestSmokeSchemaNamesWhatIsMissing(t *testing.T) {
	f := setupSmoke(t)
	code, c := f.smokeJSON(f.period(0), "-e2e=false")
	require.Equal(t, 0, code, "%+v", c)
	require.Equal(t, statusOK, c["schema.version"].Status)
	require.Equal(t, statusOK, c["schema.objects"].Status, c["schema.objects"].Detail)

	f.exec(`DROP INDEX ingest.jobs_live_key`)
	f.exec(`ALTER TABLE str_aux.samples ALTER COLUMN n_snapshots DROP NOT NULL`)
	code, c = f.smokeJSON(f.period(0), "-e2e=false")
	require.Equal(t, 1, code)
	obj := c["schema.objects"]
	require.Equal(t, statusFail, obj.Status)
	require.Contains(t, obj.Detail, "index ingest.jobs_live_key is missing")
	require.Contains(t, obj.Detail, `column str_aux.samples.n_snapshots is "integer", the migrations make "integer NOT NULL"`)

}
