package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/testkit/pgtest"
)

// smokeFixture is a migrated database with a three-symbol universe and helpers that store the
// rows the smoke checks read.
type smokeFixture struct {
	t  *testing.T
	db *pgtest.DB
	// t0 is the first period; period i starts at t0 + i·40s. Fixed: nothing here reads the clock.
	t0 time.Time
}

func setupSmoke(t *testing.T) smokeFixture {
	t.Helper()
	t.Parallel()
	f := smokeFixture{t: t, db: pgtest.NewDB(t), t0: time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)}
	f.exec(`INSERT INTO settings.coin_universe (symbol, base_asset, quote_asset)
		VALUES ('BTCUSDT', 'BTC', 'USDT'), ('ETHUSDT', 'ETH', 'USDT'), ('SOLUSDT', 'SOL', 'USDT')`)
	return f
}

func (f smokeFixture) exec(sql string, args ...any) {
	f.t.Helper()
	_, err := f.db.Pool.Exec(context.Background(), sql, args...)
	require.NoError(f.t, err)
}

func (f smokeFixture) period(i int) time.Time { return f.t0.Add(time.Duration(i) * 40 * time.Second) }

// vectors upserts periods from..to (inclusive) of symbol's window with the given values and their
// IDHR confidence.
type vec struct{ inner, outer, tendency, strength, swap, confidence float64 }

var ordinary = vec{inner: 12, outer: -31, tendency: 8, strength: 0.4, swap: 27, confidence: 0.8}

func (f smokeFixture) vectors(symbol, window string, from, to int, v vec) {
	f.t.Helper()
	f.exec(`INSERT INTO str_aux.window_vectors (symbol, window_label, period_start, n_samples, v_inner, v_outer,
	                                            v_tendency, v_tendency_strength, v_swap)
		SELECT $1, $2, $3::timestamptz + i * interval '40 seconds', 45,
		       $6, $7, $8, $9, $10
		  FROM generate_series($4::int, $5::int) AS i
		ON CONFLICT (symbol, window_label, period_start) DO UPDATE SET v_inner = EXCLUDED.v_inner,
		    v_outer = EXCLUDED.v_outer, v_tendency = EXCLUDED.v_tendency,
		    v_tendency_strength = EXCLUDED.v_tendency_strength, v_swap = EXCLUDED.v_swap, reason = NULL`,
		symbol, window, f.t0, from, to, v.inner, v.outer, v.tendency, v.strength, v.swap)
	f.exec(`INSERT INTO str_aux.window_stats (symbol, window_label, period_start, n_samples, gfm, confidence)
		SELECT $1, $2, $3::timestamptz + i * interval '40 seconds', 45, 0.001, $6
		  FROM generate_series($4::int, $5::int) AS i
		ON CONFLICT (symbol, window_label, period_start) DO UPDATE SET confidence = EXCLUDED.confidence`,
		symbol, window, f.t0, from, to, v.confidence)
}

// noVectors stores periods from..to of symbol's window without values.
func (f smokeFixture) noVectors(symbol, window string, from, to int) {
	f.t.Helper()
	f.exec(`INSERT INTO str_aux.window_vectors (symbol, window_label, period_start, n_samples, reason)
		SELECT $1, $2, $3::timestamptz + i * interval '40 seconds', 3, 'too few samples (3 < 64)'
		  FROM generate_series($4::int, $5::int) AS i`, symbol, window, f.t0, from, to)
}

// grids stores MEA grids (one a minute from t0 + from minutes) with the given mood.
func (f smokeFixture) grids(from, to int, coeff, gfm, vT, vS float64, id string) {
	f.t.Helper()
	f.exec(`INSERT INTO str_aux.mea_grids (ts, window_label, symbols, candidates, samples, g, t, s, gfm_factor,
	                                       v_t, v_s, mood_coeff, mood_id, coins)
		SELECT $1::timestamptz + i * interval '1 minute', '30m', '{BTCUSDT,ETHUSDT,SOLUSDT}', 3, 135, 0, 0, 0,
		       $4, $5, $6, $7, $8, 4
		  FROM generate_series($2::int, $3::int) AS i`, f.t0, from, to, gfm, vT, vS, coeff, id)
}

