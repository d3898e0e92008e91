package metrictest_test

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/testkit/metrictest"
)

// The project's conventions catch what the old names did wrong: a second prefix, a point in
// time without _timestamp_seconds.
func TestConventions(t *testing.T) {
	l := promlint.New(strings.NewReader(`# HELP straux_ticks_total Ticks.
# TYPE straux_ticks_total counter
straux_ticks_total 1
# HELP cp_orchestrator_last_tick_period_start_seconds Period start of the last tick, Unix seconds.
# TYPE cp_orchestrator_last_tick_period_start_seconds gauge
cp_orchestrator_last_tick_period_start_seconds 1.7e9
# HELP cp_ok_timestamp_seconds When, Unix seconds.
# TYPE cp_ok_timestamp_seconds gauge
cp_ok_timestamp_seconds 1.7e9
# HELP go_goroutines Goroutines.
# TYPE go_goroutines gauge
go_goroutines 3
`))
	l.AddCustomValidations(metrictest.Conventions)
	problems, err := l.Lint()
	require.NoError(t, err)
	var got []string
	for _, p := range problems {
		got = append(got, p.Metric+": "+p.Text)
	}
	require.ElementsMatch(t, []string{
		"straux_ticks_total: not prefixed cp_",
		"cp_orchestrator_last_tick_period_start_seconds: a point in time (Unix seconds) should be named _timestamp_seconds",
	}, got)
}

func TestSeriesNamesExpandHistograms(t *testing.T) {
	names := metrictest.SeriesNames(t, []byte(`# HELP cp_x_duration_seconds X.
# TYPE cp_x_duration_seconds histogram
cp_x_duration_seconds_bucket{le="+Inf"} 1
cp_x_duration_seconds_sum 0.1
cp_x_duration_seconds_count 1
# HELP cp_y_total Y.
# TYPE cp_y_total counter
cp_y_total 2
`))
	require.Equal(t, []string{"cp_x_duration_seconds_bucket", "cp_x_duration_seconds_count", "cp_x_duration_seconds_sum", "cp_y_total"}, names)
}
