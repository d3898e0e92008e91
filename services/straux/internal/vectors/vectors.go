// Package vectors computes the str-aux vectors of a window of prices (DOMAIN.md §2): vInner,
// vOuter, vTendency (with its strength) and vSwap, each on the scale ±S (S = 100).
//
// The functions are pure float64 arithmetic. A Workspace holds every scratch buffer, and Get/Put
// pool workspaces, so a tick computing thousands of windows allocates (almost) nothing.
package vectors

import (
	"cmp"
	"errors"
	"math"
	"slices"
	"sync"
)

const (
	// S is the scale of every vector: values lie in [−S, S].
	S = 100.0
	// DefaultBins is B, the number of position bins of vInner.
	DefaultBins = 256
	// TendencyPoints is W, how many of the latest prices vTendency looks at.
	TendencyPoints = 30
	// tiny stands in for a zero dispersion (MAD, D) so that a flat series gives 0, not NaN.
	tiny = 1e-12
)

// ErrTooFewSamples is returned for a window shorter than MinSamples.
var ErrTooFewSamples = errors.New("vectors: too few samples")

// MinSamples is the fewest prices a window needs for vectors: max(12, min(128, ⌈B/4⌉)).
func MinSamples(bins int) int {
	return max(12, min(128, (bins+3)/4))
}

// Vectors are one window's vectors.
type Vectors struct {
	N                int
	Inner            float64
	Outer            float64
	Tendency         float64
	TendencyStrength float64
	Swap             float64
}

// Workspace holds scratch buffers. The zero value is ready; Get returns a pooled one.
type Workspace struct {
	x, w, z, tmp, tmp2 []float64
	idx                []int
	binW, binZ         []float64
}

var pool = sync.Pool{New: func() any { return new(Workspace) }}

// Get takes a workspace from the pool; Put returns it.
func Get() *Workspace   { return pool.Get().(*Workspace) }
func Put(ws *Workspace) { pool.Put(ws) }
func grow(b []float64, n int) []float64 {
	if cap(b) < n {
		return make([]float64, n, n+n/4)
	}
	return b[:n]
}

// Compute returns the vectors of prices (oldest first) with weights (nil: every weight 1; a
// non-positive weight counts as 1) over bins position bins (0: DefaultBins). Fewer than
// MinSamples(bins) prices give ErrTooFewSamples.
func (ws *Workspace) Compute(prices, weights []float64, bins int) (Vectors, error) {
	if bins <= 0 {
		bins = DefaultBins
	}
	n := len(prices)
	if n < MinSamples(bins) {
		return Vectors{N: n}, ErrTooFewSamples
	}
	for _, p := range prices {
		if !(p > 0) || math.IsInf(p, 0) {
			return Vectors{N: n}, errors.New("vectors: non-positive or infinite price")
		}
	}
	ws.x, ws.w = grow(ws.x, n), grow(ws.w, n)
	for i := range n {
		ws.w[i] = 1
		if weights != nil && weights[i] > 0 {
			ws.w[i] = weights[i]
		}
	}
	v := Vectors{N: n}
	v.Inner, v.Outer = ws.position(prices, bins)
	v.Tendency, v.TendencyStrength = ws.tendency(prices)
	v.Swap = ws.swap(prices)
	return v, nil
}

// position computes vInner and vOuter: the prices normalised to x ∈ [0, 1], their robust
// z-scores (x − weighted median)/weighted MAD, averaged per position bin and overall, squashed
// with tanh.
func (ws *Workspace) position(prices []float64, bins int) (inner, outer float64) {
	n := len(prices)
	x, w := ws.x[:n], ws.w[:n]
	pmin, pmax := slices.Min(prices), slices.Max(prices)
	for i, p := range prices {
		if pmax > pmin {
			x[i] = (p - pmin) / (pmax - pmin)
		} else {
			x[i] = 0
		}
	}
	med := ws.weightedMedian(x, w)
	ws.z = grow(ws.z, n)
	for i := range x {
		ws.z[i] = math.Abs(x[i] - med)
	}
	mad := ws.weightedMedian(ws.z, w)
	if mad < tiny {
		// More than half the weight sits at the median: fall back to the mean absolute
		// deviation, so the minority off the median still counts.
		var sa, sw float64
		for i := range x {
			sa += w[i] * ws.z[i]
			sw += w[i]
		}
		mad = max(sa/sw, tiny)
	}
	z := ws.z
	var zw, tw float64
	for i := range x {
		z[i] = (x[i] - med) / mad
		zw += w[i] * z[i]
		tw += w[i]
	}
	outer = S * math.Tanh(zw/tw)

	ws.binW, ws.binZ = grow(ws.binW, bins), grow(ws.binZ, bins)
	clear(ws.binW)
	clear(ws.binZ)
	for i := range x {
		k := int(math.Round(x[i] * float64(bins-1)))
		ws.binW[k] += w[i]
		ws.binZ[k] += w[i] * z[i]
	}
	var acc, gamma float64
	for k := range bins {
		g := ws.binW[k]
		if g == 0 {
			continue
		}
		acc += g * math.Tanh(ws.binZ[k]/g)
		gamma += g
	}
	inner = S * acc / gamma
	return inner, outer
}

