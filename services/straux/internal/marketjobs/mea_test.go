package marketjobs_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/jobs"
	"cryptopill.dev/jobs/services/straux/internal/marketjobs"
)

// meaSetup is a bundle with handlers whose metrics land in reg.
type meaSetup struct {
	*bundle
	h   *marketjobs.Handlers
	reg *prometheus.Registry
}

func setupMEA(t *testing.T, universe ...string) meaSetup {
	t.Helper()
	t.Parallel()
	b := setup(t, universe...)
	reg := prometheus.NewRegistry()
	h := marketjobs.New(b.st, b.ex, staticUniverse(universe), marketjobs.Config{Registerer: reg})
	return meaSetup{bundle: b, h: h, reg: reg}
}

// idPct stores an id_pct cell of the grid at ts (value "" for an undefined one).
func (m meaSetup) idPct(t *testing.T, ts time.Time, base, quote, value string) {
	t.Helper()
	var v any
	if value != "" {
		v = value
	}
	m.exec(t, `INSERT INTO str_aux.matrices (ts, matrix_type, base, quote, value) VALUES ($1, 'id_pct', $2, $3, $4::numeric)`,
		ts, base, quote, v)
}

// signal stores a symbol's 30m vectors (and its ΔGFM% when dGFM is not nil) at period p.
func (m meaSetup) signal(t *testing.T, symbol string, p time.Time, n int, vTendency, vSwap float64, dGFM *float64) {
	t.Helper()
	m.exec(t, `INSERT INTO str_aux.window_vectors (symbol, window_label, period_start, n_samples, v_inner, v_outer, v_tendency, v_swap)
		VALUES ($1, '30m', $2, $3, 0, 0, $4, $5)`, symbol, p, n, vTendency, vSwap)
	if dGFM != nil {
		m.exec(t, `INSERT INTO str_aux.window_stats (symbol, window_label, period_start, n_samples, gfm, gfm_abs, delta_gfm_pct)
			VALUES ($1, '30m', $2, $3, 0, 100, $4)`, symbol, p, n, *dGFM)
	}
}

func ptr(v float64) *float64 { return &v }

