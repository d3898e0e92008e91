package jobs

import _ "embed"

// The engine's SQL, one statement per file in sql/.
var (
	//go:embed sql/enqueue.sql
	enqueueSQL string
	//go:embed sql/live_id.sql
	liveIDSQL string
	//go:embed sql/claim.sql
	claimSQL string
	//go:embed sql/complete.sql
	completeSQL string
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
)

// notifyChannel is the channel ingest.jobs' insert trigger notifies, with the inserted kinds
// comma-separated as payload.
const notifyChannel = "ingest_jobs"
