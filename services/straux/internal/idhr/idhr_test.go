package idhr_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/services/straux/internal/idhr"
)

// w is the bin width when the returns span [0, 0.25]: 0.25/256 = 2⁻¹⁰, exact in float64.
const w = 1.0 / 1024

// centre is the centre of fine bin k over [0, 0.25].
func centre(k int) float64 { return (float64(k) + 0.5) * w }

// pricesFromReturns builds prices p_i = 100·e^{r_i}, so that ln(p_i/p_0) = r_i.
func pricesFromReturns(r ...float64) []float64 {
	p := make([]float64, len(r))
	for i, v := range r {
		p[i] = 100 * math.Exp(v)
	}
	return p
}

func TestComputeFixtures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		returns []float64
		want    idhr.Stats // N, P0, GFM, GFMAbs, Confidence, Inertia, Disruption
		counts  map[int]float64
	}{
		{
			// r = 0 (bin 0), 0.25 (max, clamped into bin 255), bin 100 ×3, bin 37 ×2, bin 200.
			// Five bins, all inside the 16 densest: nothing is zeroed.
			// GFM = centre(100) = 100.5/1024.
			// GFMAbs = 100·exp((1·0.5 + 2·37.5 + 3·100.5 + 1·200.5 + 1·255.5)/1024/8)
			//        = 100·exp(833/8192).
			name:    "five bins",
			returns: []float64{0, 0.25, centre(100), centre(100), centre(100), centre(37), centre(37), centre(200)},
			want: idhr.Stats{N: 8, P0: 100, GFM: 100.5 / 1024, GFMAbs: 100 * math.Exp(833.0/8192),
				Confidence: 0.5653062215292397, Inertia: 0.006212398409843445, Disruption: 0.01830065359477124},
			counts: map[int]float64{0: 1, 37: 2, 100: 3, 200: 1, 255: 1},
		},
		{
			// Bins 0..15 (primary 0) hold 2 each: they are the 16 densest. Bin 255 (primary 15)
			// holds the maximum alone and is zeroed. GFM is bin 0 (ties go to the lower bin);
			// GFMAbs weighs bins 0..7 equally: 100·exp(4/1024).
			// Smoothed counts: 4/3, 2 ×14, 4/3, 2/3, 0…: steps 2/3 at k = 1, 15, 16, 17, so
			// disruption = (8/3)/255.
			name:    "dense core zeroes a lone bin",
			returns: append(append([]float64{0, 0}, pairs(1, 15)...), 0.25),
			want: idhr.Stats{N: 33, P0: 100, GFM: 0.5 / 1024, GFMAbs: 100 * math.Exp(4.0/1024),
				Confidence: 0.7457669512544408, Inertia: 0.0017440894856378501, Disruption: (8.0 / 3) / 255},
			counts: map[int]float64{0: 2, 1: 2, 7: 2, 15: 2, 16: 0, 255: 0},
		},
		{
			// Every price equal: the range collapses to μ ± 2.5σ with σ floored at 1e-6, every
			// return falls in bin 128, whose centre is −2.5e-6 + 128.5·(5e-6/256) = 2.5e-6/256.
			// Smoothed counts 4, 4, 4 at 127..129: steps of 4 at 127 and 130.
			name:    "flat window",
			returns: make([]float64, 12),
			want: idhr.Stats{N: 12, P0: 100, GFM: 2.5e-6 / 256, GFMAbs: 100 * math.Exp(2.5e-6/256),
				Confidence: 1, Inertia: 0, Disruption: 8.0 / 255},
			counts: map[int]float64{128: 12, 127: 0},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var ws idhr.Workspace
			got, err := ws.Compute(pricesFromReturns(tc.returns...))
			require.NoError(t, err)
			require.Equal(t, tc.want.N, got.N)
			require.InDelta(t, tc.want.P0, got.P0, 1e-12)
			require.InDelta(t, tc.want.GFM, got.GFM, 1e-12, "gfm")
			require.InDelta(t, tc.want.GFMAbs, got.GFMAbs, 1e-9, "gfm_abs")
			require.InDelta(t, tc.want.Confidence, got.Confidence, 1e-9, "confidence")
			require.InDelta(t, tc.want.Inertia, got.Inertia, 1e-12, "inertia")
			require.InDelta(t, tc.want.Disruption, got.Disruption, 1e-12, "disruption")
			for k, c := range tc.counts {
				require.Equal(t, c, got.Counts[k], "count of bin %d", k)
			}
		})
	}
}

// pairs returns centre(k) twice for every k in [from, to].
func pairs(from, to int) []float64 {
	var out []float64
	for k := from; k <= to; k++ {
		out = append(out, centre(k), centre(k))
	}
	return out
}

func TestComputeRejectsBadInput(t *testing.T) {
	t.Parallel()
	var ws idhr.Workspace
	_, err := ws.Compute(nil)
	require.ErrorIs(t, err, idhr.ErrNoPrices)
	_, err = ws.Compute([]float64{100, 0, 101})
	require.ErrorIs(t, err, idhr.ErrNoPrices)
}

func TestNextShift(t *testing.T) {
	t.Parallel()
	// First cycle: its GFM becomes the reference.
	s := idhr.NextShift(nil, 100)
	require.Equal(t, idhr.Shift{Ref: 100}, s)

	// Five cycles at +0.4% against 100 build a streak; the fifth is a shift.
	prev := &idhr.Previous{Ref: s.Ref, Streak: s.Streak, Shifted: s.Shifted, GFMAbs: 100}
	for i := 1; i <= 5; i++ {
		s = idhr.NextShift(prev, 100.4)
		require.InDelta(t, 0.4, s.DeltaPct, 1e-9)
		require.Equal(t, i, s.Streak)
		require.Equal(t, i == 5, s.Shifted)
		prev = &idhr.Previous{Ref: s.Ref, Streak: s.Streak, Shifted: s.Shifted, GFMAbs: 100.4}
	}
	// After the shift, the next cycle measures against the shifted GFM and the streak restarts.
	s = idhr.NextShift(prev, 100.4)
	require.Equal(t, idhr.Shift{Ref: 100.4}, s)

	// A move below 0.35% breaks a streak.
	s = idhr.NextShift(&idhr.Previous{Ref: 100, Streak: 3, GFMAbs: 100.5}, 100.3)
	require.InDelta(t, 0.3, s.DeltaPct, 1e-9)
	require.Zero(t, s.Streak)
	require.False(t, s.Shifted)
}