// weightedMedian is the value at half the total weight; when the cumulative weight meets half
// exactly between two values it is their midpoint, so with equal weights it is the ordinary
// median.
func (ws *Workspace) weightedMedian(vals, w []float64) float64 {
	n := len(vals)
	if cap(ws.idx) < n {
		ws.idx = make([]int, n, n+n/4)
	}
	idx := ws.idx[:n]
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(vals[a], vals[b]) })
	var total float64
	for _, i := range idx {
		total += w[i]
	}
	half, cum := total/2, 0.0
	for j, i := range idx {
		cum += w[i]
		switch {
		case cum > half+half*1e-12:
			return vals[i]
		case math.Abs(cum-half) <= half*1e-12:
			if j+1 < n {
				return (vals[i] + vals[idx[j+1]]) / 2
			}
			return vals[i]
		}
	}
	return vals[idx[n-1]]
}

// tendency is vTendency over the last TendencyPoints prices: s_t = 100·ln(p_t/p_{t−1}), the OLS
// slope of s against its index, scaled by D = MAD of the first differences of s;
// score = S·tanh(1.1·slope/D), strength = |Pearson r| of s and its index.
func (ws *Workspace) tendency(prices []float64) (score, strength float64) {
	p := prices[max(0, len(prices)-TendencyPoints):]
	m := len(p) - 1
	if m < 2 {
		return 0, 0
	}
	ws.tmp = grow(ws.tmp, m)
	s := ws.tmp
	for t := 1; t < len(p); t++ {
		s[t-1] = 100 * math.Log(p[t]/p[t-1])
	}
	// OLS of s on t = 0..m−1.
	tm := float64(m-1) / 2
	var sm float64
	for _, v := range s {
		sm += v
	}
	sm /= float64(m)
	var sxy, sxx, syy float64
	for t, v := range s {
		dt, dv := float64(t)-tm, v-sm
		sxy += dt * dv
		sxx += dt * dt
		syy += dv * dv
	}
	slope := sxy / sxx
	if syy > 0 {
		strength = math.Abs(sxy / math.Sqrt(sxx*syy))
	}
	ws.tmp2 = grow(ws.tmp2, m-1)
	d := ws.tmp2
	for t := 1; t < m; t++ {
		d[t-1] = s[t] - s[t-1]
	}
	dd := median(d)
	for i := range d {
		d[i] = math.Abs(d[i] - dd)
	}
	D := max(median(d), tiny)
	if math.Abs(slope) < tiny {
		return 0, strength
	}
	return S * math.Tanh(1.1*slope/D), strength
}

// swap is vSwap: inner_i = z-scored price clamped to ±S, tendency_i = 100·ln(p_i/p_{i−1})
// clamped to ±S; Q = (mean inner where tendency ≥ Q3 − mean inner where tendency ≤ Q1)/2,
// score = S·tanh(1.2·Q). Quartiles interpolate linearly between order statistics.
func (ws *Workspace) swap(prices []float64) float64 {
	n := len(prices)
	var mean float64
	for _, p := range prices {
		mean += p
	}
	mean /= float64(n)
	var ss float64
	for _, p := range prices {
		ss += (p - mean) * (p - mean)
	}
	std := math.Sqrt(ss / float64(n))
	m := n - 1
	ws.tmp, ws.tmp2 = grow(ws.tmp, m), grow(ws.tmp2, m)
	inner, tend := ws.tmp, ws.tmp2
	for i := 1; i < n; i++ {
		if std > 0 {
			inner[i-1] = clamp((prices[i]-mean)/std, S)
		} else {
			inner[i-1] = 0
		}
		tend[i-1] = clamp(100*math.Log(prices[i]/prices[i-1]), S)
	}
	ws.z = grow(ws.z, m)
	sorted := ws.z
	copy(sorted, tend)
	slices.Sort(sorted)
	q1, q3 := quantile(sorted, 0.25), quantile(sorted, 0.75)
	var hi, lo float64
	var nhi, nlo int
	for i := range m {
		if tend[i] >= q3 {
			hi += inner[i]
			nhi++
		}
		if tend[i] <= q1 {
			lo += inner[i]
			nlo++
		}
	}
	if nhi == 0 || nlo == 0 {
		return 0
	}
	q := (hi/float64(nhi) - lo/float64(nlo)) / 2
	return S * math.Tanh(1.2*q)
}

func clamp(v, lim float64) float64 { return max(-lim, min(lim, v)) }

// quantile of sorted values at q, interpolating linearly between order statistics (Hyndman–Fan
// type 7, the default of R and NumPy).
func quantile(sorted []float64, q float64) float64 {
	h := q * float64(len(sorted)-1)
	lo := int(math.Floor(h))
	if lo+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	return sorted[lo] + (h-float64(lo))*(sorted[lo+1]-sorted[lo])
}

// median sorts vals in place and returns their median.
func median(vals []float64) float64 {
	slices.Sort(vals)
	n := len(vals)
	if n%2 == 1 {
		return vals[n/2]
	}
	return (vals[n/2-1] + vals[n/2]) / 2
}
