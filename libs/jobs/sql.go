package jobs

import (
	_ "embed"
	"strings"
	"text/template"
)

// The engine's SQL, one statement per file in sql/.
var (
	//go:embed sql/enqueue.sql
	enqueueSQL string
	//go:embed sql/live_id.sql
	liveIDSQL string
	//go:embed sql/claim.sql
	claimSQL string
	//go:embed sql/complete.sql.tmpl
	completeTmpl string
	// completeSQL records a batch of outcomes; completeFailedOccurrencesSQL also keeps the failed
	// occurrences of periodic jobs in it as rows of their own.
	completeSQL                  = renderComplete(false)
	completeFailedOccurrencesSQL = renderComplete(true)
	//go:embed sql/heartbeat.sql
	heartbeatSQL string
	//go:embed sql/rescue.sql
	rescueSQL string
	//go:embed sql/release.sql
	releaseSQL string
	//go:embed sql/notify.sql
	notifySQL string
	//go:embed sql/ordered_scan.sql
	orderedScanSQL string
	//go:embed sql/next_due.sql
	nextDueSQL string
	//go:embed sql/cancel.sql
	cancelSQL string
	//go:embed sql/counts.sql
	countsSQL string
	//go:embed sql/prune.sql
	pruneSQL string
	//go:embed sql/failing.sql
	failingSQL string
	//go:embed sql/cancel_job.sql
	cancelJobSQL string
	//go:embed sql/cancelled_held.sql
	cancelledHeldSQL string
	//go:embed sql/retry.sql
	retrySQL string
	//go:embed sql/retry_failed.sql
	retryFailedSQL string
	//go:embed sql/pause.sql
	pauseSQL string
	//go:embed sql/resume.sql
	resumeSQL string
	//go:embed sql/paused.sql
	pausedSQL string
	//go:embed sql/record_runs.sql
	recordRunsSQL string
	//go:embed sql/prune_runs.sql
	pruneRunsSQL string
)

// notifyChannel is the channel ingest.jobs' insert trigger notifies, with the inserted kinds
// comma-separated as payload.
const notifyChannel = "ingest_jobs"

// cancelChannel is the channel [Cancel] notifies with the id of a running job it cancelled.
const cancelChannel = "ingest_jobs_cancel"

func renderComplete(occurrences bool) string {
	var b strings.Builder
	t := template.Must(template.New("complete").Parse(completeTmpl))
	if err := t.Execute(&b, struct{ Occurrences bool }{occurrences}); err != nil {
		panic(err) // the template is embedded; a failure is a build bug that every test catches
	}
	return b.String()
}

var (
	//go:embed sql/oneshot_start.sql
	oneShotStartSQL string
	//go:embed sql/oneshot_finish.sql
	oneShotFinishSQL string
)
