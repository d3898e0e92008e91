package vectors_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/services/straux/internal/vectors"
)

// bins = 12 keeps MinSamples at its floor of 12, so the fixtures stay small.
const bins = 12

func TestMinSamples(t *testing.T) {
	t.Parallel()
	for b, want := range map[int]int{1: 12, 48: 12, 49: 13, 256: 64, 512: 128, 4096: 128} {
		require.Equal(t, want, vectors.MinSamples(b), "B=%d", b)
	}
}

func TestPositionFixture(t *testing.T) {
	t.Parallel()
	// Nine prices at 10, then 12, 14, 20: x = 0 ×9, 0.2, 0.4, 1.
	// Weighted median of x = 0 (the 6th and 7th of 12 are both 0); the MAD is 0 as well, so it
	// falls back to the mean absolute deviation (0.2+0.4+1)/12 = 0.1333…: z = 0 ×9, 1.5, 3, 7.5.
	// vOuter = 100·tanh(mean z = 12/12) = 100·tanh(1).
	// Bins round(x·11) = 0 (γ 9, z 0), 2, 4, 11 (γ 1 each):
	// vInner = 100·(tanh 1.5 + tanh 3 + tanh 7.5)/12.
	prices := []float64{10, 10, 10, 10, 10, 10, 10, 10, 10, 12, 14, 20}
	ws := vectors.Get()
	defer vectors.Put(ws)
	v, err := ws.Compute(prices, nil, bins)
	require.NoError(t, err)
	require.Equal(t, 12, v.N)
	require.InDelta(t, 100*math.Tanh(1), v.Outer, 1e-9)
	require.InDelta(t, 100*(math.Tanh(1.5)+math.Tanh(3)+math.Tanh(7.5))/12, v.Inner, 1e-9)
}

func TestWeightsMoveTheMedian(t *testing.T) {
	t.Parallel()
	// x = 0, 0.5, 1 (prices 10, 15, 20 and nine more at 15 to reach 12 points) with all the
	// weight on the last point: the weighted median is 1, every z ≤ 0, vOuter < 0.
	prices := []float64{10, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 20}
	weights := []float64{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 100}
	ws := vectors.Get()
	defer vectors.Put(ws)
	unweighted, err := ws.Compute(prices, nil, bins)
	require.NoError(t, err)
	weighted, err := ws.Compute(prices, weights, bins)
	require.NoError(t, err)
	require.InDelta(t, 0, unweighted.Outer, 1e-9, "median 0.5 with z = −1, 0 ×10, +1")
	require.Less(t, weighted.Outer, -50.0)
}

func TestTendencyFixture(t *testing.T) {
	t.Parallel()
	// Returns s_t = t + (t mod 2) for t = 0..12 (0, 2, 2, 4, 4, …, 12, 12): OLS slope 1
	// (Σ(t−6)s = 182 = Σ(t−6)²); first differences alternate 2, 0 → median 1, |d−1| = 1 →
	// D = 1. score = 100·tanh(1.1). Pearson r = 182/√(182·185.2308) = 0.99124.
	s := []float64{0, 2, 2, 4, 4, 6, 6, 8, 8, 10, 10, 12, 12}
	prices := []float64{100}
	for _, v := range s {
		prices = append(prices, prices[len(prices)-1]*math.Exp(v/100))
	}
	ws := vectors.Get()
	defer vectors.Put(ws)
	v, err := ws.Compute(prices, nil, bins)
	require.NoError(t, err)
	require.InDelta(t, 100*math.Tanh(1.1), v.Tendency, 1e-6)
	require.InDelta(t, 0.9912407071619302, v.TendencyStrength, 1e-9)
}

func TestSwapFixture(t *testing.T) {
	t.Parallel()
	// Prices alternate 100, 110 (12 points): mean 105, σ 5, so inner = −1 at 100 and +1 at 110;
	// returns are +a into 110 and −a into 100 (a = 100·ln 1.1). Q1 = −a, Q3 = +a: the mean inner
	// where tendency ≥ Q3 is +1, where ≤ Q1 is −1; Q = 1, vSwap = 100·tanh(1.2).
	// Everything else is symmetric: vInner = vOuter = 0; the alternating returns have OLS
	// slope 0, so vTendency = 0.
	var prices []float64
	for i := range 12 {
		prices = append(prices, 100+10*float64(i%2))
	}
	ws := vectors.Get()
	defer vectors.Put(ws)
	v, err := ws.Compute(prices, nil, bins)
	require.NoError(t, err)
	require.InDelta(t, 100*math.Tanh(1.2), v.Swap, 1e-9)
	require.InDelta(t, 0, v.Inner, 1e-9)
	require.InDelta(t, 0, v.Outer, 1e-9)
	require.InDelta(t, 0, v.Tendency, 1e-9)
	require.InDelta(t, 0, v.TendencyStrength, 1e-9)
}

func TestTooFewSamples(t *testing.T) {
	t.Parallel()
	ws := vectors.Get()
	defer vectors.Put(ws)
	v, err := ws.Compute(make([]float64, 11), nil, bins)
	require.ErrorIs(t, err, vectors.ErrTooFewSamples)
	require.Equal(t, 11, v.N)
	_, err = ws.Compute(make([]float64, 63), nil, 256)
	require.ErrorIs(t, err, vectors.ErrTooFewSamples, "B = 256 needs 64")
}

func TestFlatWindowIsZero(t *testing.T) {
	t.Parallel()
	prices := make([]float64, 20)
	for i := range prices {
		prices[i] = 42
	}
	ws := vectors.Get()
	defer vectors.Put(ws)
	v, err := ws.Compute(prices, nil, bins)
	require.NoError(t, err)
	require.Equal(t, vectors.Vectors{N: 20}, v)
}

func BenchmarkCompute(b *testing.B) {
	prices := make([]float64, 360)
	weights := make([]float64, 360)
	for i := range prices {
		prices[i] = 100 * math.Exp(0.01*math.Sin(float64(i)/7)+0.002*float64(i%5))
		weights[i] = 1 + float64(i%3)
	}
	ws := vectors.Get()
	defer vectors.Put(ws)
	b.ReportAllocs()
	for b.Loop() {
		_, _ = ws.Compute(prices, weights, 256)
	}
}