// healthy stores twelve ordinary periods of every symbol and window and twelve ordinary grids.
func (f smokeFixture) healthy() {
	for _, s := range []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"} {
		for _, w := range []string{"30m", "1h", "4h"} {
			f.vectors(s, w, 0, 11, ordinary)
		}
	}
	// A third of the 4h rows have no value yet: under the 50% limit.
	f.noVectors("SOLUSDT", "4h", 12, 23)
	f.grids(0, 11, 1.0322078, 1.02, 0.94, 0.1106392, "Eb0")
}

func (f smokeFixture) smoke(args ...string) (int, string, string) {
	f.t.Helper()
	env := newTestEnv(map[string]string{"DATABASE_URL": f.db.URL})
	// These tests are about stored values: the schema and end-to-end passes have their own.
	args = append([]string{"-schema=false", "-e2e=false"}, args...)
	code := smokeMain(context.Background(), args, env.cmdEnv, func() time.Time { return f.period(30) })
	return code, env.stdout.String(), env.stderr.String()
}

// line is the output line of check name.
func line(t *testing.T, out, name string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, name+" ") {
			return l
		}
	}
	t.Fatalf("no line for check %s in:\n%s", name, out)
	return ""
}

func TestSmokeHealthy(t *testing.T) {
	f := setupSmoke(t)
	f.healthy()
	code, out, errOut := f.smoke()
	require.Equal(t, 0, code, out+errOut)
	for _, name := range []string{"mea.mood_clamp", "vectors.window_clamp", "vectors.symbol_clamp", "vectors.null_share"} {
		require.Regexp(t, `\sOK\s`, line(t, out, name), out)
	}
	require.Contains(t, line(t, out, "vectors.null_share"), "at most 33% of the newest vector rows without a value")
	require.Contains(t, out, "8 checks: healthy")
}

// A stack whose universe has been enabled for a while but that never planned a tick is not
// healthy, even with nothing else to check; one enabled a moment ago is not judged yet.
func TestSmokeNeverTickedFails(t *testing.T) {
	f := setupSmoke(t)
	f.exec(`UPDATE settings.coin_universe SET added_at = $1`, f.period(30).Add(-time.Hour))
	code, out, errOut := f.smoke()
	require.Equal(t, 1, code, out+errOut)
	require.Regexp(t, `\sFAIL\s`, line(t, out, "straux.sampling_recency"), out)
	require.Contains(t, line(t, out, "straux.sampling_recency"), "no tick period planned, though 3 symbols are enabled, the first since 2026-11-30T08:20:00Z")

	f.exec(`UPDATE settings.coin_universe SET added_at = $1`, f.period(30).Add(-time.Minute))
	code, out, errOut = f.smoke()
	require.Equal(t, 0, code, out+errOut)
	require.Contains(t, line(t, out, "straux.sampling_recency"), "no tick period planned yet")

	f.exec(`UPDATE settings.coin_universe SET added_at = $1`, f.period(30).Add(-time.Hour))
	code, out, errOut = f.smoke("--first-tick-within", "2h")
	require.Equal(t, 0, code, out+errOut)
}

func TestSmokeEmptyDatabaseSkips(t *testing.T) {
	f := setupSmoke(t)
	f.exec(`UPDATE settings.coin_universe SET added_at = $1`, f.period(30).Add(-time.Minute))
	code, out, errOut := f.smoke()
	require.Equal(t, 0, code, out+errOut)
	require.Contains(t, line(t, out, "mea.mood_clamp"), "SKIP")
	require.Contains(t, line(t, out, "mea.mood_clamp"), "no MEA grids yet")
	require.Contains(t, line(t, out, "vectors.null_share"), "no vectors yet")
}

