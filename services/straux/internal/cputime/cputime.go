// Package cputime reads the CPU time of the calling OS thread, to account pure computation
// precisely on a busy machine (wall time would count time spent descheduled). Callers pin the
// goroutine with runtime.LockOSThread around the measured section.
package cputime

import (
	"time"

	"golang.org/x/sys/unix"
)

// Thread is the CPU time the calling thread has used so far (CLOCK_THREAD_CPUTIME_ID), or 0 if
// it cannot be read.
func Thread() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
