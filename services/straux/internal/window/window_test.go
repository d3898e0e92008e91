package window_test

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/services/straux/internal/idhr"
	"cryptopill.dev/jobs/services/straux/internal/window"
)

func TestBins(t *testing.T) {
	t.Parallel()
	tick := 40 * time.Second
	require.Equal(t, 45, window.Bins(window.Window{Label: "30m", Duration: 30 * time.Minute}, tick, 256))
	require.Equal(t, 90, window.Bins(window.Window{Label: "1h", Duration: time.Hour}, tick, 256))
	require.Equal(t, 256, window.Bins(window.Window{Label: "4h", Duration: 4 * time.Hour}, tick, 256))
}

func TestComputeSelectsWindowSamples(t *testing.T) {
	t.Parallel()
	tick := time.Minute
	p := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	// 40 points, one a minute, ending at p; one more after p that must be ignored.
	var pts []window.Point
	for i := 39; i >= 0; i-- {
		pts = append(pts, window.Point{T: p.Add(-time.Duration(i) * tick), Mid: 100 + float64(i%7), Vol: 1})
	}
	pts = append(pts, window.Point{T: p.Add(tick), Mid: 1e6})
	windows := []window.Window{{"15m", 15 * time.Minute}, {"30m", 30 * time.Minute}, {"1h", time.Hour}}

	ws := window.Get()
	defer window.Put(ws)
	res := ws.Compute(nil, pts, p, tick, windows, 256, nil)
	require.Len(t, res, 3)

	// 15m at 1m: B = 15, needs 12; holds the points at p−14m … p = 15.
	require.Equal(t, 15, res[0].N)
	require.Empty(t, res[0].Reason)
	require.NotNil(t, res[0].Vectors)
	require.Equal(t, idhr.Shift{Ref: res[0].Stats.GFMAbs}, res[0].Shift, "first cycle: its own reference")
	// 30m: B = 30, needs 12; holds 30.
	require.Equal(t, 30, res[1].N)
	require.NotNil(t, res[1].Stats)
	// 1h: B = 60, needs 15, holds all 40 (the one after p excluded).
	require.Equal(t, 40, res[2].N)
	require.Less(t, res[2].Stats.GFMAbs, 200.0)

	// Too few: a 4h window at 10s ticks has B = 256 and needs 64 of the 40.
	res = ws.Compute(res, pts, p, 10*time.Second, []window.Window{{"4h", 4 * time.Hour}}, 256, nil)
	require.Len(t, res, 1)
	require.Nil(t, res[0].Vectors)
	require.Nil(t, res[0].Stats)
	require.Equal(t, "too few samples: 40 of 64 needed (window 4h, B=256)", res[0].Reason)
}

func TestComputeCarriesShift(t *testing.T) {
	t.Parallel()
	tick := time.Minute
	p := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	var pts []window.Point
	for i := 11; i >= 0; i-- {
		pts = append(pts, window.Point{T: p.Add(-time.Duration(i) * tick), Mid: 100 * math.Exp(0.001*float64(i%3))})
	}
	ws := window.Get()
	defer window.Put(ws)
	res := ws.Compute(nil, pts, p, tick, []window.Window{{"15m", 15 * time.Minute}}, 256,
		func(string) *idhr.Previous { return &idhr.Previous{Ref: 50, Streak: 4, GFMAbs: 50} })
	require.Len(t, res, 1)
	// GFM ≈ 100 against a reference of 50: ΔGFM ≈ +100%, the fifth cycle in a row: a shift.
	require.Greater(t, res[0].Shift.DeltaPct, 99.0)
	require.Equal(t, 5, res[0].Shift.Streak)
	require.True(t, res[0].Shift.Shifted)
}