func TestSmokePinnedFails(t *testing.T) {
	f := setupSmoke(t)
	f.healthy()
	// MEA: grids 0–1 at the clamp (an older run), 2–3 ordinary, 4–15 at 2.0 with vT and GFM at
	// their bounds too: a run of 12 grids since grid 4 (t0 + 4 min = 09:04).
	f.grids(12, 15, 1.0322078, 1.02, 0.94, 0.1106392, "Eb0")
	f.exec(`DELETE FROM str_aux.mea_grids WHERE ts >= $1`, f.t0.Add(4*time.Minute))
	f.grids(4, 15, 2.0, 0.8, 1.2, 0.4999999999998, "Ff7")
	f.exec(`UPDATE str_aux.mea_grids SET mood_coeff = 2.0 WHERE ts < $1`, f.t0.Add(2*time.Minute))
	// Every symbol's 30m vSwap at +100 for the newest 3 periods (9–11): since period 9, 09:06:00.
	for _, s := range []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"} {
		v := ordinary
		v.swap = 100
		f.vectors(s, "30m", 9, 11, v)
	}
	// BTCUSDT's 1h vTendency at −100 in all 12 rows (since period 0, 09:00:00); ETHUSDT's 1h
	// confidence at 1 (a flat price) in its newest 10 (since period 2, 09:01:20).
	f.vectors("BTCUSDT", "1h", 0, 11, vec{inner: 12, outer: -31, tendency: -100, strength: 0.4, swap: 27, confidence: 0.8})
	f.vectors("ETHUSDT", "1h", 2, 11, vec{inner: 0, outer: 0, tendency: 0, strength: 0, swap: 0, confidence: 1})
	// 4h: every symbol's newest rows have no value.
	for _, s := range []string{"BTCUSDT", "ETHUSDT"} {
		f.noVectors(s, "4h", 12, 23)
	}

	code, out, errOut := f.smoke()
	require.Equal(t, 1, code, out+errOut)
	mea := line(t, out, "mea.mood_clamp")
	require.Contains(t, mea, "FAIL")
	require.Contains(t, mea, "mood_coeff at 2 in the last 12 grids (newest 2026-11-30T09:15:00Z, mood Ff7) since 2026-11-30T09:04:00Z")
	require.Contains(t, mea, "gfm_factor at 0.8 in the last 12 grids")
	require.Less(t, strings.Index(mea, "mood_coeff"), strings.Index(mea, "gfm_factor"), "the coefficient comes first")

	win := line(t, out, "vectors.window_clamp")
	require.Contains(t, win, "FAIL")
	require.Contains(t, win, "window 30m at 2026-11-30T09:07:20Z: v_swap = 100 for all 3 symbols, 3 periods since 2026-11-30T09:06:00Z")

	sym := line(t, out, "vectors.symbol_clamp")
	require.Contains(t, sym, "FAIL")
	require.Contains(t, sym, "BTCUSDT 1h: v_tendency = -100 in its last 12 rows (newest 2026-11-30T09:07:20Z) since 2026-11-30T09:00:00Z")
	require.Contains(t, sym, "ETHUSDT 1h: confidence = 1 in its last 10 rows (newest 2026-11-30T09:07:20Z) since 2026-11-30T09:01:20Z")
	require.NotContains(t, sym, "SOLUSDT", "3 rows at the bound are fewer than --periods")

	null := line(t, out, "vectors.null_share")
	require.Contains(t, null, "FAIL")
	require.Contains(t, null, `window 4h: 100% of 30 newest vector rows have no value (mostly "too few samples (3 < 64)")`)
	require.Contains(t, out, "8 checks: 4 failed")

	// A shorter --periods finds SOLUSDT's 3 rows too; --json lists every finding.
	code, js, errOut := f.smoke("--json", "--periods", "3")
	require.Equal(t, 1, code, errOut)
	var got struct {
		Healthy bool
		Checks  []smokeCheck
	}
	require.NoError(t, json.Unmarshal([]byte(js), &got), js)
	require.False(t, got.Healthy)
	require.Len(t, got.Checks, 8)
	bySymbol := got.Checks[6]
	require.Equal(t, "vectors.symbol_clamp", bySymbol.Name)
	var swaps []string
	for _, fd := range bySymbol.Findings {
		if fd.Series == "v_swap" && fd.Window == "30m" {
			swaps = append(swaps, fd.Symbol)
			require.Equal(t, 3, fd.Run)
			require.Equal(t, f.period(9), fd.Since.UTC())
		}
	}
	require.Equal(t, []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"}, swaps)
	require.Equal(t, statusFail, got.Checks[4].Status)
	var meaSeries []string
	for _, fd := range got.Checks[4].Findings {
		meaSeries = append(meaSeries, fd.Series+" "+fd.Bound)
		require.Equal(t, f.t0.Add(15*time.Minute), fd.Newest.UTC())
		require.Equal(t, 12, fd.Run)
	}
	require.Equal(t, []string{"mood_coeff 2", "gfm_factor 0.8", "v_s 0.5", "v_t 1.2"}, meaSeries)

	// A run longer than --history is reported as having started before the oldest row read.
	_, out, _ = f.smoke("--periods", "5", "--history", "5")
	require.Contains(t, line(t, out, "vectors.symbol_clamp"), "v_tendency = -100 in its last 5 rows (newest 2026-11-30T09:07:20Z) since before 2026-11-30T09:04:40Z")
}

