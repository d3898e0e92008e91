// Package idhr computes the IDHR histogram statistics of a window of prices (DOMAIN.md §2): the
// log returns against the window's opening price are binned into 256 equal bins (16 primary × 16
// fine), the histogram is reduced to its dense core, and the statistics are read off it.
//
// Everything here is pure float64 arithmetic over a caller's slice; a Workspace holds the scratch
// buffers so that computing thousands of windows per tick allocates nothing.
package idhr

import (
	"cmp"
	"errors"
	"math"
	"slices"
)

// Histogram shape: Bins = Primary × Fine.
const (
	Primary = 16
	Fine    = 16
	Bins    = Primary * Fine
	// KeepDensest is how many of the densest fine bins keep their primary bins alive.
	KeepDensest = 16
	// GFMBins is how many of the densest bins the absolute GFM is weighted over.
	GFMBins = 8
	// SigmaFloor keeps σ away from zero when every return is equal.
	SigmaFloor = 1e-6
	// ShiftPct is the |ΔGFM%| that counts towards a shift, ShiftCycles how many consecutive
	// cycles it must hold.
	ShiftPct    = 0.35
	ShiftCycles = 5
)

// ErrNoPrices is returned for an empty window or a non-positive price.
var ErrNoPrices = errors.New("idhr: window has no usable prices")

// Stats are the statistics of one window.
type Stats struct {
	// N is the number of prices, P0 the opening (first) price.
	N  int
	P0 float64
	// GFM is the centre of the densest bin, in log-return space.
	GFM float64
	// GFMAbs is P0·exp(count-weighted centre of the GFMBins densest bins): a price.
	GFMAbs float64
	// Confidence is 1/(1 + mean|r−μ|/σ).
	Confidence float64
	// Inertia is the mean squared deviation of the returns.
	Inertia float64
	// Disruption is the mean absolute step of the 3-point-smoothed bin counts.
	Disruption float64
	// Lo and Width place bin k at [Lo + k·Width, Lo + (k+1)·Width).
	Lo, Width float64
	// Counts is the reduced histogram (bins outside the dense core zeroed).
	Counts [Bins]float64
}

// Workspace holds scratch buffers; reuse one per goroutine (see Pool in package vectors for a
// pooled bundle). The zero value is ready.
type Workspace struct {
	r     []float64
	order [Bins]int
}

// Compute returns the IDHR statistics of prices (oldest first). It allocates only when the
// workspace's buffer must grow.
func (ws *Workspace) Compute(prices []float64) (Stats, error) {
	var st Stats
	n := len(prices)
	if n == 0 {
		return st, ErrNoPrices
	}
	p0 := prices[0]
	if !(p0 > 0) {
		return st, ErrNoPrices
	}
	if cap(ws.r) < n {
		ws.r = make([]float64, n)
	}
	r := ws.r[:n]
	lo, hi, sum := math.Inf(1), math.Inf(-1), 0.0
	for i, p := range prices {
		if !(p > 0) {
			return st, ErrNoPrices
		}
		v := math.Log(p / p0)
		r[i] = v
		lo, hi, sum = min(lo, v), max(hi, v), sum+v
	}
	mu := sum / float64(n)
	var sq, abs float64
	for _, v := range r {
		d := v - mu
		sq += d * d
		abs += math.Abs(d)
	}
	inertia := sq / float64(n)
	sigma := max(math.Sqrt(inertia), SigmaFloor)
	if !(hi-lo > 0) {
		// The range collapsed (every return equal): centre the bins on μ instead.
		lo, hi = mu-2.5*sigma, mu+2.5*sigma
	}
	width := (hi - lo) / Bins
	for _, v := range r {
		k := int((v - lo) / width)
		st.Counts[min(max(k, 0), Bins-1)]++
	}
	reduce(&st.Counts, &ws.order)

	// Densest bins, ties to the lower bin: ws.order is sorted that way by reduce.
	centre := func(k int) float64 { return lo + (float64(k)+0.5)*width }
	densest := ws.order[0]
	var wsum, csum float64
	for _, k := range ws.order[:GFMBins] {
		c := st.Counts[k]
		if c == 0 {
			break
		}
		wsum += c * centre(k)
		csum += c
	}

	st.N, st.P0 = n, p0
	st.GFM = centre(densest)
	st.GFMAbs = p0 * math.Exp(wsum/csum)
	st.Confidence = 1 / (1 + (abs/float64(n))/sigma)
	st.Inertia = inertia
	st.Disruption = disruption(&st.Counts)
	st.Lo, st.Width = lo, width
	return st, nil
}

// reduce keeps the KeepDensest densest fine bins and every fine bin of their primary bins, and
// zeroes the rest. It leaves order holding the bins by count, densest first, ties to the lower.
func reduce(counts *[Bins]float64, order *[Bins]int) {
	for i := range order {
		order[i] = i
	}
	byCount := func(a, b int) int { return cmp.Compare(counts[b], counts[a]) }
	// Stable: equal counts stay in bin order, so ties break to the lower bin.
	slices.SortStableFunc(order[:], byCount)
	var keep [Primary]bool
	for _, k := range order[:KeepDensest] {
		if counts[k] > 0 {
			keep[k/Fine] = true
		}
	}
	for k := range counts {
		if !keep[k/Fine] {
			counts[k] = 0
		}
	}
	// A zeroed bin now ties with the empty ones: re-sort so every tie breaks to the lower bin.
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order[:], byCount)
}

// disruption is the mean absolute step between neighbours of the 3-point moving average of
// counts (zero beyond both ends).
func disruption(counts *[Bins]float64) float64 {
	at := func(k int) float64 {
		if k < 0 || k >= Bins {
			return 0
		}
		return counts[k]
	}
	smooth := func(k int) float64 { return (at(k-1) + at(k) + at(k+1)) / 3 }
	var total float64
	prev := smooth(0)
	for k := 1; k < Bins; k++ {
		s := smooth(k)
		total += math.Abs(s - prev)
		prev = s
	}
	return total / (Bins - 1)
}

// Shift is the ΔGFM% state of a window carried from cycle to cycle.
type Shift struct {
	// Ref is the reference GFM this cycle's ΔGFM% is measured against.
	Ref float64
	// DeltaPct is (GFMAbs/Ref − 1)·100.
	DeltaPct float64
	// Streak counts consecutive cycles with |DeltaPct| ≥ ShiftPct, this one included.
	Streak int
	// Shifted is true when the streak reached ShiftCycles: the GFM has moved, and the next
	// cycle measures against this cycle's GFM.
	Shifted bool
}

// Previous is what the last cycle left: its reference, streak, whether it shifted, and its GFM.
type Previous struct {
	Ref     float64
	Streak  int
	Shifted bool
	GFMAbs  float64
}

// NextShift advances the shift state by one cycle with the new absolute GFM. prev is nil for a
// window's first cycle, whose GFM becomes the reference.
func NextShift(prev *Previous, gfmAbs float64) Shift {
	if prev == nil || !(prev.Ref > 0) {
		return Shift{Ref: gfmAbs}
	}
	ref, streak := prev.Ref, prev.Streak
	if prev.Shifted {
		ref, streak = prev.GFMAbs, 0
	}
	s := Shift{Ref: ref, DeltaPct: (gfmAbs/ref - 1) * 100}
	if math.Abs(s.DeltaPct) >= ShiftPct {
		s.Streak = streak + 1
	}
	s.Shifted = s.Streak >= ShiftCycles
	return s
}
