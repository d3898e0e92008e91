// Package window computes, for one symbol at one period, the IDHR statistics and the vectors of
// every configured window from the symbol's stored samples. It is pure: the caller reads the
// samples and writes the results.
//
// A window labelled L ending at period P holds the good samples with P − duration(L) <
// period_start ≤ P. Its vectors bin positions into B = min(MaxBins, duration/tick interval)
// bins — never more bins than the window can hold samples — and need MinSamples(B) samples
// (max(12, min(128, ⌈B/4⌉))); the IDHR statistics need as many. A shorter window gets no values
// and a reason.
package window

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"cryptopill.dev/jobs/services/straux/internal/idhr"
	"cryptopill.dev/jobs/services/straux/internal/vectors"
)

// Window is a configured statistics window.
type Window struct {
	Label    string
	Duration time.Duration
}

// Point is one good sample: its period, mid price and book volume (0: unknown).
type Point struct {
	T   time.Time
	Mid float64
	Vol float64
}

// Result is one window's outcome. Stats and Vectors are nil when Reason is set.
type Result struct {
	Label   string
	N       int
	Bins    int
	Stats   *idhr.Stats
	Shift   idhr.Shift
	Vectors *vectors.Vectors
	Reason  string
}

// Bins is B for a window at a tick interval: min(maxBins, duration/interval), at least 1.
func Bins(w Window, interval time.Duration, maxBins int) int {
	if maxBins <= 0 {
		maxBins = vectors.DefaultBins
	}
	if interval <= 0 {
		return maxBins
	}
	return max(1, min(maxBins, int(w.Duration/interval)))
}

// Workspace bundles the scratch space of every computation; Get and Put pool them.
type Workspace struct {
	idhr    idhr.Workspace
	vec     vectors.Workspace
	prices  []float64
	weights []float64
}

var pool = sync.Pool{New: func() any { return new(Workspace) }}

// Get takes a workspace from the pool; Put returns it.
func Get() *Workspace   { return pool.Get().(*Workspace) }
func Put(ws *Workspace) { pool.Put(ws) }

// Compute fills out (one Result per window, in windows' order, reusing out's storage) for the
// windows ending at period, from points sorted oldest first (points after period are ignored).
// prev[label] is the window's previous cycle for ΔGFM (nil: none).
func (ws *Workspace) Compute(out []Result, points []Point, period time.Time, interval time.Duration,
	windows []Window, maxBins int, prev func(label string) *idhr.Previous) []Result {
	out = out[:0]
	end := sort.Search(len(points), func(i int) bool { return points[i].T.After(period) })
	points = points[:end]
	for _, w := range windows {
		from := period.Add(-w.Duration)
		start := sort.Search(len(points), func(i int) bool { return points[i].T.After(from) })
		pts := points[start:]
		r := Result{Label: w.Label, N: len(pts), Bins: Bins(w, interval, maxBins)}
		need := vectors.MinSamples(r.Bins)
		if len(pts) < need {
			r.Reason = fmt.Sprintf("too few samples: %d of %d needed (window %s, B=%d)", len(pts), need, w.Label, r.Bins)
			out = append(out, r)
			continue
		}
		ws.prices, ws.weights = ws.prices[:0], ws.weights[:0]
		weighted := true
		for _, p := range pts {
			ws.prices = append(ws.prices, p.Mid)
			ws.weights = append(ws.weights, p.Vol)
			weighted = weighted && p.Vol > 0
		}
		var weights []float64
		if weighted {
			// Weigh by book volume only when every sample has one; mixing known volumes
			// with the unit weight of the rest would skew the window.
			weights = ws.weights
		}
		st, err := ws.idhr.Compute(ws.prices)
		if err != nil {
			r.Reason = err.Error()
			out = append(out, r)
			continue
		}
		v, err := ws.vec.Compute(ws.prices, weights, r.Bins)
		if err != nil {
			r.Reason = err.Error()
			out = append(out, r)
			continue
		}
		r.Stats, r.Vectors = &st, &v
		var pv *idhr.Previous
		if prev != nil {
			pv = prev(w.Label)
		}
		r.Shift = idhr.NextShift(pv, st.GFMAbs)
		out = append(out, r)
	}
	return out
}
