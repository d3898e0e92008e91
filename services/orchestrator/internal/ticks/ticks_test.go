package ticks_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/services/orchestrator/internal/ticks"
)

func TestPeriodStartIsAlignedToTheEpoch(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 1, 12, 1, 13, 500, time.FixedZone("CET", 3600))
	require.Equal(t, time.Date(2026, 3, 1, 11, 0, 40, 0, time.UTC), ticks.PeriodStart(at, 40*time.Second))
	require.Equal(t, time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC), ticks.PeriodStart(at, 15*time.Minute))
	// The same instant in any zone, and every instant of a period, give the same start.
	require.Equal(t, ticks.PeriodStart(at, time.Minute), ticks.PeriodStart(at.UTC().Add(46*time.Second), time.Minute))
	require.Equal(t, time.Unix(-40, 0).UTC(), ticks.PeriodStart(time.Unix(-1, 0), 40*time.Second))
}