// Grids whose mood had no signal to go on (no symbol with a recent vector) fail too.
func TestSmokeMoodWithoutSignals(t *testing.T) {
	f := setupSmoke(t)
	f.healthy()
	f.grids(12, 21, 0.8, 1, 0.8, 0, "Da0")
	f.exec(`UPDATE str_aux.mea_grids SET symbols = '{}', candidates = 0 WHERE ts >= $1`, f.t0.Add(12*time.Minute))
	code, out, errOut := f.smoke()
	require.Equal(t, 1, code, out+errOut)
	require.Contains(t, line(t, out, "mea.mood_clamp"),
		"mood_symbols at 0 in the last 10 grids (newest 2026-11-30T09:21:00Z, mood Da0) since 2026-11-30T09:12:00Z")
	require.NotContains(t, line(t, out, "mea.mood_clamp"), "mood_coeff")
}

func TestSmokeUsageErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"no database url": {nil, "DATABASE_URL"},
		"periods":         {[]string{"--periods", "0", "--database-url", "postgres://x/y"}, "--periods 0"},
		"history":         {[]string{"--periods", "10", "--history", "3", "--database-url", "postgres://x/y"}, "--history 3"},
		"null share":      {[]string{"--max-null-share", "1.5", "--database-url", "postgres://x/y"}, "--max-null-share 1.5"},
		"extra arguments": {[]string{"now", "--database-url", "postgres://x/y"}, "unexpected arguments"},
		"unknown flag":    {[]string{"--force"}, "flag provided but not defined"},
		"not a number":    {[]string{"--periods", "ten"}, "invalid value"},
	} {
		env := newTestEnv(nil)
		require.Equal(t, 2, smokeCommand(ctx, tc.args, env.cmdEnv), name)
		require.Contains(t, env.stderr.String(), tc.want, name)
		require.Empty(t, env.stdout.String(), name)
	}
}

func TestSmokeUnreachableDatabase(t *testing.T) {
	t.Parallel()
	env := newTestEnv(nil)
	url := "postgres://cp:s3cret@127.0.0.1:1/nowhere?sslmode=disable&connect_timeout=2"
	require.Equal(t, 1, smokeCommand(context.Background(), []string{"--database-url", url}, env.cmdEnv))
	require.NotContains(t, env.stderr.String()+env.stdout.String(), "s3cret")
}