// TestMEAFixture checks a whole MEA grid against values worked out by hand (DOMAIN.md §3).
func TestMEAFixture(t *testing.T) {
	m := setupMEA(t, "BTCUSDT", "ETHUSDT", "SOLUSDT")
	ctx := context.Background()
	grid := time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)
	p := grid.Add(-40 * time.Second) // the newest vectors, inside (grid − 30m, grid]

	// Signals on the 30m window (weights are the sample counts):
	//   BTCUSDT n 40: vTendency  1.2, vSwap  3, ΔGFM%  0.2
	//   ETHUSDT n 20: vTendency −0.4, vSwap  1, ΔGFM% −0.1
	//   SOLUSDT n 20: vTendency  0.8, vSwap −1, no ΔGFM% (no stats row)
	// BTCUSDT also has an older row (not the newest: ignored), a newer row with a reason (no
	// vectors: ignored), and a row from after the grid (ignored).
	m.signal(t, "BTCUSDT", p, 40, 1.2, 3, ptr(0.2))
	m.signal(t, "ETHUSDT", p, 20, -0.4, 1, ptr(-0.1))
	m.signal(t, "SOLUSDT", p, 20, 0.8, -1, nil)
	m.signal(t, "BTCUSDT", p.Add(-10*time.Minute), 40, -90, -90, ptr(3))
	m.exec(t, `INSERT INTO str_aux.window_vectors (symbol, window_label, period_start, n_samples, reason)
		VALUES ('BTCUSDT', '30m', $1, 5, 'too few samples')`, grid)
	m.signal(t, "BTCUSDT", grid.Add(time.Second), 40, 100, 100, ptr(5))
	//
	// t = (40·1.2 + 20·(−0.4) + 20·0.8)/80 /100 = (48 − 8 + 16)/80/100 = 0.7/100 = 0.007
	// s = (40·3 + 20·1 + 20·(−1))/80 /100 = 120/80/100 = 0.015
	// g = (40·0.2 + 20·(−0.1))/60 /100 = (8 − 2)/60/100 = 0.001 (SOL has no ΔGFM%: not in the mean)
	// GFM = clamp(1 + 20·0.001, 0.8, 1.2) = 1.02
	// vT  = 0.8 + 0.4·clamp(0.007/0.02, −1, 1) = 0.8 + 0.4·0.35 = 0.94
	// vS  = 0.5·tanh(0.75·0.015/0.05) = 0.5·tanh(0.225);
	//       tanh x = x − x³/3 + 2x⁵/15 − 17x⁷/315 + … = 0.225 − 0.003796875 + 0.0000768867 − 0.0000016341
	//              = 0.2212784 (next term +0.00000004), so vS = 0.1106392
	// moodCoeff = clamp(0.94/1.02 + 0.1106392, 0.2, 2.0) = 0.9215686 + 0.1106392 = 1.0322078
	// mood id: vT 0.94 in (0.8, 1.0] → bin 4 up = E; vS 0.1106 in (0.0833, 0.1667] → bin 1 up = b;
	//          |GFM − 1| = 0.02 ≤ 0.05 and GFM ≥ 1 → 0. "Eb0".
	const mood = 0.94/1.02 + 0.1106392
	//
	// Cells: coins BTC, ETH, SOL, USDT, so k = 3; BTC's balance is 2, the others' 1.
	//   BTC/ETH   0.00033    exactly Beta's lower bound → Beta 0.55:  2 × 1/3 × 0.55 × 1.0322078 = 0.3784762
	//   ETH/SOL   0.00032999 just under Beta           → Alpha 0.15:  1 × 1/3 × 0.15 × 1.0322078 = 0.0516104
	//   USDT/SOL  0.00016    exactly Alpha's           → Alpha 0.15:  0.0516104
	//   ETH/BTC  −0.00015    below 0.00016             → none, 0
	//   SOL/USDT −0.0013     |·| ≥ 0.00121             → Epsilon 0.5: 1 × 1/3 × 0.5 × 1.0322078 = 0.1720346
	//   BTC/SOL   0.0005     [0.00046, 0.00077)        → Gamma 1.15:  2 × 1/3 × 1.15 × 1.0322078 = 0.7913593
	//   BTC/USDT  undefined (first grid of a pair)     → none, 0
	//   USDT/BTC  0.00077    exactly Delta's           → Delta 0.65:  1 × 1/3 × 0.65 × 1.0322078 = 0.2236450
	//   ETH/USDT, USDT/ETH 0, SOL/BTC, SOL/ETH 0.0001 → none, 0
	// BTC's row: 0.3784762 + 0.7913593 + 0 = 1.1698355.
	cells := []struct {
		base, quote, idPct, tier string
		weight                   float64
	}{
		{"BTC", "ETH", "0.00033", "beta", 2.0 / 3 * 0.55 * mood},
		{"ETH", "SOL", "0.00032999", "alpha", 1.0 / 3 * 0.15 * mood},
		{"USDT", "SOL", "0.00016", "alpha", 1.0 / 3 * 0.15 * mood},
		{"ETH", "BTC", "-0.00015", "none", 0},
		{"SOL", "USDT", "-0.0013", "epsilon", 1.0 / 3 * 0.5 * mood},
		{"BTC", "SOL", "0.0005", "gamma", 2.0 / 3 * 1.15 * mood},
		{"BTC", "USDT", "", "none", 0},
		{"USDT", "BTC", "0.00077", "delta", 1.0 / 3 * 0.65 * mood},
		{"ETH", "USDT", "0", "none", 0},
		{"USDT", "ETH", "0", "none", 0},
		{"SOL", "BTC", "0.0001", "none", 0},
		{"SOL", "ETH", "0.0001", "none", 0},
	}
	for _, c := range cells {
		m.idPct(t, grid, c.base, c.quote, c.idPct)
	}
	// An earlier grid that must not be the one used.
	m.idPct(t, grid.Add(-time.Minute), "BTC", "ETH", "0.5")

	res, err := m.h.ComputeMEAAt(ctx, grid.Add(20*time.Second), map[string]string{"BTC": "2"})
	require.NoError(t, err)
	require.Equal(t, grid, res.GridTS.UTC())
	require.Equal(t, 12, res.Cells)
	require.Equal(t, 4, res.Coins)

	md := res.Mood
	require.InDelta(t, 0.001, md.G, 1e-15)
	require.InDelta(t, 0.007, md.T, 1e-15)
	require.InDelta(t, 0.015, md.S, 1e-15)
	require.InDelta(t, 1.02, md.GFM, 1e-15)
	require.InDelta(t, 0.94, md.VT, 1e-15)
	require.InDelta(t, 0.1106392, md.VS, 1e-7)
	require.InDelta(t, 1.0322078, md.Coeff, 1e-7)
	require.Equal(t, "Eb0", md.ID)
	require.Equal(t, []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"}, md.Symbols)
	require.Equal(t, 3, md.Candidates)

	// The grid row records the same.
	var (
		coeff          float64
		id             string
		syms           []string
		samples, coins int
	)
	require.NoError(t, m.db.Pool.QueryRow(ctx,
		`SELECT mood_coeff, mood_id, symbols, samples, coins FROM str_aux.mea_grids WHERE ts = $1`, grid).
		Scan(&coeff, &id, &syms, &samples, &coins))
	require.InDelta(t, 1.0322078, coeff, 1e-7)
	require.Equal(t, "Eb0", id)
	require.Equal(t, []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"}, syms)
	require.Equal(t, 80, samples)
	require.Equal(t, 4, coins)

	for _, c := range cells {
		var tier string
		var weight float64
		require.NoError(t, m.db.Pool.QueryRow(ctx,
			`SELECT tier, weight FROM str_aux.mea WHERE ts = $1 AND base = $2 AND quote = $3`, grid, c.base, c.quote).
			Scan(&tier, &weight), c.base+"/"+c.quote)
		require.Equal(t, c.tier, tier, c.base+"/"+c.quote)
		require.InDelta(t, c.weight, weight, 1e-7, c.base+"/"+c.quote)
	}
	require.InDelta(t, 0.3784762, *m.float(t, `SELECT weight FROM str_aux.mea WHERE ts = $1 AND base = 'BTC' AND quote = 'ETH'`, grid), 1e-7)
	require.InDelta(t, 1.1698355, *m.float(t, `SELECT weight::float8 FROM str_aux.mea_coins WHERE ts = $1 AND coin = 'BTC'`, grid), 1e-7)
	require.InDelta(t, 2, *m.float(t, `SELECT balance::float8 FROM str_aux.mea_coins WHERE ts = $1 AND coin = 'BTC'`, grid), 0)

	// A re-run rewrites; nothing is added.
	_, err = m.h.ComputeMEAAt(ctx, grid, map[string]string{"BTC": "2"})
	require.NoError(t, err)
	require.InDelta(t, 12, *m.float(t, `SELECT count(*)::float8 FROM str_aux.mea`), 0)
	require.InDelta(t, 1, *m.float(t, `SELECT count(*)::float8 FROM str_aux.mea_grids`), 0)
	require.InDelta(t, 2, m.metric(t, "cp_straux_mea_grids_total"), 0)
	require.InDelta(t, 1.0322078, m.metric(t, "cp_straux_mea_mood_coeff"), 1e-7)
	require.Zero(t, m.metric(t, "cp_straux_mea_mood_clamped_total"))
	require.Zero(t, m.metric(t, "cp_straux_mea_mood_no_signals_total"))
}

// metric sums the samples of the named metric in m's registry whose labels include labels
// (name, value pairs); 0 when there are none.
func (m meaSetup) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	families, err := m.reg.Gather()
	require.NoError(t, err)
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, s := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range s.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue next
				}
			}
			sum += s.GetCounter().GetValue() + s.GetGauge().GetValue()
		}
	}
	return sum
}

