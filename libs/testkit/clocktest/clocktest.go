// Package clocktest gives tests clocks that do not depend on when the test runs. Code under test
// takes a clock as a `Now func() time.Time` in its Config (zero value: time.Now); a test passes
// one of these instead, so a result never depends on the date or the hour of the run.
package clocktest

import "time"

// Afternoon is the default start of a test clock: a mid-afternoon UTC, the hours at which a
// "since the start of yesterday" window is widest. It is in the past on purpose: a test that
// also relies on Postgres' now() (a job is due when scheduled_for <= now()) needs its clock
// behind the database's, or the work it schedules on the test clock is never due.
var Afternoon = time.Date(2026, time.March, 17, 15, 4, 5, 0, time.UTC)

// Running returns a clock that reads at when it is created and then advances at the real rate
// (measured on the monotonic clock), so timers, timeouts and rolling windows behave as with
// time.Now while the date and time of day are fixed.
func Running(at time.Time) func() time.Time {
	start := time.Now()
	return func() time.Time { return at.Add(time.Since(start)) }
}

// Fixed returns a clock that always reads at.
func Fixed(at time.Time) func() time.Time {
	return func() time.Time { return at }
}

// Instants are start instants across day, month and year boundaries, for table tests of anything
// day-aligned or windowed ("since yesterday", "the last hour", period alignment). Each is a
// second or less before a boundary, or on one, so a window computed from it ends or begins there.
func Instants() map[string]time.Time {
	return map[string]time.Time{
		"midnight":        time.Date(2026, time.June, 10, 0, 0, 0, 0, time.UTC),
		"before noon":     time.Date(2026, time.June, 10, 11, 59, 59, 0, time.UTC),
		"before midnight": time.Date(2026, time.June, 10, 23, 59, 59, 0, time.UTC),
		"afternoon":       Afternoon,
		"month end":       time.Date(2026, time.April, 30, 23, 59, 59, 999_000_000, time.UTC),
		"leap day end":    time.Date(2028, time.February, 29, 23, 59, 59, 0, time.UTC),
		"year end":        time.Date(2026, time.December, 31, 23, 59, 59, 999_000_000, time.UTC),
		"new year":        time.Date(2027, time.January, 1, 0, 0, 0, 0, time.UTC),
	}
}