// TestMEAMoodIsAtItsClampOnlyForExtremeInputs sweeps ordinary signals (within half the
// normalisation scales: |vTendency| ≤ 1, |vSwap| ≤ 2.5, |ΔGFM%| ≤ 0.5) and extreme ones. The
// coefficient stays strictly inside (0.2, 2.0) for every ordinary combination; the extremes reach
// 0.2 exactly (vT 0.4 / GFM 1.2 − vS 0.5 < 0.2) and 2.0 within 1e-9 (1.2/0.8 + 0.5·tanh(15)).
// Before the normalisation (raw vSwap and vTendency/price) every coin with vectors sat at 2.0.
func TestMEAMoodIsAtItsClampOnlyForExtremeInputs(t *testing.T) {
	m := setupMEA(t, "BTCUSDT")
	ctx := context.Background()
	t0 := time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)
	i := 0
	coeffOf := func(vTendency, vSwap, dGFM float64) marketjobs.MoodResult {
		t.Helper()
		i++
		ts := t0.Add(time.Duration(i) * time.Minute)
		m.idPct(t, ts, "BTC", "USDT", "0.0005")
		m.idPct(t, ts, "USDT", "BTC", "-0.0005")
		m.signal(t, "BTCUSDT", ts, 45, vTendency, vSwap, ptr(dGFM))
		res, err := m.h.ComputeMEAAt(ctx, ts, nil)
		require.NoError(t, err)
		require.Equal(t, []string{"BTCUSDT"}, res.Mood.Symbols)
		return res.Mood
	}
	ordinary := 0
	for _, vt := range []float64{-1, -0.5, 0, 0.5, 1} {
		for _, vs := range []float64{-2.5, -1, 0, 1, 2.5} {
			for _, dg := range []float64{-0.5, 0, 0.5} {
				md := coeffOf(vt, vs, dg)
				what := fmt.Sprintf("vTendency %v vSwap %v ΔGFM%% %v → %v (%s)", vt, vs, dg, md.Coeff, md.ID)
				require.Greater(t, md.Coeff, marketjobs.MoodCoeffMin+0.1, what)
				require.Less(t, md.Coeff, marketjobs.MoodCoeffMax-0.5, what)
				ordinary++
			}
		}
	}
	require.Zero(t, m.metric(t, "cp_straux_mea_mood_clamped_total"), "no ordinary grid is clamped")

	// A market falling everywhere: vT 0.4, GFM 1.2, vS ≈ −0.5 → 0.333 − 0.5 < 0.2 → 0.2.
	low := coeffOf(-100, -100, 5)
	require.Equal(t, marketjobs.MoodCoeffMin, low.Coeff)
	require.Equal(t, "Bl3", low.ID, "vT 0.4 in (0.2, 0.4] → B; vS −0.5 → l; GFM 1.2: |0.2| > 0.15 → 3")
	// Rising everywhere: vT 1.2, GFM 0.8, vS = 0.5·tanh(15) → 1.5 + 0.4999999999998.
	high := coeffOf(100, 100, -5)
	require.InDelta(t, marketjobs.MoodCoeffMax, high.Coeff, 1e-9)
	require.Equal(t, "Ff7", high.ID)
	require.InDelta(t, 1, m.metric(t, "cp_straux_mea_mood_clamped_total", "bound", "low"), 0)
	require.InDelta(t, 1, m.metric(t, "cp_straux_mea_mood_clamped_total", "bound", "high"), 0)
	require.InDelta(t, ordinary+2, m.metric(t, "cp_straux_mea_grids_total"), 0)
}

// TestMEAMoodTakesTwelveSymbolsDeterministically: with 14 candidates the ones quoted in USDT come
// first, by symbol, and the grid records which 12 went in.
func TestMEAMoodTakesTwelveSymbolsDeterministically(t *testing.T) {
	usdt := []string{"XRPUSDT", "ADAUSDT", "ATOMUSDT", "AVAXUSDT", "BNBUSDT", "BTCUSDT", "DOGEUSDT",
		"DOTUSDT", "ETHUSDT", "LINKUSDT", "LTCUSDT", "SOLUSDT", "TRXUSDT"}
	m := setupMEA(t, usdt...)
	ctx := context.Background()
	m.exec(t, `INSERT INTO settings.coin_universe (symbol, base_asset, quote_asset) VALUES ('ETHBTC', 'ETH', 'BTC')`)
	h := marketjobs.New(m.st, m.ex, staticUniverse(append([]string{"ETHBTC"}, usdt...)), marketjobs.Config{})
	grid := time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, s := range append([]string{"ETHBTC"}, usdt...) {
		m.signal(t, s, grid, 45, 0.5, 0.5, ptr(0))
	}
	m.idPct(t, grid, "BTC", "USDT", "0.0005")
	res, err := h.ComputeMEAAt(ctx, grid, nil)
	require.NoError(t, err)
	want := []string{"ADAUSDT", "ATOMUSDT", "AVAXUSDT", "BNBUSDT", "BTCUSDT", "DOGEUSDT", "DOTUSDT",
		"ETHUSDT", "LINKUSDT", "LTCUSDT", "SOLUSDT", "TRXUSDT"}
	require.Equal(t, want, res.Mood.Symbols)
	require.Equal(t, 14, res.Mood.Candidates)
	var syms []string
	var candidates int
	require.NoError(t, m.db.Pool.QueryRow(ctx, `SELECT symbols, candidates FROM str_aux.mea_grids WHERE ts = $1`, grid).
		Scan(&syms, &candidates))
	require.Equal(t, want, syms)
	require.Equal(t, 14, candidates)
}

// Without any recent vector the mood is the one of zero signals (0.8, "Da0"), and it is counted
// and logged, not passed off as a measured mood. Bad balances are a permanent error naming the coin.
func TestMEAWithoutSignalsAndBadInput(t *testing.T) {
	m := setupMEA(t, "BTCUSDT")
	ctx := context.Background()
	grid := time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)
	m.signal(t, "BTCUSDT", grid.Add(-31*time.Minute), 45, 50, 50, ptr(1)) // older than the window
	m.idPct(t, grid, "BTC", "USDT", "0.0005")
	m.idPct(t, grid, "USDT", "BTC", "-0.0005")
	res, err := m.h.ComputeMEAAt(ctx, grid, nil)
	require.NoError(t, err)
	require.InDelta(t, 0.8, res.Mood.Coeff, 1e-15)
	require.Equal(t, "Da0", res.Mood.ID)
	require.Empty(t, res.Mood.Symbols)
	require.InDelta(t, 1, m.metric(t, "cp_straux_mea_mood_no_signals_total", "reason", "no_vectors"), 0)

	_, err = m.h.ComputeMEAAt(ctx, grid, map[string]string{"ETH": "lots"})
	require.ErrorContains(t, err, `balance of "ETH": "lots"`)
	require.True(t, jobs.IsPermanent(err))

	none, err := m.h.ComputeMEAAt(ctx, grid.Add(-time.Hour), nil)
	require.NoError(t, err)
	require.Nil(t, none.GridTS, "no grid at or before: nothing written")
}
